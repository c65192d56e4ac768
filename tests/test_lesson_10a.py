"""The batteries that nbs/10a_tensor_autograd.ipynb used to run inline, now here (the notebook keeps one representative
check of each): error messages, every index form of its table, rows of NaN and infinities through logsumexp and
log_softmax; and the claims of its prose about leaf gradients (tests/test_tensor_autograd.py holds the rest: NumPy
scalars, the NaN tables of every op, no_grad nesting and recursion, property tests)."""

import nbformat, numpy as np, pytest, torch
import torch.nn.functional as F

from conftest import ROOT
from exp.nb_00 import test_eq as check_eq, test_fail as check_fails
from exp.nb_10a import Sum, Tensor, compare_with_torch, gradcheck, tensor_cross_entropy, unbroadcast
from exp.nb_10a import _torch_index

NAN, INF = float('nan'), float('inf')


def randn(*shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


# ---- the constructor and the operators: what they refuse, and what they share ----

def test_a_tensor_shares_the_storage_it_wraps():
    raw = torch.zeros(3)
    shared = Tensor(raw)
    raw[0] = 5.
    check_eq(shared.data[0], 5.)
    check_eq(Tensor(shared).data.untyped_storage().data_ptr(), raw.untyped_storage().data_ptr())


@pytest.mark.parametrize('make, contains, exc', [
    (lambda: Tensor('abc'), 'not str', TypeError),
    (lambda: Tensor([[1, 2], [3]]), 'cannot make a tensor', TypeError),
    (lambda: Tensor([1, 2], requires_grad=True), 'floating-point', TypeError),
    (lambda: Tensor([1., 2.]) + 'a', '', TypeError),
    (lambda: Tensor([1., 2., 3.]) * [1, 2, 3], '', TypeError),
    (lambda: np.ones(3) * Tensor([1., 2., 3.]), '', TypeError),
    (lambda: Tensor(torch.ones(2, 3)) @ 2, '', TypeError),
    (lambda: Tensor(torch.ones(2, 3)) @ Tensor(torch.tensor(2.)), 'at least one dimension', ValueError),
    (lambda: Tensor(torch.ones(2, 3)) ** Tensor(torch.ones(2, 3)), 'must be a Python int or float', TypeError),
    (lambda: 2 ** Tensor(torch.ones(2, 3)), 'not supported', TypeError),
    (lambda: Tensor(randn(2, 3, 4)).sum(dim=3), '', IndexError),
    (lambda: Tensor(randn(2, 3, 4)).reshape(5, 5), 'invalid for input of size 24', RuntimeError),
    (lambda: Tensor(randn(2, 3, 4)).T, 'needs a 2-d tensor', ValueError),
    (lambda: Tensor(randn(4, 5))[torch.tensor([0.5])], 'tensors used as indices', IndexError),
    (lambda: Tensor(randn(4, 5))[7], 'out of bounds', IndexError),
    (lambda: unbroadcast(torch.ones(3, 4), torch.Size([2, 3, 4])), 'fewer dims', ValueError),
    (lambda: unbroadcast(torch.ones(2, 3, 4), torch.Size([5])), 'cannot come from', ValueError),
], ids=lambda v: v if isinstance(v, str) else None)
def test_each_mistake_is_refused_with_its_message(make, contains, exc):
    check_fails(make, contains=contains, exc=exc)


@pytest.mark.parametrize('c', [np.float32(2), np.float64(2), np.int64(2)], ids=lambda c: type(c).__name__)
def test_numpy_scalars_on_either_side_stay_our_tensor(c):
    x = Tensor([1., 2., 3.], requires_grad=True)
    for y, ref in [(x * c, torch.tensor([2., 4., 6.])), (c - x, torch.tensor([1., 0., -1.]))]:
        check_eq(type(y), Tensor); check_eq(y.data, ref); check_eq(y.dtype, torch.float32)


# ---- indexing: the notebook's former table of index forms ----

A = randn(4, 5, seed=3)
DUP = torch.tensor([0, 2, 2, 3, 0])
BASIC_AND_TENSORS = [1, -1, (1, 2), slice(1, 3), (slice(None), 2), (Ellipsis, slice(None, None, 2)), (None, 1),
                     DUP, (DUP, torch.tensor([1, 1, 1, 4, 1])), (range(4), torch.tensor([4, 0, 0, 2])),
                     [3, 3], A > 0, (1, DUP), (DUP, slice(1, 4)), (slice(None), [4, 4, 0])]
OTHER_FORMS = [np.array([0, 2, 2]), ((0, 0, 3),), (slice(None), (4, 4)), (np.array([1, 1]), np.int64(2)),
               (Tensor(torch.tensor([3, 3])), slice(None, None, 2)), (None, [0, 0], Ellipsis)]


@pytest.mark.parametrize('index', BASIC_AND_TENSORS + OTHER_FORMS, ids=repr)
def test_every_index_form_of_the_table_against_finite_differences_and_torch(index):
    gradcheck(lambda x: x[index], [A])
    assert compare_with_torch(lambda x: x[index], A, torch_f=lambda t: t[_torch_index(index)])


def test_a_numpy_index_that_repeats_accumulates():
    x = Tensor([1., 2., 3.], requires_grad=True)
    x[np.array([0, 0, 1])].sum().backward()
    check_eq(x.grad, torch.tensor([2., 1., 0.]))


# ---- logsumexp, log_softmax, cross-entropy: rows of NaN and infinities, as PyTorch ----

ROWS = torch.tensor([[0., INF, 1.], [NAN, 0., 1.], [-INF, 0., 1.], [-INF] * 3])


@pytest.mark.parametrize('f', [lambda x: x.logsumexp(-1), lambda x: x.logsumexp(0), lambda x: x.log_softmax(-1),
                               lambda x: x.log_softmax(0)], ids=['logsumexp -1', 'logsumexp 0', 'log_softmax -1', 'log_softmax 0'])
def test_rows_of_nan_and_infinities_as_torch(f):
    assert compare_with_torch(f, ROWS)


def test_a_row_with_plus_infinity_is_all_nan_in_log_softmax_but_not_in_the_composed_form():
    row = torch.tensor([[0., INF, 1.]])
    check_eq(Tensor(row).log_softmax(-1).data.isnan(), torch.tensor([[True, True, True]]))
    check_eq(row.log_softmax(-1).isnan(), torch.tensor([[True, True, True]]))
    composed = Tensor(row) - Tensor(row).logsumexp(-1, keepdim=True)
    check_eq(composed.data[0, [0, 2]], torch.tensor([-INF, -INF]))


def test_cross_entropy_mistakes_of_the_former_battery():
    g = torch.Generator().manual_seed(0)
    logits, target = torch.randn(8, 5, generator=g) * 2, torch.randint(0, 5, (8,), generator=g)
    check_fails(lambda: tensor_cross_entropy(Tensor(logits), target.float()), contains='integer class indices', exc=TypeError)
    check_fails(lambda: tensor_cross_entropy(Tensor(logits), target[:4]), contains='expected (8,)', exc=ValueError)
    check_fails(lambda: tensor_cross_entropy(Tensor(logits[0]), target[:1]), contains='(batch, classes)', exc=ValueError)
    check_fails(lambda: tensor_cross_entropy(logits.tolist(), target), contains='not list', exc=TypeError)
    with_inf = torch.tensor([[NAN, 0., 1.], [INF, 0., 1.], [-INF, 0., 1.], [2., 1., 0.]])
    assert compare_with_torch(tensor_cross_entropy, with_inf, torch.tensor([1, 2, 2, 0]), torch_f=F.cross_entropy)


# ---- the claims of the walk's prose: each leaf's .grad is a contiguous tensor of its own ----

def storage(t): return t.untyped_storage().data_ptr()


def test_pytorch_also_gives_each_leaf_its_own_gradient_and_refuses_in_place_ops_on_a_broadcast_view():
    a, b = torch.ones(3, requires_grad=True), torch.ones(3, requires_grad=True)
    g = torch.tensor([1., 2., 3.])
    (a + b).backward(g)
    assert len({storage(a.grad), storage(b.grad), storage(g)}) == 3
    view = torch.ones(3).expand(2, 3)
    check_fails(lambda: view.mul_(2.), contains='single memory location', exc=RuntimeError)
    check_fails(lambda: view.add_(1.), contains='single memory location', exc=RuntimeError)


def test_sum_hands_back_a_broadcast_view_and_the_leaf_gets_a_writable_copy():
    x = Tensor(torch.ones(2, 3), requires_grad=True)
    y = x.sum()
    assert isinstance(y._ctx, Sum)
    view, = y._ctx.backward(torch.tensor(2.))
    assert not view.is_contiguous()                 # one number standing for six
    y.backward()
    assert x.grad.is_contiguous()
    x.grad.mul_(0.5)                                # gradient clipping, in place: allowed
    x.grad += 1.                                    # weight decay's +=, in place
    check_eq(x.grad, torch.full((2, 3), 1.5))


def test_a_leaf_gradient_from_a_reshape_is_not_a_view_of_the_callers_tensor():
    x = Tensor(torch.ones(6), requires_grad=True)
    g = torch.arange(6.).reshape(2, 3)
    x.reshape(2, 3).backward(g)
    assert storage(x.grad) != storage(g)
    x.grad.zero_()
    check_eq(g, torch.arange(6.).reshape(2, 3))


# ---- the lesson's shape: what we built, the exercises, the next notebook ----

def test_the_notebook_opens_with_tensor_and_function_and_closes_with_exercises_and_next():
    nb = nbformat.read(ROOT / 'nbs/10a_tensor_autograd.ipynb', as_version=4)
    markdown = [c.source for c in nb.cells if c.cell_type == 'markdown']
    headings = [line for source in markdown for line in source.splitlines() if line.startswith('## ')]
    assert headings[0] == '## The idea: `Tensor` and `Function`', headings[:3]
    assert headings.index('## What we built') < headings.index('## Exercises') == len(headings) - 1
    assert markdown[-1].lstrip('*').startswith('Next') and '(11_bigram.ipynb)' in markdown[-1]
    text = '\n'.join(markdown)
    assert 'may safely share one gradient tensor' not in text and 'rounding, amplified' not in ''.join(
        c.source for c in nb.cells if c.cell_type == 'code')
