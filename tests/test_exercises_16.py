"""The exercises of 16_gpt: each reference passes, each usual mistake fails with its hint, hard-coded answers fail on
fresh inputs, and the answers are not given away (test_exercises.py covers the layout, the reference solutions in the
notebook and the untouched starters)."""
import pytest, torch
import torch.nn.functional as F

from conftest import correct
from exercises import run_check
from test_exercises import failing, mutated, solved

STEM = '16_gpt'


# ---- 16.1: the parameters of a GPT ----

def test_16_1_the_reference_is_right_and_matches_the_models():
    from exp.nb_16 import GPT, GPTConfig, count_params
    right = solved(STEM, '16.1')['param_predictions']
    correct(run_check('16.1', right))
    base, heads, block, layers = right
    config = dict(vocab_size=65, block_size=32, n_layer=3, n_head=4, n_embd=48)
    assert right[base] == count_params(GPT(GPTConfig(**config))) == 92_321
    assert right[heads] == right[base] and right[block] == right[base] + 32 * 48
    assert right[layers] == count_params(GPT(GPTConfig(**config | dict(n_layer=6)))) == 176_705


@pytest.mark.parametrize('change, hint', [
    (3 * 48 * 3, 'no bias'),
    (-2 * 48 * 7, 'gain and a shift'),
    (-32 * 48, 'two embedding tables'),
    (-65, 'output layer has a bias'),
    (-65 * 48, 'ties them'),
    (-(6 * 48 * 48 + 3 * 48) * 3, '4 x n_embd wide'),
    (-(48 * 48 + 48) * 3, 'projection back'),
    (1, 'layer by layer'),
])
def test_16_1_each_usual_slip_fails_with_its_hint_and_the_count_is_not_given_away(change, hint):
    right = solved(STEM, '16.1')['param_predictions']
    base = next(iter(right))
    r = failing(run_check('16.1', right | {base: right[base] + change}), hint)
    assert str(right[base]) not in r.message + r.hint and f'{right[base]:,}' not in r.message + r.hint


