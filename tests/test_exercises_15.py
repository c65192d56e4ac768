"""The exercises of 15_wavenet: each reference passes, each usual mistake fails with its hint, hard-coded answers fail on
fresh inputs, and the answers are not given away (test_exercises.py covers the layout, the reference solutions in the
notebook and the untouched starters)."""
import pytest, torch
import torch.nn.functional as F

from conftest import correct
from exercises import run_check
from test_exercises import failing, mutated, solved

STEM = '15_wavenet'


# ---- 15.1: the size of a deeper tree ----

def test_15_1_the_reference_is_right_and_matches_the_models():
    from exp.nb_15 import BatchNorm1d, flat_lm, hierarchical_lm
    right = solved(STEM, '15.1')['size_predictions']
    correct(run_check('15.1', right))
    count = lambda m: sum(p.numel() for p in m.parameters())
    tree_key, context_key, flat_key = right
    assert right[tree_key] == count(hierarchical_lm(27, BatchNorm1d, n_embd=16, n_hidden=96, n_levels=4)) == 62_187
    assert right[flat_key] == count(flat_lm(27, 16, BatchNorm1d, n_embd=16, n_hidden=96)) == 27_819
    assert right[context_key] == 16


def test_15_1_each_usual_slip_fails_with_its_hint_and_the_count_is_not_given_away():
    right = solved(STEM, '15.1')['size_predictions']
    tree_key, context_key, flat_key = right
    tree = right[tree_key]
    with_biases = failing(run_check('15.1', right | {tree_key: tree + 4 * 96}), 'no bias')
    assert str(tree) not in with_biases.message + with_biases.hint and f'{tree:,}' not in with_biases.message + with_biases.hint
    failing(run_check('15.1', right | {tree_key: tree - 2 * 4 * 96}), 'a gain and a shift per channel')
    failing(run_check('15.1', right | {tree_key: tree - 32 * 96 + 192 * 96}), 'first Linear read')
    failing(run_check('15.1', right | {tree_key: tree + 1}), 'layer by layer')
    failing(run_check('15.1', right | {context_key: 8}), 'merges pairs')
    failing(run_check('15.1', right | {flat_key: right[flat_key] + 96}), 'no bias')
    failing(run_check('15.1', right | {flat_key: float(right[flat_key])}))        # a count is a whole number
    failing(run_check('15.1', right | {flat_key: ...}), 'still to answer')
    failing(run_check('15.1', {tree_key: tree}), 'exactly these keys')


# ---- 15.2: flatten_consecutive ----

def test_15_2_the_reference_passes_and_equals_flatten_consecutive_on_3d_input():
    from exp.nb_15 import FlattenConsecutive
    ours = solved(STEM, '15.2')['flatten_consecutive']
    correct(run_check('15.2', ours))
    x = torch.randn(3, 8, 5)
    for n in (1, 2, 4, 8): assert torch.equal(ours(x, n), FlattenConsecutive(n)(x))


@pytest.mark.parametrize('old, new, hint', [
    ('out.squeeze(-2) if', 'out.squeeze() if', 'squeeze() would drop a leading axis'),
    ('return out.squeeze(-2) if out.shape[-2] == 1 else out', 'return out', 'drop its axis'),
    ('out = x.reshape(*lead, T // n, n * C)',
     'out = x.reshape(*lead, n, T // n, C).transpose(-3, -2).reshape(*lead, T // n, n * C)', 'not vector 0 with vector T/2'),
    ('out = x.reshape(*lead, T // n, n * C)',
     'out = x.reshape(*lead, T // n, n, C).transpose(-2, -1).reshape(*lead, T // n, n * C)', 'no interleaving'),
    ('*lead, T, C = x.shape', 'B, T, C = x.shape; lead = [B]', 'keep every leading dimension'),
])
def test_15_2_each_usual_mistake_fails_with_its_hint(old, new, hint):
    failing(run_check('15.2', mutated(STEM, '15.2', 'flatten_consecutive', old, new)), hint)


def test_15_2_an_answer_fitted_to_the_notebook_shape_fails():
    def only_the_notebook_case(x, n):                   # right for (B, 8, C) and n = 2, the notebook's first level
        return x.reshape(x.shape[0], 4, 2 * x.shape[-1])
    failing(run_check('15.2', only_the_notebook_case))
    assert run_check('15.2', lambda x, n: ...).state == 'not attempted'


# ---- 15.3: causal_conv ----

def reference_causal_conv(x, w, d):
    return F.conv1d(F.pad(x, ((w.shape[-1] - 1) * d, 0)), w, dilation=d)


