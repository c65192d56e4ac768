"""Checks moved out of the lessons 01_matmul and 02_fully_connected (each lesson keeps one representative check):
the broadcasting rule written in 01 against PyTorch on random shapes, the shared timing helper 01 times with,
the new einsum strings of Exercise 01.3, and 02's weight gradient from one element."""
import statistics, time

import nbformat, torch

from conftest import ROOT
from exercises import run_check
from exp.nb_00 import THREADS, median_ratio, time_rounds
from exp.nb_00 import test_eq as check_eq, test_fail as check_fails, test_near as check_near   # aliased: not collected
from test_exercises import failing, solved


def lesson_function(notebook, name):
    "The function `name` as a lesson defines it: its cell run on its own (the cell's own checks run too)."
    nb = nbformat.read(ROOT / 'nbs' / notebook, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == 'code' and c.source.lstrip().startswith(f'def {name}('))
    ns = {'torch': torch, 'test_eq': check_eq, 'test_fail': check_fails}
    exec(cell.source, ns)
    return ns[name]


def test_01_broadcast_rule_agrees_with_torch_on_random_shapes():
    broadcast_shape = lesson_function('01_matmul.ipynb', 'broadcast_shape')
    gen = torch.Generator().manual_seed(0)
    errors = 0
    for _ in range(200):
        s1, s2 = (tuple(torch.randint(1, 4, (int(torch.randint(0, 4, (1,), generator=gen)),), generator=gen).tolist())
                  for _ in range(2))
        try: ours = broadcast_shape(s1, s2)
        except ValueError: ours = 'error'
        try: theirs = tuple((torch.zeros(s1) + torch.zeros(s2)).shape)
        except RuntimeError: theirs = 'error'
        check_eq(ours, theirs)
        errors += ours == 'error'
    assert 0 < errors < 200          # both outcomes were exercised
    check_eq(broadcast_shape((5, 1, 4), (3, 1)), (5, 3, 4))
    check_fails(lambda: broadcast_shape((2, 3), (2,)), contains='cannot broadcast 3 with 2')


def test_time_rounds_takes_turns_and_median_ratio():
    "The shared timing helper 01 and 02 use (exp.nb_00): one value per round per callable, medians of ratios."
    order = []
    naps = time_rounds({'sleep': lambda: (order.append('s'), time.sleep(0.01)), 'nothing': lambda: order.append('n')},
                       rounds=3, number=2)
    check_eq([len(v) for v in naps.values()], [3, 3])
    check_eq(''.join(order), 'sn' + 'ssnn' + 'nnss' + 'ssnn')   # warm-up, then the starting callable rotates each round
    assert 0.01 <= statistics.median(naps['sleep']) < 0.05         # sleep never returns early; the bound allows for load
    assert median_ratio(naps, 'sleep', 'nothing') > 100
    fake = {'a': [2., 4., 9.], 'b': [1., 1., 3.]}
    check_eq(median_ratio(fake, 'a', 'b'), 3.0)
    check_eq(torch.get_num_threads(), THREADS)


def test_01_einsum_exercise_new_strings():
    strings = dict(solved('01_matmul', '01.3')['einsum_strings'])
    assert run_check('01.3', strings).state == 'correct'
    failing(run_check('01.3', strings | {'batch outer product': 'ni,nj->ij'}), 'sample index')
    failing(run_check('01.3', strings | {'diagonal': 'ii->'}), 'keep that letter')
    failing(run_check('01.3', strings | {'matrix-vector': 'ik,k->k'}), 'summed away')
    assert 'still to write' in run_check('01.3', strings | {'diagonal': ...}).message


def test_02_weight_gradient_from_one_element_to_the_matrix_formula():
    gen = torch.Generator().manual_seed(3)
    x, w, t = (torch.randn(*s, generator=gen, dtype=torch.float64) for s in [(7, 4), (4, 3), (7, 3)])
    w_req = w.clone().requires_grad_(True)
    ((x @ w_req - t) ** 2).mean().backward()
    g = 2 * (x @ w - t) / t.numel()
    for i in range(4):
        for j in range(3): check_near(sum(x[n, i] * g[n, j] for n in range(7)), w_req.grad[i, j], rtol=1e-12, atol=0)
    check_near(sum(torch.outer(x[n], g[n]) for n in range(7)), w_req.grad, rtol=1e-12, atol=1e-15)
    check_near(x.T @ g, w_req.grad, rtol=1e-12, atol=1e-15)
