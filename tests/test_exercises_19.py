"""The exercises of 19_modern_gpt: each reference passes, each usual mistake fails with its hint, hard-coded answers fail
on fresh inputs, and the answers are not given away (test_exercises.py covers the layout, the reference solutions in the
notebook and the untouched starters)."""

import pytest, torch

from conftest import correct
from exercises import run_check
from test_exercises import failing, mutated, solved

STEM = '19_modern_gpt'


# ---- 19.1: rotate one pair ----

def test_19_1_the_reference_passes_and_equals_apply_rope():
    from exp.nb_19 import apply_rope, rope_angles
    rotate_pair = solved(STEM, '19.1')['rotate_pair']
    correct(run_check('19.1', rotate_pair))
    x = torch.randn(3, 8, dtype=torch.float64)
    cos, sin = rope_angles(8, torch.tensor([5]))
    theta = 10000. ** -(torch.arange(0, 8, 2, dtype=torch.float64) / 8)
    pairs = [rotate_pair(x[:, i], x[:, i + 4], 5, theta[i].item()) for i in range(4)]
    want = apply_rope(x, cos, sin)
    for i, (a, b) in enumerate(pairs):
        torch.testing.assert_close(a, want[:, i]); torch.testing.assert_close(b, want[:, i + 4])


@pytest.mark.parametrize('old, new, hint', [
    ('angle = position * theta', 'angle = theta', 'the angle grows with the position'),
    ('return x1 * cos - x2 * sin, x1 * sin + x2 * cos', 'return x1 * cos + x2 * sin, -x1 * sin + x2 * cos', 'counter-clockwise'),
    ('return x1 * cos - x2 * sin, x1 * sin + x2 * cos', 'return x1 * sin + x2 * cos, x1 * cos - x2 * sin', 'in that order'),
    ('return x1 * cos - x2 * sin, x1 * sin + x2 * cos', 'return x1 * cos, x2 * cos', 'complex number'),
    ('return x1 * cos - x2 * sin, x1 * sin + x2 * cos', 'return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos])', 'return the pair'),
])
def test_19_1_each_usual_mistake_fails_with_its_hint(old, new, hint):
    failing(run_check('19.1', mutated(STEM, '19.1', 'rotate_pair', old, new)), hint)


def test_19_1_a_call_of_the_notebooks_rope_and_a_hard_coded_answer_fail():
    def uses_rope(x1, x2, position, theta):
        return apply_rope(x1, x2, position)   # noqa: F821 (never runs)
    failing(run_check('19.1', uses_rope), 'apply_rope')
    fixed = torch.randn(5, dtype=torch.float64)
    failing(run_check('19.1', lambda x1, x2, position, theta: (fixed, fixed)), 'the wrong pair')


# ---- 19.2: which scores change ----

def test_19_2_the_reference_passes_and_each_wrong_prediction_fails_with_its_hint():
    right = solved(STEM, '19.2')['score_changes']
    correct(run_check('19.2', right))
    hints = {'both positions + 7 (m = 12, n = 9)': 'm - n only', 'the query one position later (m = 6, n = 2)': 'now 4',
             'the positions swapped (m = 2, n = 5)': 'sin is odd', 'both positions doubled (m = 10, n = 4)': 'doubles too',
             'q and k both multiplied by 3, positions as they were': 'keeps lengths'}
    for key, hint in hints.items():
        flipped = {'same': 'changes', 'changes': 'same'}[right[key]]
        r = failing(run_check('19.2', right | {key: flipped}), hint)
        assert repr(right[key]) not in r.hint
    assert run_check('19.2', dict.fromkeys(right, ...)).state == 'not attempted'
    failing(run_check('19.2', {k: right[k] for k in list(right)[:3]}), 'exactly these keys')


# ---- 19.3: one Newton-Schulz step ----

def test_19_3_the_reference_passes():
    correct(run_check('19.3', solved(STEM, '19.3')['ns_step']))


@pytest.mark.parametrize('old, new, hint', [
    ('return a * X + (b * A + c * A @ A) @ X', 'return a * X + (b * A + c * A * A) @ X', 'matrix product A @ A'),
    ('A = X @ X.T ', 'A = X.T @ X ', 'rows x rows'),
    ('return a * X + (b * A + c * A @ A) @ X', 'return a * X + X @ (b * A + c * A @ A)', 'from the left'),
    ('return a * X + (b * A + c * A @ A) @ X', 'return (b * A + c * A @ A) @ X', 'three terms'),
])
def test_19_3_each_usual_mistake_fails_with_its_hint(old, new, hint):
    failing(run_check('19.3', mutated(STEM, '19.3', 'ns_step', old, new)), hint)


def test_19_3_calling_newton_schulz_is_refused():
    def lazy(X, a, b, c):
        return newton_schulz(X, 1, (a, b, c))   # noqa: F821 (never runs)
    failing(run_check('19.3', lazy), 'matrix products')


# ---- 19.4: the shapes of a key/value cache ----

def test_19_4_the_reference_passes_and_matches_the_model():
    from exercises.nb_19 import cache_truth
    right = solved(STEM, '19.4')['cache_shapes']
    correct(run_check('19.4', right))
    assert right == cache_truth()


@pytest.mark.parametrize('index, wrong, hint', [
    (0, (2, 4, 10, 128), 'n_embd / n_head'),
    (1, (2, 4, 10, 32), 'one position'),
    (2, (2, 4, 110, 32), 'last block_size'),
    (3, 2 * 4 * 64 * 32 * 4, '2 x n_layer x B'),
])
def test_19_4_each_usual_slip_fails_with_its_hint_and_the_answer_is_not_given(index, wrong, hint):
    right = solved(STEM, '19.4')['cache_shapes']
    key = list(right)[index]
    r = failing(run_check('19.4', right | {key: wrong}), hint)
    assert str(right[key]) not in r.hint + r.message
    if isinstance(right[key], int): assert f'{right[key]:,}' not in r.hint + r.message