def test_15_3_the_reference_passes_and_is_the_notebook_level_for_kernel_2():
    causal_conv = solved(STEM, '15.3')['causal_conv']
    correct(run_check('15.3', causal_conv))
    g = torch.Generator().manual_seed(0)
    h, W = torch.randn(2, 11, 6, generator=g, dtype=torch.float64), torch.randn(12, 5, generator=g, dtype=torch.float64)
    for d in (1, 2, 4):   # kernel 2: the pair (h[p - d], h[p]) through W, on the positions that have both
        weight = torch.stack([W[:6].T, W[6:].T], dim=-1)
        by_pairs = torch.cat([h[:, :-d], h[:, d:]], 2) @ W
        assert torch.allclose(causal_conv(h.transpose(1, 2), weight, d).transpose(1, 2)[:, d:], by_pairs, atol=1e-12)


@pytest.mark.parametrize('old, new, hint', [
    ('weight[:, :, i] @ shifted', 'weight[:, :, k - 1 - i] @ shifted', 'no kernel flip'),
    ('k, L = weight.shape[-1], x.shape[-1]', 'k, L, dilation = weight.shape[-1], x.shape[-1], 1', 'dilation` positions apart'),
    ('[x.new_zeros(*x.shape[:-1], (k - 1) * dilation), x]', '[x, x.new_zeros(*x.shape[:-1], (k - 1) * dilation)]',
     'never a later position'),
    ('padded = torch.cat([x.new_zeros(*x.shape[:-1], (k - 1) * dilation), x], dim=-1)',
     'padded = x; L = L - (k - 1) * dilation', 'zeros on the left'),
])
def test_15_3_each_usual_mistake_fails_with_its_hint(old, new, hint):
    failing(run_check('15.3', mutated(STEM, '15.3', 'causal_conv', old, new)), hint)


def test_15_3_a_library_convolution_and_a_hard_coded_answer_fail():
    library = lambda x, weight, dilation: F.conv1d(F.pad(x, ((weight.shape[-1] - 1) * dilation, 0)), weight, dilation=dilation)
    failing(run_check('15.3', library), 'library convolution')
    fixed = reference_causal_conv(torch.randn(2, 3, 10, dtype=torch.float64), torch.randn(4, 3, 2, dtype=torch.float64), 1)
    failing(run_check('15.3', lambda x, weight, dilation: fixed))


# ---- 15.4: the convolution view of a 4-level tree ----

def test_15_4_wrong_predictions_fail_with_the_hint_for_that_mistake():
    right = solved(STEM, '15.4')['conv_predictions']
    correct(run_check('15.4', right))
    dilations, padding, shared, window, conv = right
    assert right[dilations] == [1, 2, 4, 8] and right[padding] == 15   # the claims the hints rest on
    correct(run_check('15.4', right | {dilations: (1, 2, 4, 8)}))
    failing(run_check('15.4', right | {dilations: [1, 1, 1, 1]}), 'how far apart')
    failing(run_check('15.4', right | {padding: 7}), 'shortens the sequence by its dilation')
    failing(run_check('15.4', right | {shared: 1}), 'ending at j - 12')
    failing(run_check('15.4', right | {window: 7}), '8 + 4')
    r = failing(run_check('15.4', right | {conv: 15}), 'once')
    assert '[1, 2, 4, 8]' not in r.message + r.hint


def test_15_4_the_shared_nodes_and_counts_hold_for_a_real_4_level_tree():
    "The claims behind 15.4's answers, on the values of a random 4-level tree (the notebook shows the 3-level case)."
    from exp.nb_15 import BatchNorm1d, Tanh, hierarchical_lm
    torch.manual_seed(4)
    tree = hierarchical_lm(27, norm=BatchNorm1d, n_embd=6, n_hidden=9, n_levels=4).eval()
    tokens = torch.randint(1, 27, (40,))
    windows = torch.stack([tokens[j:j + 16] for j in range(20)])
    nodes, h = [], windows
    with torch.no_grad():
        for layer in tree.layers:
            h = layer(h)
            if isinstance(layer, Tanh): nodes.append(h)
    assert [tuple(n.shape[1:-1]) for n in nodes] == [(8,), (4,), (2,), ()]   # 8 + 4 + 2 + 1 = 15 nodes per window
    level2 = nodes[1]
    shared = sum(any(torch.allclose(u, v, atol=1e-6) for u in level2[10]) for v in level2[14])   # positions j, j + 4
    assert shared == 3
    assert sum(any(torch.allclose(u, v, atol=1e-6) for u in level2[10]) for v in level2[11]) == 0