def test_16_1_heads_layers_and_the_form_of_the_answer():
    right = solved(STEM, '16.1')['param_predictions']
    base, heads, block, layers = right
    failing(run_check('16.1', right | {heads: right[base] - 3 * 48 * 48 // 2}), 'heads split n_embd')
    failing(run_check('16.1', right | {layers: 2 * right[base]}), 'there once')
    failing(run_check('16.1', right | {block: right[base]}), 'rows of the position table')
    failing(run_check('16.1', right | {base: float(right[base])}))                  # a count is a whole number
    failing(run_check('16.1', right | {layers: ...}), 'still to answer')
    failing(run_check('16.1', {base: right[base]}), 'exactly these keys')
    assert run_check('16.1', dict.fromkeys(right, ...)).state == 'not attempted'


# ---- 16.2: one head of causal self-attention ----

def test_16_2_the_reference_passes_and_equals_the_notebook_attention():
    from exp.nb_16 import causal_attention
    one_head = solved(STEM, '16.2')['one_head']
    correct(run_check('16.2', one_head))
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(2, 6, 10, generator=g, dtype=torch.float64), torch.randn(3, 10, 5, generator=g, dtype=torch.float64)
    torch.testing.assert_close(one_head(x, *w), causal_attention(x @ w[0], x @ w[1], x @ w[2])[0])


@pytest.mark.parametrize('old, new, hint', [
    ('* H ** -0.5', '* x.shape[-1] ** -0.5', 'not by C'),
    ('wei = q @ k.transpose(-2, -1) * H ** -0.5', 'wei = q @ k.transpose(-2, -1)', 'divide the affinities'),
    ("wei = wei.masked_fill(future, float('-inf')).softmax(-1)", 'wei = wei.softmax(-1)', 'hide the future'),
    ('.triu(1)', '.tril(-1)', 'not below it'),
    ("float('-inf')).softmax(-1)", "float('-inf')).softmax(-2)", 'softmax over the last dimension'),
    ('return wei @ v', 'return wei @ v, wei', 'output alone'),
    ('return wei @ v', 'return wei', 'weights (B, T, T) times the values'),
])
def test_16_2_each_usual_mistake_fails_with_its_hint(old, new, hint):
    failing(run_check('16.2', mutated(STEM, '16.2', 'one_head', old, new)), hint)


def test_16_2_a_library_call_and_a_hard_coded_answer_fail():
    failing(run_check('16.2', lambda x, w_query, w_key, w_value: F.scaled_dot_product_attention(
        x @ w_query, x @ w_key, x @ w_value, is_causal=True)), 'library attention')
    fixed = torch.zeros(2, 5, 4, dtype=torch.float64)
    failing(run_check('16.2', lambda x, w_query, w_key, w_value: fixed))


# ---- 16.3: top-k filtering ----

def test_16_3_the_reference_passes_and_samples_like_generate_tokens():
    "Drawing from softmax(top_k_filter(logits / tau, k)) is what generate_tokens does with temperature and top_k."
    from exp.nb_16 import generate_tokens
    top_k_filter = solved(STEM, '16.3')['top_k_filter']
    correct(run_check('16.3', top_k_filter))

    class Fixed(torch.nn.Module):                       # a 'model' whose logits are always the same
        def __init__(self, logits): super().__init__(); self.logits = logits
        def forward(self, idx): return self.logits.expand(idx.shape[0], idx.shape[1], -1), None
    logits = torch.randn(7, generator=torch.Generator().manual_seed(1)) * 2
    out = generate_tokens(Fixed(logits), torch.zeros(1, 1, dtype=torch.long), 400, 8, torch.Generator().manual_seed(2),
                          temperature=0.7, top_k=3)[0, 1:]
    g, by_hand = torch.Generator().manual_seed(2), []
    for _ in range(400): by_hand.append(torch.multinomial(top_k_filter(logits[None] / 0.7, 3).softmax(-1), 1, generator=g).item())
    assert out.tolist() == by_hand and set(by_hand) == set(logits.topk(3).indices.tolist())


@pytest.mark.parametrize('old, new, hint', [
    ("float('-inf')", '0.', 'a logit of 0 still gets probability'),
    ("float('-inf')", '-1e9', 'must be -inf'),
    ('logits.masked_fill(', 'logits.masked_fill_(', 'leave the input as it is'),
    ('.values[..., -1:]', '.values[..., -2:-1]', 'keep exactly k entries'),
    ('logits.topk(min(k, logits.size(-1)), dim=-1)', 'logits.topk(k, dim=-1)', 'nothing is removed'),
    ('min(k, logits.size(-1))', 'min(k + 1, logits.size(-1))', 'keep exactly k entries'),
    ('kth = logits.topk(min(k, logits.size(-1)), dim=-1).values[..., -1:]',
     'kth = logits.topk(min(k, logits.size(0)), dim=0).values[-1:]', 'the last dimension'),
])
def test_16_3_each_usual_mistake_fails_with_its_hint(old, new, hint):
    failing(run_check('16.3', mutated(STEM, '16.3', 'top_k_filter', old, new)), hint)


def test_16_3_sorted_values_and_hard_coded_answers_fail():
    failing(run_check('16.3', lambda logits, k: logits.topk(min(k, logits.size(-1)), -1).values), 'same shape')
    fixed = torch.full((10,), float('-inf'))
    failing(run_check('16.3', lambda logits, k: fixed))
    assert run_check('16.3', lambda logits, k: ...).state == 'not attempted'


# ---- 16.4: which logits move ----

def test_16_4_the_reference_is_the_truth_of_real_models():
    from exercises.nb_16 import changed_logits
    right = solved(STEM, '16.4')['which_change']
    correct(run_check('16.4', right))
    correct(run_check('16.4', {k: tuple(v) for k, v in right.items()}))
    for seed in (0, 1, 2):   # the truth does not depend on the draw
        assert changed_logits(seed) == {(2, 5), (2, 6), (2, 7)}
        assert changed_logits(seed, batch_norm=True) == {(r, t) for r in range(4) for t in range(8)}


def test_16_4_wrong_predictions_fail_with_the_hint_for_that_mistake():
    right = solved(STEM, '16.4')['which_change']
    rows, positions, bn_rows, bn_positions = right
    failing(run_check('16.4', right | {rows: [0, 1, 2, 3]}), 'nothing mixes the rows')
    failing(run_check('16.4', right | {positions: [5]}), 'positions 6 and 7 attend')
    failing(run_check('16.4', right | {positions: list(range(8))}), 'cannot see position 5')
    failing(run_check('16.4', right | {bn_rows: [2]}), 'moves them for all')
    r = failing(run_check('16.4', right | {bn_positions: [5, 6, 7]}), 'whatever their position')
    assert '[5, 6, 7]' not in r.hint
    failing(run_check('16.4', right | {positions: [7, 6, 5]}))          # in increasing order, as asked
    failing(run_check('16.4', right | {rows: 2}))
