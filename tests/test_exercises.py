"""Exercises that check themselves (exercises/, solutions/): every reference solution passes its check, the usual
mistake of every exercise fails with its hint, an untouched starter reports "not attempted", a hard-coded answer
fails on fresh inputs; the notebooks' layout; the progress command; the runner's --solutions."""
import ast, os, shutil, subprocess, sys
from types import SimpleNamespace

import nbformat, pytest, torch
import torch.nn.functional as F

from conftest import ROOT, make_notebook
from exercises import CHECKS, EXERCISE_MIME, fill_solutions, load_checks, lookup, run_check, solution_sections, starter_cells
from notebook2script import numbered_notebooks
from run_notebook import RunFailure, code_digest, execute

load_checks()
NOTEBOOKS = [p for p in numbered_notebooks(ROOT / 'nbs') if starter_cells(nbformat.read(p, as_version=4))]
SOLUTIONS = {p.stem: solution_sections(ROOT / 'solutions' / f'{p.stem}.py') for p in NOTEBOOKS}


def solved(stem, *ids, **names):
    "A namespace with the reference solutions of `ids` executed in it, over the names a notebook has (the exp stack, torch)."
    import math
    import exp.nb_14 as stack
    ns = {k: v for k, v in vars(stack).items() if not k.startswith('__')} | dict(torch=torch, F=F, nn=torch.nn, math=math)
    ns.update(names)
    for id in ids: exec(SOLUTIONS[stem][id], ns)
    return ns


def mutated(stem, id, name, old, new):
    "The reference solution with one line changed into the usual mistake (the change must apply), after the ones before it."
    code = SOLUTIONS[stem][id]
    assert old in code, f"{old!r} not in the solution of {id}"
    ns = solved(stem, *[earlier for earlier in SOLUTIONS[stem] if earlier < id])
    exec(code.replace(old, new), ns)
    return ns[name]


def forward_by_hand():
    "Notebook 14's forward pass, the one its checks 14.1-14.4 are given."
    nb = nbformat.read(ROOT / 'nbs/14_backprop_ninja.ipynb', as_version=4)
    cell = next(c.source for c in nb.cells if c.cell_type == 'code' and 'def forward_by_hand(' in c.source)
    fn = next(n for n in ast.parse(cell).body if isinstance(n, ast.FunctionDef) and n.name == 'forward_by_hand')
    ns = solved('14_backprop_ninja', SimpleNamespace=SimpleNamespace)
    exec(compile(ast.Module([fn], []), 'forward_by_hand', 'exec'), ns)
    return ns['forward_by_hand']


def names_in(node):
    "The names a check line's argument reads (a notebook's data, absent here, is passed as None)."
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def failing(result, *hint_words):
    assert result.state == 'failing', str(result)
    for word in hint_words: assert word in result.hint + result.message, f"{word!r} not in:\n{result}"
    return result


# ---- the layout: starter, check line, solution, registered check ----

