"Fast checks of exp.nb_16, the GPT: tokenizer, batches, attention against PyTorch's, the model against torch's transformer."
import math, re
from dataclasses import replace

import pytest, torch
from hypothesis import given, settings, strategies as st
import torch.nn.functional as F

from exp.nb_16 import (CONFIGS, CausalSelfAttention, CharTokenizer, GPT, GPTConfig, GPTTrainer, InputError,
                       TorchReferenceGPT, TrainConfig, causal_attention, count_params, estimate_loss, flops_per_token,
                       generate_tokens, get_batch, lr_schedule, make_optimizer, split_data)

TINY = GPTConfig(vocab_size=11, block_size=12, n_layer=2, n_head=3, n_embd=24, dropout=0.)


def perturbed(model, scale=0.1, seed=0):
    "The model with every parameter moved off its initialisation (biases and LayerNorm gains included)."
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters(): p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return model


# ---- the tokenizer and the data

@settings(max_examples=50, deadline=None)
@given(st.text(min_size=1, max_size=200))
def test_tokenizer_round_trip(text):
    tok = CharTokenizer(text)
    ids = tok.encode(text)
    assert tok.decode(ids) == text and tok.decode(torch.tensor(ids)) == text
    assert len(tok) == len(set(text)) and list(tok.chars) == sorted(set(text))
    assert all(0 <= i < len(tok) for i in ids)


def test_tokenizer_names_the_characters_it_does_not_know():
    tok = CharTokenizer('hello world')
    assert tok.encode('hold') == [3, 5, 4, 1]   # ' ', 'd', 'e', 'h', 'l', 'o', 'r', 'w'
    with pytest.raises(InputError, match=r"'XZ': not in the vocabulary of 8 characters ' dehlorw'"):
        tok.encode('hello ZX')


def test_split_and_batches():
    data = torch.arange(1000)
    train, val = split_data(data)
    assert (len(train), len(val)) == (900, 100) and torch.equal(torch.cat([train, val]), data)
    x, y = get_batch(train, 16, 10, torch.Generator().manual_seed(3))
    assert x.shape == y.shape == (16, 10)
    assert torch.equal(y, x + 1)                            # data[i] = i: each target is the next position
    assert torch.equal(x[:, 1:] - x[:, :-1], torch.ones(16, 9, dtype=torch.long))   # contiguous windows
    assert x.min() >= 0 and y.max() <= 899                  # inside the split
    x2, y2 = get_batch(train, 16, 10, torch.Generator().manual_seed(3))
    assert torch.equal(x, x2) and torch.equal(y, y2)
    starts = {get_batch(torch.arange(12), 1, 10, torch.Generator().manual_seed(s))[0][0, 0].item() for s in range(40)}
    assert starts == {0, 1}                                 # every start that leaves room for the target, no other


# ---- attention

@pytest.mark.parametrize('shape', [(1, 1, 1, 4), (2, 3, 10, 8), (3, 17, 5), (2, 2, 33, 16)])
def test_causal_attention_equals_sdpa_in_values_and_gradients(shape):
    g = torch.Generator().manual_seed(sum(shape))
    q, k, v = (torch.randn(shape, dtype=torch.float64, generator=g, requires_grad=True) for _ in range(3))
    ours, wei = causal_attention(q, k, v)
    theirs = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
    w = torch.randn(shape, dtype=torch.float64, generator=g)
    for a, b in zip(torch.autograd.grad((w * ours).sum(), (q, k, v)), torch.autograd.grad((w * theirs).sum(), (q, k, v))):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    assert torch.equal(wei.triu(1), torch.zeros_like(wei))
    torch.testing.assert_close(wei.sum(-1), torch.ones(shape[:-1], dtype=torch.float64))


def test_causal_attention_scales_by_the_head_size_not_the_embedding():
    "With keys and queries of size 4 inside an embedding of 16, 1/sqrt(4) is right and 1/sqrt(16) is not."
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 4, 6, 4, dtype=torch.float64, generator=g) for _ in range(3))
    out, _ = causal_attention(q, k, v)
    mask = torch.ones(6, 6, dtype=torch.bool).tril()
    by_embedding = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=16 ** -0.5)
    assert not torch.allclose(out, by_embedding, atol=1e-3)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.5))


def test_attention_dropout_only_in_training():
    q = k = v = torch.randn(2, 5, 8)
    torch.testing.assert_close(causal_attention(q, k, v, dropout=0.9, training=False)[0], causal_attention(q, k, v)[0])
    torch.manual_seed(0)
    assert not torch.allclose(causal_attention(q, k, v, dropout=0.5, training=True)[0], causal_attention(q, k, v)[0])


def test_fused_and_scratch_attention_agree_with_the_same_weights():
    torch.manual_seed(0)
    ours = CausalSelfAttention(replace(TINY, fused=False)).double()
    fused = CausalSelfAttention(replace(TINY, fused=True)).double()
    fused.load_state_dict(ours.state_dict())
    x = torch.randn(3, 12, 24, dtype=torch.float64)
    torch.testing.assert_close(ours(x), fused(x), rtol=1e-10, atol=1e-10)


def test_gpt_config_refuses_heads_that_do_not_divide_the_embedding():
    with pytest.raises(InputError, match='n_embd 30 is not divisible by n_head 4'):
        GPTConfig(n_embd=30, n_head=4)


# ---- the whole model

@pytest.mark.parametrize('fused', [False, True])
def test_model_logits_and_gradients_equal_torch_transformer_reference(fused):
    torch.manual_seed(0)
    gpt = perturbed(GPT(replace(TINY, fused=fused)).double())
    ref = TorchReferenceGPT(gpt)
    idx = torch.randint(11, (4, 12))
    logits, _ = gpt(idx)
    expected = ref(idx)
    torch.testing.assert_close(logits, expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(gpt(idx[:, :7])[0], logits[:, :7], rtol=1e-10, atol=1e-10)   # causal: a prefix alone, the same
    w = torch.randn_like(logits)
    (w * logits).sum().backward(); (w * expected).sum().backward()
    torch.testing.assert_close(gpt.tok_emb.weight.grad, ref.tok_emb.weight.grad, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(gpt.blocks[0].attn.query.weight.grad, ref.layers[0].self_attn.in_proj_weight.grad[:24],
                               rtol=1e-6, atol=1e-8)


def test_model_reference_disagrees_when_a_weight_differs():
    "The comparison can fail: one changed entry in one block changes the logits."
    torch.manual_seed(0)
    gpt = perturbed(GPT(TINY).double())
    ref = TorchReferenceGPT(gpt)
    with torch.no_grad(): gpt.blocks[1].ffwd.net[2].weight[3, 5] += 0.5
    idx = torch.randint(11, (2, 12))
    assert (gpt(idx)[0] - ref(idx)).abs().max() > 1e-4


def test_init_and_initial_loss():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=4, n_embd=64))
    for name, p in gpt.named_parameters():
        if name.endswith('.bias'): assert torch.equal(p, torch.zeros_like(p)), name
        elif 'ln' in name: assert torch.equal(p, torch.ones_like(p)), name
        else: assert abs(p.std().item() - 0.02) < 0.003, name
    x = torch.randint(65, (8, 32))
    _, loss = gpt(x, torch.randint(65, (8, 32)))
    assert abs(loss.item() - math.log(65)) < 0.05


def test_lecture_config_has_its_parameter_count_and_trains_one_step():
    cfg, tc = CONFIGS['lecture']
    assert (cfg.block_size, cfg.n_embd, cfg.n_head, cfg.n_layer, cfg.dropout) == (256, 384, 6, 6, 0.2)
    assert (tc.batch_size, tc.lr, tc.max_iters) == (64, 3e-4, 5000)
    torch.manual_seed(1337)
    model = GPT(cfg)
    assert count_params(model) == 10_788_929
    opt = make_optimizer(model, tc)
    x, y = get_batch(torch.randint(65, (1000,)), 2, 256, torch.Generator().manual_seed(0))
    before = model.lm_head.weight.detach().clone()
    _, loss = model(x, y)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    opt.step()
    assert not torch.equal(before, model.lm_head.weight)
    assert flops_per_token(model) == 6 * (10_788_929 - 65 * 384 - 256 * 384) + 12 * 6 * 256 * 384