@pytest.mark.parametrize('path', NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_each_starter_has_its_check_line_under_it_a_solution_and_a_check(path):
    nb = nbformat.read(path, as_version=4)
    starters = starter_cells(nb)
    number = path.stem.split('_')[0]
    for id, i in starters.items():
        assert id.split('.')[0] == number, f"{path.name}: exercise {id} in notebook {number}"
        assert nb.cells[i + 1].cell_type == 'code' and f"check_exercise('{id}'" in nb.cells[i + 1].source, \
            f"{path.name}: no check line for {id} under its starter"
        assert lookup(id).id == id
    assert set(SOLUTIONS[path.stem]) == set(starters)
    registered = {id for id in CHECKS if id.split('.')[0] == number}
    assert registered == set(starters), f"checks without a starter: {registered - set(starters)}"
    assert any(c.cell_type == 'markdown' and c.source.startswith('## Exercise') for c in nb.cells), f"{path.name}: no Exercises section"


def test_every_notebook_has_its_exercises():
    assert {p.stem for p in NOTEBOOKS} == {p.stem for p in numbered_notebooks(ROOT / 'nbs')}
    assert len([id for id in CHECKS if id.startswith('14.')]) >= 6 and len([id for id in CHECKS if id.startswith('11.')]) >= 4


# ---- every reference solution passes; every untouched starter is "not attempted" ----

def records(nb):
    return [out.data[EXERCISE_MIME] for cell in nb.cells if cell.cell_type == 'code'
            for out in cell.outputs if EXERCISE_MIME in out.get('data', {})]


@pytest.mark.parametrize('path', NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_notebook_runs_with_every_reference_solution_and_each_passes_its_check(path):
    try: nb = execute(path, quick=True, timeout=300, solutions=True)
    except RunFailure as e: pytest.fail(str(e), pytrace=False)
    found = {r['id']: r for r in records(nb)}
    assert set(found) == set(starter_cells(nb))
    for id, r in found.items():
        # A challenge's budget is cut in quick mode; test_challenge_solutions_beat_the_notebook runs them in full.
        if lookup(id).kind != 'challenge': assert r['state'] == 'correct', (id, r)


def test_challenge_solutions_beat_the_notebook(monkeypatch):
    monkeypatch.setenv('COURSE_QUICK', '0')
    from exp.nb_14 import build_dataset, build_vocab, load_names, split_words
    words = load_names()
    stoi, _ = build_vocab(words)
    train, dev, _ = split_words(words)
    (Xtr, Ytr), (Xdev, Ydev) = build_dataset(train, 3, stoi), build_dataset(dev, 3, stoi)
    ns = solved('14_backprop_ninja', '14.7', vocab_size=27, block_size=3, Xtr=Xtr, Ytr=Ytr)
    assert ns['my_steps'] == 20_000
    result = run_check('14.7', ns['my_params'], Xtr, Xdev, Ydev)
    assert result.state == 'correct' and result.number < result.reference == 2.2302, str(result)
    ns = solved('11_bigram', '11.2', '11.3', '11.4', words=words, stoi=stoi)
    result = run_check('11.4', ns['smoothing'])
    assert result.state == 'correct' and result.number <= result.reference + 0.002 and 'test NLL' in result.message, str(result)
    from functools import partial
    from exp.nb_05 import get_mnist_dls
    dls = get_mnist_dls(64)
    ns = solved('05_anneal', '05.4', dls=dls, partial=partial)
    result = run_check('05.4', ns['my_learn'], dls)
    assert result.state == 'correct' and result.number > result.reference, str(result)


def test_untouched_starters_report_not_attempted():
    "Each starter cell as the notebook gives it, run, then its check line: 'not attempted' for every exercise."
    from exp.nb_11 import build_vocab, load_names
    words = load_names()
    seen = set()
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        ns = solved(path.stem, words=words, stoi=build_vocab(words)[0], forward_by_hand=forward_by_hand())
        for id, i in starter_cells(nb).items():
            exec(nb.cells[i].source, ns)
            call = ast.parse(nb.cells[i + 1].source.strip().splitlines()[-1]).body[0].value
            args = [eval(ast.unparse(a), ns | {name: None for name in names_in(a) if name not in ns}) for a in call.args[1:]]
            assert run_check(id, *args).state == 'not attempted', (id, str(run_check(id, *args)))
            seen.add(id)
    assert seen == set(CHECKS)
    def blank(f, d, Yb): d.logprobs = ...   # an attempt at nothing but `...` is not an attempt either
    assert run_check('14.1', blank, forward_by_hand()).state == 'not attempted'


# ---- the usual mistakes fail with their hint; hard-coded answers fail on fresh inputs ----

def test_00_the_sample_std_fails_with_its_hint():
    failing(run_check('00.1', lambda xs: (sum(xs) / len(xs), (sum((x - sum(xs) / len(xs)) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5)),
            'divide by n')
    assert run_check('00.1', solved('00_exports', '00.1')['mean_and_std']).state == 'correct'


def test_01_wrong_predictions_fail_without_giving_the_answer():
    answer = dict(solved('01_matmul', '01.1')['predicted_shapes'])
    answer['torch.zeros(5, 1, 4) * torch.zeros(3, 1)'] = (5, 1, 4)
    r = failing(run_check('01.1', answer), 'from the right')
    assert '(5, 3, 4)' not in str(r)
    answer['m + c[:, None]'] = ...
    failing(run_check('01.1', answer), 'still to answer')
    homework = dict(solved('01_matmul', '01.2')['homework'])
    homework['small_a[0, :, None] * small_b'] = [[1, 0], [0, 1], [1, 1]]   # b, unscaled
    failing(run_check('01.2', homework), 'multiplied')


def test_01_einsum_and_no_loop_mistakes():
    strings = dict(solved('01_matmul', '01.3')['einsum_strings'])
    failing(run_check('01.3', strings | {'transpose': 'ij->ij'}), 'other order')
    failing(run_check('01.3', strings | {'batch matmul': 'ik,kj->ij'}), 'raised', 'batch index')
    failing(run_check('01.3', strings | {'trace': 'ii->i'}), 'empty output')
    def wrong_axis(a, b): return (a[:, :, None] * b[None]).sum(0)
    def uses_at(a, b): return a @ b
    small = torch.tensor([[4., 5.], [10., 11.]])
    def hard_coded(a, b): return small
    failing(run_check('01.4', wrong_axis), 'which axis')
    failing(run_check('01.4', uses_at), 'uses `@`')
    failing(run_check('01.4', hard_coded))


def test_11_trigram_mistakes_and_hard_coded_answers():
    from exp.nb_11 import build_vocab, read_words
    from exp.nb_00a import get_file
    words = read_words(get_file('names', 'names.txt'))
    stoi, _ = build_vocab(words)
    failing(run_check('11.1', {'trigrams in names.txt': 228_146 + 32_033,
                               'trigram NLL on the training names below the bigram 2.4546': True}), "'emma'")
    one_dot = mutated('11_bigram', '11.2', 'trigram_counts', "[stoi['.'], stoi['.']] + encode_word", "[stoi['.']] + encode_word")
    failing(run_check('11.2', one_dot), "two '.' in front")
    names_counts = solved('11_bigram', '11.2')['trigram_counts'](words, stoi)
    failing(run_check('11.2', lambda words, stoi: names_counts))   # the right tensor for names.txt, for any input
    wrong_axis = mutated('11_bigram', '11.3', 'trigram_nll', 'P.sum(2, keepdim=True)', 'P.sum(0, keepdim=True)')
    failing(run_check('11.3', wrong_axis), 'last axis')
    total = mutated('11_bigram', '11.3', 'trigram_nll', '.log().mean()', '.log().sum()')
    failing(run_check('11.3', total), 'average')
    failing(run_check('11.3', lambda words, N, stoi, smoothing=1: 2.0927))
    failing(run_check('11.4', 10), 'log scale')
    failing(run_check('11.4', 0), 'positive')


def test_11_bigram_loss_mistakes():
    def no_regulariser(W, xs, ys): return F.cross_entropy(W[xs], ys)
    def summed(W, xs, ys): return F.cross_entropy(W[xs], ys, reduction='sum') + 0.01 * (W ** 2).mean()
    def one_hot(W, xs, ys): return F.cross_entropy(F.one_hot(xs, W.shape[0]).to(W.dtype) @ W, ys) + 0.01 * (W ** 2).mean()
    def detached(W, xs, ys): return (F.cross_entropy(W[xs], ys) + 0.01 * (W ** 2).mean()).detach()
    failing(run_check('11.5', no_regulariser), 'regulariser')
    failing(run_check('11.5', summed), 'mean')
    failing(run_check('11.5', one_hot), 'index W')
    failing(run_check('11.5', detached), 'no gradient')


@pytest.mark.parametrize('id, name, old, new, hint', [
    ('14.1', 'backward_cross_entropy', '(f.counts * d.probs).sum(1, keepdim=True)', '(f.counts * d.probs).sum(1)', 'keepdim'),
    ('14.1', 'backward_cross_entropy', 'd.counts = d.counts + torch.ones_like(f.counts) * d.counts_sum', 'pass', 'used twice'),
    ('14.1', 'backward_cross_entropy', '-f.counts_sum ** -2', 'f.counts_sum ** -2', '-x^-2'),
    ('14.2', 'backward_layer2', '(1.0 - f.h ** 2)', '(1.0 - f.hpreact ** 2)', 'tanh(x) is h'),
    ('14.2', 'backward_layer2', '(f.bnraw * d.hpreact).sum(0, keepdim=True)', '(f.bnraw * d.hpreact).sum(0)', 'keepdim'),
    ('14.3', 'backward_batchnorm', '1.0 / (n - 1) * torch', '1.0 / n * torch', 'n - 1'),
    ('14.3', 'backward_batchnorm', '-d.bndiff.sum(0, keepdim=True)', '-d.bndiff.sum(0)', 'keepdim'),
    ('14.4', 'backward_layer1', 'torch.zeros_like(f.C).index_add_(0, Xb.view(-1), d.emb.view(-1, f.C.shape[1]))',
     'torch.zeros_like(f.C).index_copy_(0, Xb.view(-1), d.emb.view(-1, f.C.shape[1]))', 'never assign'),
])
def test_14_each_usual_mistake_fails_with_its_hint(id, name, old, new, hint):
    forward = forward_by_hand()
    assert run_check(id, solved('14_backprop_ninja', id)[name], forward).state == 'correct'
    r = failing(run_check(id, mutated('14_backprop_ninja', id, name, old, new), forward), hint)
    assert 'start with the first wrong one' in r.hint


def test_14_fused_mistakes_and_hard_coded_answers():
    def not_averaged(logits, Y, eps):
        n, v = logits.shape
        target = torch.full_like(logits, eps / v); target[torch.arange(n), Y] += 1 - eps
        return F.softmax(logits, 1) - target
    failing(run_check('14.5', not_averaged), 'divide by n')
    def paper_style(logits, Y, eps):   # eps spread over the *other* classes only
        n, v = logits.shape
        target = torch.full_like(logits, eps / (v - 1)); target[torch.arange(n), Y] = 1 - eps
        return (F.softmax(logits, 1) - target) / n
    failing(run_check('14.5', paper_style), 'every class')
    fixed = torch.zeros(32, 27, dtype=torch.float64)
    failing(run_check('14.5', lambda logits, Y, eps: fixed))
    def gain_outside(dout, gain, var_inv, xhat):
        dim = dout.shape[1]
        return gain * var_inv / dim * (dim * dout - dout.sum(1, keepdim=True) - xhat * (dout * xhat).sum(1, keepdim=True))
    failing(run_check('14.6', gain_outside), 'gain varies')
    bessel = mutated('14_backprop_ninja', '14.6', 'layernorm_backward', '- xhat * (dxhat * xhat)', '- dim / (dim - 1) * xhat * (dxhat * xhat)')
    failing(run_check('14.6', bessel), 'no Bessel')


def test_14_challenge_refuses_over_budget_and_reports_numbers():
    from exp.nb_14 import init_ninja_params
    g = torch.Generator().manual_seed(0)
    X, Y = torch.randint(0, 27, (500, 3), generator=g), torch.randint(0, 27, (500,), generator=g)
    failing(run_check('14.7', init_ninja_params(27, n_hidden=300, generator=g), X, X, Y), 'over the budget')
    r = failing(run_check('14.7', init_ninja_params(27, n_hidden=200, generator=g), X, X, Y), '2.2302')
    failing(run_check('14.7', [1, 2], X, X, Y), '7 trained tensors')
    assert r.number is None


# ---- the mechanism ----

def test_the_mechanism_refuses_unknown_exercises_and_reports_errors():
    with pytest.raises(ValueError, match="no exercise '11.9'.*11.1"): run_check('11.9', ...)
    with pytest.raises(ValueError, match='not an exercise number'): run_check('eleven', ...)
    r = failing(run_check('11.5', lambda W, xs, ys: W[xs, ys, 0]))
    assert r.message.startswith('your code raised IndexError')


def test_a_check_result_is_shown_as_text_and_saved_as_json():
    r = run_check('00.1', solved('00_exports', '00.1')['mean_and_std'])
    bundle = r._repr_mimebundle_()
    assert bundle['text/plain'].startswith('Exercise 00.1 (mean_and_std of a list of numbers): correct')
    assert bundle[EXERCISE_MIME] == {'id': '00.1', 'title': 'mean_and_std of a list of numbers', 'state': 'correct',
                                     'number': None, 'reference': None, 'budget': ''}


def test_fill_solutions_refuses_a_missing_or_an_extra_solution(tmp_path):
    nb = nbformat.read(ROOT / 'nbs/00_exports.ipynb', as_version=4)
    (tmp_path / '00_exports.py').write_text('# %% exercise 00.2\nx = 1\n')
    with pytest.raises(ValueError, match='no solution for exercise 00.1'): fill_solutions(nb, 'nbs/00_exports.ipynb', tmp_path)
    (tmp_path / '00_exports.py').write_text('# %% exercise 00.1\nx = 1\n# %% exercise 00.2\ny = 2\n')
    with pytest.raises(ValueError, match='solution for exercise 00.2, which 00_exports.ipynb does not set'):
        fill_solutions(nb, 'nbs/00_exports.ipynb', tmp_path)
    (tmp_path / '00_exports.py').unlink()
    with pytest.raises(ValueError, match='no solutions file'): fill_solutions(nb, 'nbs/00_exports.ipynb', tmp_path)
    (tmp_path / '00_exports.py').write_text('# %% exercise 00.1\nx = 1\n')
    i = starter_cells(nb)['00.1']
    assert fill_solutions(nb, 'nbs/00_exports.ipynb', tmp_path).cells[i].source == 'x = 1\n'


def test_the_digest_of_a_notebook_covers_the_checks_it_loads(course):
    shutil.copytree(ROOT / 'exercises', course / 'exercises', ignore=shutil.ignore_patterns('__pycache__'))
    path = make_notebook(course / 'nbs/11_x.ipynb', 'from exercises import check_exercise', "check_exercise('11.2', None)")
    nb = nbformat.read(path, as_version=4)
    before = code_digest(nb, course)
    (course / 'exercises/nb_01.py').write_text('# changed\n')
    assert code_digest(nb, course) == before                  # 01's checks: not this notebook's
    (course / 'exercises/nb_11.py').write_text('# changed\n')
    assert code_digest(nb, course) != before


# ---- the command lines ----

def run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=os.environ | {'PYTHONPATH': str(ROOT)})


def test_progress_lists_every_exercise_of_the_course_with_its_state(tmp_path):
    out = run('-m', 'exercises')
    assert out.returncode == 0, out.stderr
    for id in CHECKS: assert f' {id} ' in out.stdout, id
    assert f"0 of {len(CHECKS)} correct" in out.stdout and 'not attempted' in out.stdout
    # a learner's copy in which 00.1 was solved and checked, and 01.1 never run
    shutil.copy(ROOT / 'nbs/00_exports.ipynb', tmp_path)
    nb = nbformat.read(ROOT / 'nbs/01_matmul.ipynb', as_version=4)
    for cell in nb.cells:
        if 'check_exercise(' in cell.get('source', ''): cell.outputs = []
    nbformat.write(nb, tmp_path / '01_matmul.ipynb')
    nb = nbformat.read(tmp_path / '00_exports.ipynb', as_version=4)
    check = next(c for c in nb.cells if c.cell_type == 'code' and c.source.startswith("check_exercise('00.1'"))
    check.outputs = [nbformat.v4.new_output('display_data', data=run_check('00.1', solved('00_exports', '00.1')['mean_and_std'])._repr_mimebundle_())]
    nbformat.write(nb, tmp_path / '00_exports.ipynb')
    out = run('-m', 'exercises', '--nbs', str(tmp_path))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any('00.1' in line and 'correct' in line for line in lines)
    assert any('01.1' in line and 'not run' in line for line in lines)
    assert '1 of 5 correct, 0 failing, 0 not attempted, 4 not run yet' in out.stdout


def test_progress_refuses_a_missing_folder_and_an_unknown_flag(tmp_path):
    out = run('-m', 'exercises', '--nbs', str(tmp_path / 'nope'))
    assert out.returncode == 1 and 'no such folder' in out.stderr
    out = run('-m', 'exercises', '--nb', str(tmp_path))
    assert out.returncode == 2 and '--nbs' in out.stderr


def test_the_runner_never_saves_the_solutions(tmp_path):
    copy = tmp_path / '00_exports.ipynb'
    shutil.copy(ROOT / 'nbs/00_exports.ipynb', copy)
    before = copy.read_bytes()
    out = run('run_notebook.py', str(copy), '--save', '--solutions')
    assert out.returncode == 2 and 'nothing was run' in out.stderr
    assert copy.read_bytes() == before