def test_generation_crops_the_context_to_block_size():
    torch.manual_seed(0)
    gpt = GPT(TINY)
    lengths = []
    gpt.register_forward_pre_hook(lambda m, args: lengths.append(args[0].shape[1]))
    start = torch.randint(11, (2, 3))
    out = generate_tokens(gpt, start, 20, TINY.block_size, torch.Generator().manual_seed(5))
    assert out.shape == (2, 23) and torch.equal(out[:, :3], start)
    assert lengths == list(range(3, 13)) + [12] * 10
    with pytest.raises(ValueError, match='longer than block_size 12'):
        gpt(out)
    # the same tokens, sampled by hand from the last 12 positions
    g, idx = torch.Generator().manual_seed(5), start
    with torch.no_grad():
        for _ in range(20):
            probs = gpt(idx[:, -12:])[0][:, -1].softmax(-1)
            idx = torch.cat([idx, torch.multinomial(probs, 1, generator=g)], 1)
    assert torch.equal(idx, out)
    assert gpt.training   # generation put the model back in training mode


def test_generation_with_temperature_and_top_k_draws_from_the_reshaped_distribution():
    "The same tokens as drawn by hand from softmax(logits / temperature), all but the top_k set to -inf."
    torch.manual_seed(0)
    gpt = perturbed(GPT(TINY), scale=0.5)
    start = torch.randint(11, (2, 3))
    for temperature, top_k in [(0.5, None), (2.0, None), (1.0, 3), (0.7, 1), (1.3, 10), (1, 50)]:
        out = generate_tokens(gpt, start, 15, TINY.block_size, torch.Generator().manual_seed(5), temperature, top_k)
        g, idx = torch.Generator().manual_seed(5), start
        with torch.no_grad():
            for _ in range(15):
                logits = gpt(idx[:, -12:])[0][:, -1] / temperature
                if top_k is not None:
                    keep = logits.topk(min(top_k, 11), -1).indices
                    logits = torch.full_like(logits, float('-inf')).scatter(-1, keep, logits.gather(-1, keep))
                idx = torch.cat([idx, torch.multinomial(logits.softmax(-1), 1, generator=g)], 1)
        assert torch.equal(out, idx), (temperature, top_k)


def test_generation_defaults_are_plain_sampling_and_top_1_is_greedy():
    torch.manual_seed(1)
    gpt = perturbed(GPT(TINY), scale=0.5)
    start = torch.randint(11, (3, 2))
    plain = generate_tokens(gpt, start, 20, 12, torch.Generator().manual_seed(0))
    for same in (dict(temperature=1.), dict(temperature=1), dict(top_k=11), dict(top_k=1000), dict(temperature=1., top_k=None)):
        assert torch.equal(generate_tokens(gpt, start, 20, 12, torch.Generator().manual_seed(0), **same), plain), same
    assert not torch.equal(generate_tokens(gpt, start, 20, 12, torch.Generator().manual_seed(0), temperature=1.5), plain)
    greedy = [generate_tokens(gpt, start, 20, 12, torch.Generator().manual_seed(s), top_k=1) for s in (0, 1, 2)]
    assert torch.equal(greedy[0], greedy[1]) and torch.equal(greedy[0], greedy[2])
    idx = start
    with torch.no_grad():
        for _ in range(20): idx = torch.cat([idx, gpt(idx[:, -12:])[0][:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(greedy[0], idx)


@pytest.mark.parametrize('knobs, message', [
    (dict(temperature=0.), 'temperature must be a finite number > 0, not 0.0'),
    (dict(temperature=-1), 'temperature must be a finite number > 0, not -1'),
    (dict(temperature=float('nan')), 'not nan'),
    (dict(temperature=float('inf')), 'not inf'),
    (dict(temperature=True), 'not True'),
    (dict(temperature='1'), "not '1'"),
    (dict(top_k=0), 'top_k must be None or a whole number >= 1, not 0'),
    (dict(top_k=2.5), 'not 2.5'),
    (dict(top_k=True), 'not True'),
])
def test_generation_refuses_bad_knobs(knobs, message):
    gpt = GPT(TINY)
    with pytest.raises(ValueError, match=re.escape(message)):
        generate_tokens(gpt, torch.zeros(1, 1, dtype=torch.long), 3, 12, **knobs)


# ---- training pieces

def test_lr_schedule_warmup_cosine_floor():
    tc = TrainConfig(lr=1e-3, min_lr=1e-4, warmup_iters=10, lr_decay_iters=110)
    lr_at = lr_schedule(tc)
    for it, want in [(0, 0.), (5, 5e-4), (10, 1e-3), (60, 5.5e-4), (110, 1e-4), (1000, 1e-4)]:
        assert lr_at(it) == pytest.approx(want, abs=1e-12), it
    assert lr_schedule(TrainConfig())(4321) == pytest.approx(3e-4)


def test_weight_decay_skips_biases_and_norm_gains():
    model = GPT(TINY)
    opt = make_optimizer(model, TrainConfig(weight_decay=0.1))
    decayed, plain = opt.param_groups
    assert decayed['weight_decay'] == 0.1 and plain['weight_decay'] == 0.
    assert {p.dim() for p in decayed['params']} == {2} and {p.dim() for p in plain['params']} == {1}
    assert len(decayed['params']) + len(plain['params']) == len(list(model.parameters()))


def test_estimate_loss_uses_the_same_batches_in_eval_mode():
    torch.manual_seed(0)
    model = GPT(replace(TINY, dropout=0.5))
    data = torch.randint(11, (500,))
    a = estimate_loss(model, {'train': data, 'val': data[:100]}, 4, 12, 3)
    b = estimate_loss(model, {'train': data, 'val': data[:100]}, 4, 12, 3)
    assert a == b and model.training                      # no dropout noise, and training mode restored
    assert estimate_loss(model, {'train': data}, 4, 12, 3, seed=1) != {'train': a['train']}


def test_trainer_lowers_the_loss_and_keeps_history():
    torch.manual_seed(0)
    text = 'abcdefghij' * 60
    data = torch.tensor(CharTokenizer(text).encode(text))
    tc = TrainConfig(batch_size=8, max_iters=60, lr=3e-3, min_lr=3e-3, lr_decay_iters=60, eval_interval=30, eval_iters=2)
    trainer = GPTTrainer(GPT(replace(TINY, vocab_size=10)), tc, {'train': data, 'val': data}, 12).fit(60, log=None, bar=False)
    assert [h['iter'] for h in trainer.history] == [0, 30, 60]
    assert trainer.history[-1]['val'] < 0.5 * trainer.history[0]['val']   # a periodic text is easy to learn
    assert trainer.history[-1]['time'] > trainer.history[1]['time'] > 0


# ---- training values are checked where they are made

NAN = float('nan')


@pytest.mark.parametrize('field, value, must', [
    ('batch_size', 0, 'a whole number from 1 to 1,000,000,000'),
    ('batch_size', 2.5, 'a whole number from 1 to 1,000,000,000'),
    ('batch_size', True, 'a whole number from 1 to 1,000,000,000'),
    ('max_iters', -1, 'a whole number from 0 to 1,000,000,000'),
    ('warmup_iters', -1, 'a whole number from 0 to 1,000,000,000'),
    ('lr_decay_iters', -1, 'a whole number from 0 to 1,000,000,000'),
    ('eval_interval', 0, 'a whole number from 1 to 1,000,000,000'),
    ('eval_iters', 0, 'a whole number from 1 to 1,000,000,000'),
    ('seed', 10 ** 30, 'a whole number from 0 to 18,446,744,073,709,551,615'),
    ('lr', NAN, 'a finite number > 0'),
    ('lr', 0., 'a finite number > 0'),
    ('lr', '1e-3', 'a finite number > 0'),
    ('min_lr', -1e-4, 'a finite number >= 0'),
    ('weight_decay', NAN, 'a finite number >= 0'),
    ('weight_decay', -0.1, 'a finite number >= 0'),
    ('grad_clip', -1., 'a finite number >= 0'),
    ('grad_clip', float('inf'), 'a finite number >= 0'),
    ('beta2', 1., 'a number from 0 to 1, 1 excluded'),
])
def test_train_config_refuses_bad_values(field, value, must):
    with pytest.raises(InputError) as e: TrainConfig(**{field: value})
    assert str(e.value) == f"TrainConfig.{field} must be {must}, not {value!r}"


@pytest.mark.parametrize('field, value, must', [
    ('vocab_size', 0, 'a whole number from 1 to 1,000,000,000'),
    ('n_head', 0, 'a whole number from 1 to 1,000,000,000'),
    ('n_layer', -1, 'a whole number from 1 to 1,000,000,000'),
    ('dropout', 1., 'a number from 0 to 1, 1 excluded'),
    ('dropout', NAN, 'a number from 0 to 1, 1 excluded'),
    ('fused', 'yes', 'True or False'),
])
def test_gpt_config_refuses_bad_values(field, value, must):
    with pytest.raises(InputError) as e: GPTConfig(**{field: value})
    assert str(e.value) == f"GPTConfig.{field} must be {must}, not {value!r}"


def test_train_gpt_checks_its_overrides_before_writing(tmp_path):
    from exp.nb_16 import train_gpt
    data = tmp_path / 'data.txt'
    data.write_text('abcdefgh' * 40)
    with pytest.raises(InputError, match=r"^TrainConfig.grad_clip must be a finite number >= 0, not -1.0$"):
        train_gpt(data, tmp_path / 'a.pt', config='tiny', grad_clip=-1., log=None)
    with pytest.raises(InputError, match=r"^no training setting 'lr_max': the settings are batch_size, max_iters, lr, "):
        train_gpt(data, tmp_path / 'a.pt', config='tiny', lr_max=1., log=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['data.txt']


def test_a_resumed_run_refuses_new_training_settings(tmp_path):
    from exp.nb_16 import train_gpt
    data = tmp_path / 'data.txt'
    data.write_text('abcdefgh' * 40)
    train_gpt(data, tmp_path / 'a.pt', config='tiny', max_iters=2, log=None)
    with pytest.raises(InputError, match=r"^a resumed run keeps its training settings: drop lr$"):
        train_gpt(data, tmp_path / 'a.pt', max_iters=4, resume=True, lr=1., log=None)


# ---- the notebook asserts quality, never a time

def test_notebook_16_asserts_no_time():
    "A slow or busy machine must not fail a learner's run: headlines and asserts use losses; times are only printed."
    import ast, json
    from pathlib import Path
    from IPython.core.inputtransformer2 import TransformerManager
    nb = json.loads((Path(__file__).parent.parent / 'nbs' / '16_gpt.ipynb').read_text())
    checks = []
    for cell in nb['cells']:
        if cell['cell_type'] != 'code': continue
        tree = ast.parse(TransformerManager().transform_cell(''.join(cell['source'])))
        checks += [n for n in ast.walk(tree) if isinstance(n, ast.Assert) or
                   (isinstance(n, ast.Call) and getattr(n.func, 'id', None) in ('check_headline', 'test_eq', 'test_near'))]
    assert any(isinstance(n, ast.Call) and n.func.id == 'check_headline' for n in checks)
    timed = [ast.unparse(n) for n in checks if any(word in ast.unparse(n) for word in ("'time'", 'perf_counter', 'time.', ' min '))]
    assert timed == []
