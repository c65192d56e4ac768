"""exp.nb_19, the modern GPT: each from-scratch piece against its reference (float64, values and gradients, stated
tolerances), the model against 16's GPT, the key/value cache against the uncached model, the trainer and the command line."""
import subprocess, sys
from dataclasses import asdict, replace

import pytest, torch
import torch.nn.functional as F
from torch import nn

from conftest import ROOT
from exp.nb_16 import CONFIGS as CONFIGS16, GPT, GPTTrainer, InputError, count_params, generate_tokens
from exp.nb_19 import (MODERN_CHECKPOINT_FORMAT, MODERN_CONFIGS, MODERN, NS_CUBIC, KVCache, ModernGPT, ModernGPTConfig,
                       ModernTrainConfig, ModernTrainer, Muon, ReLUSquared, ReLUSquaredFunction, RMSNorm, SwiGLU,
                       apply_rope, as_modern, fast_bfloat16, generate_cached, load_modern_checkpoint, modern_main, make_modern_optimizer, muon_params,
                       newton_schulz, rope_angles, sample_modern_text, silu, wsd_schedule)

TOL = dict(rtol=1e-12, atol=1e-12)   # float64 pieces that compute the same formula in another order
SMALL = ModernGPTConfig(vocab_size=13, block_size=12, n_layer=2, n_head=2, n_embd=16, dropout=0.)


def perturbed(model, scale=0.1, seed=0):
    "The model with every parameter moved off its initialisation (gains, biases and zero-initialised weights included)."
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters(): p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return model


def grads(f, *inputs, seed=0):
    "The gradients of a random linear function of f(*inputs) with respect to the inputs."
    out = f(*inputs)
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    return torch.autograd.grad((out * w).sum(), inputs)


# ---- RMSNorm

@pytest.mark.parametrize('shape', [(5, 8), (2, 3, 16), (1, 1, 1)])
def test_rmsnorm_matches_torch_in_values_and_gradients(shape):
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * 4 + 2).requires_grad_()
    ours, theirs = RMSNorm(shape[-1]).double(), nn.RMSNorm(shape[-1], eps=1e-6).double()
    with torch.no_grad(): ours.weight.copy_(torch.randn(shape[-1], generator=g)); theirs.weight.copy_(ours.weight)
    torch.testing.assert_close(ours(x), theirs(x), **TOL)
    for a, b in zip(grads(lambda x, w: ours(x), x, ours.weight), grads(lambda x, w: theirs(x), x, theirs.weight)):
        torch.testing.assert_close(a, b, **TOL)


def test_rmsnorm_is_not_layernorm_unless_the_input_is_centred():
    x = torch.randn(4, 32, dtype=torch.float64) + 3
    rms, ln = RMSNorm(32).double(), nn.LayerNorm(32, eps=1e-6, bias=False).double()
    assert (rms(x) - ln(x)).abs().max() > 0.1                            # the mean matters for an uncentred input
    torch.testing.assert_close(rms(x - x.mean(-1, keepdim=True)), ln(x), **TOL)


# ---- RoPE

def rope_complex(x, positions, base=10000.):
    h = x.size(-1)
    x1, x2 = x.chunk(2, -1)
    theta = positions.double()[:, None] * base ** -(torch.arange(0, h, 2, dtype=torch.float64) / h)
    z = torch.complex(x1, x2) * torch.polar(torch.ones_like(theta), theta)
    return torch.cat([z.real, z.imag], -1)


@pytest.mark.parametrize('start, base', [(0, 10000.), (100, 10000.), (3, 500.)])
def test_rope_matches_complex_multiplication_in_values_and_gradients(start, base):
    x = torch.randn(2, 3, 7, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2), requires_grad=True)
    positions = torch.arange(start, start + 7)
    ours = lambda x: apply_rope(x, *rope_angles(8, positions, base))
    ref = lambda x: rope_complex(x, positions, base)
    torch.testing.assert_close(ours(x), ref(x), **TOL)
    torch.testing.assert_close(grads(ours, x)[0], grads(ref, x)[0], **TOL)


def test_rope_at_position_zero_is_the_identity_and_keeps_lengths():
    x = torch.randn(5, 3, 16, dtype=torch.float64)
    cos, sin = rope_angles(16, torch.zeros(3, dtype=torch.long))
    assert torch.equal(apply_rope(x, cos, sin), x)
    cos, sin = rope_angles(16, torch.arange(3))
    torch.testing.assert_close(apply_rope(x, cos, sin).norm(dim=-1), x.norm(dim=-1), **TOL)


def test_the_models_rope_table_is_rope_angles_in_its_dtype_past_the_block_too():
    model = ModernGPT(replace(SMALL, pos='rope'))
    for start, T in ((0, 12), (3, 5), (10, 7)):   # the last runs past block_size 12: computed, not sliced
        got, want = model.rope(start, T), rope_angles(8, torch.arange(start, start + T))
        for g, w in zip(got, want): assert g.dtype == torch.float32 and torch.equal(g, w.float())
    assert 'rope' not in ''.join(model.state_dict())   # a cache, not a weight
    model.double()                                      # the table follows the model's dtype
    for g, w in zip(model.rope(2, 4), rope_angles(8, torch.arange(2, 6))): assert g.dtype == torch.float64 and torch.equal(g, w)


@pytest.mark.parametrize('shift', [1, 37, 1000])
def test_rope_scores_depend_on_relative_positions_only(shift):
    g = torch.Generator().manual_seed(3)
    q, k = torch.randn(2, 20, 16, dtype=torch.float64, generator=g)
    def scores(offset):
        cos, sin = rope_angles(16, torch.arange(20) + offset)
        return apply_rope(q, cos, sin) @ apply_rope(k, cos, sin).T
    torch.testing.assert_close(scores(shift), scores(0), rtol=1e-9, atol=1e-9)
    cos, sin = rope_angles(16, torch.arange(20))
    moved = apply_rope(q, *rope_angles(16, torch.arange(20) + shift)) @ apply_rope(k, cos, sin).T   # only the queries moved
    assert (moved - scores(0)).abs().max() > 1e-3


# ---- feed-forwards

def test_silu_matches_torch_and_relu_squared_is_relu_squared():
    x = torch.linspace(-8, 8, 801, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(silu(x), F.silu(x), **TOL)
    torch.testing.assert_close(grads(silu, x)[0], grads(F.silu, x)[0], **TOL)
    torch.testing.assert_close(ReLUSquared()(x), F.relu(x) ** 2, rtol=0, atol=0)


@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
def test_relu_squared_hand_written_backward_is_autograds_to_the_last_bit(dtype):
    x = torch.randn(6, 7, 33, dtype=dtype, generator=torch.Generator().manual_seed(3)).requires_grad_()
    torch.testing.assert_close(grads(ReLUSquared(), x)[0], grads(lambda t: F.relu(t).square(), x)[0], rtol=0, atol=0)
    if dtype == torch.float64: assert torch.autograd.gradcheck(ReLUSquaredFunction.apply, x[0, :2])


@pytest.mark.parametrize('fused', [True, False])
def test_swiglu_is_the_gated_formula(fused):
    torch.manual_seed(4)
    m = SwiGLU(8, 12, bias=True, fused=fused).double()
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    gate, up = x @ m.gate.weight.T + m.gate.bias, x @ m.up.weight.T + m.up.bias
    torch.testing.assert_close(m(x), (gate * torch.sigmoid(gate) * up) @ m.down.weight.T + m.down.bias, **TOL)


def test_swiglu_at_eight_thirds_has_the_parameters_of_the_4x_mlp():
    cfg = ModernGPTConfig(**asdict(CONFIGS16['cpu'][0]) | dict(vocab_size=65))
    assert replace(cfg, mlp='swiglu').hidden == 341 and cfg.hidden == 512 and replace(cfg, mlp='swiglu', mlp_hidden=320).hidden == 320
    base, swiglu = count_params(ModernGPT(cfg)), count_params(ModernGPT(replace(cfg, mlp='swiglu')))
    assert abs(swiglu - base) / base < 1e-3


# ---- Newton-Schulz and Muon

@pytest.mark.parametrize('shape', [(32, 128), (128, 32), (48, 48), (3, 40, 96)])
def test_ns5_keeps_the_singular_vectors_and_puts_the_singular_values_near_one(shape):
    G = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    X = newton_schulz(G)
    U, S, Vh = torch.linalg.svd(G, full_matrices=False)
    D = U.mT @ X @ Vh.mT
    s = D.diagonal(dim1=-2, dim2=-1)
    assert (D - torch.diag_embed(s)).abs().max() < 1e-9       # X = U p(S) V^T: the same singular vectors as G
    if shape != (48, 48):   # a square Gaussian matrix has singular values near 0, which 5 steps cannot lift to 0.68
        assert 0.68 < s.min() and s.max() < 1.2, (s.min(), s.max())
    assert ((X - U @ Vh).norm() / (U @ Vh).norm()) > 0.05     # approximate by design: not the polar factor


@pytest.mark.parametrize('shape', [(32, 128), (128, 32), (20, 20)])
def test_the_cubic_iteration_converges_to_the_polar_factor(shape):
    G = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    U, _, Vh = torch.linalg.svd(G, full_matrices=False)
    steps = 60 if shape == (20, 20) else 40
    assert (newton_schulz(G, steps=steps, coeffs=NS_CUBIC) - U @ Vh).abs().max() < 1e-6
    assert (newton_schulz(G, steps=3, coeffs=NS_CUBIC) - U @ Vh).abs().max() > 1e-3   # not after a few steps


def test_newton_schulz_of_a_tall_matrix_is_the_transpose_of_its_transposes_and_batches_agree():
    G = torch.randn(4, 50, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(newton_schulz(G), newton_schulz(G.mT).mT, **TOL)
    torch.testing.assert_close(newton_schulz(G), torch.stack([newton_schulz(g) for g in G]), rtol=1e-10, atol=1e-12)
    G4 = G.view(2, 2, 50, 20)   # any leading dimensions: a batch of batches
    torch.testing.assert_close(newton_schulz(G4), newton_schulz(G).view(2, 2, 50, 20), rtol=0, atol=0)


def test_newton_schulz_is_the_formula_a_x_plus_b_a_plus_c_a_squared_times_x():
    G = torch.randn(10, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    a, b, c = 3.4445, -4.7750, 2.0315
    X = G / G.norm()
    for _ in range(5):
        A = X @ X.T
        X = a * X + (b * A + c * A @ A) @ X
    torch.testing.assert_close(newton_schulz(G, eps=0.), X, **TOL)


def test_muon_steps_by_hand_with_nesterov_momentum_and_the_shape_scale():
    g = torch.Generator().manual_seed(8)
    tall, wide = (nn.Parameter(torch.randn(s, dtype=torch.float64, generator=g)) for s in ((40, 10), (10, 40)))
    opt = Muon([tall, wide], lr=0.05, momentum=0.9, weight_decay=0.1)
    bufs = {id(p): torch.zeros_like(p) for p in (tall, wide)}
    for _ in range(3):
        before = {id(p): p.detach().clone() for p in (tall, wide)}
        for p in (tall, wide): p.grad = torch.randn(p.shape, dtype=torch.float64, generator=g)
        opt.step()
        for p, scale in ((tall, 2.), (wide, 1.)):
            bufs[id(p)] = 0.9 * bufs[id(p)] + p.grad
            want = before[id(p)] * (1 - 0.05 * 0.1) - 0.05 * scale * newton_schulz(p.grad + 0.9 * bufs[id(p)])
            torch.testing.assert_close(p.detach(), want, rtol=1e-10, atol=1e-12)


def test_muon_in_bfloat16_is_float32_muon_to_bfloat16_precision_and_keeps_the_parameters_float32():
    g = torch.Generator().manual_seed(10)
    start = [torch.randn(s, generator=g) for s in ((64, 16), (16, 64), (16, 16))]
    grad = [torch.randn(s.shape, generator=g) for s in start]
    moved = {}
    for dtype in (None, torch.bfloat16):
        params = [nn.Parameter(s.clone()) for s in start]
        for p, gr in zip(params, grad): p.grad = gr.clone()
        Muon(params, lr=0.1, ns_dtype=dtype).step()
        assert all(p.dtype == torch.float32 for p in params)
        moved[dtype] = [p.detach() - s for p, s in zip(params, start)]
    for full, half in zip(moved[None], moved[torch.bfloat16]):
        assert (half - full).norm() / full.norm() < 0.03   # bfloat16 keeps 8 bits of mantissa: about 2 significant digits
        assert (half - full).abs().max() > 0               # and it did run in bfloat16


def test_ns_dtype_auto_is_bfloat16_exactly_where_bfloat16_is_fast():
    model = ModernGPT(SMALL)
    for ns_dtype, want in (('float32', None), ('bfloat16', torch.bfloat16),
                           ('auto', torch.bfloat16 if fast_bfloat16('cpu') else None)):
        muon = make_modern_optimizer(model, ModernTrainConfig(optimizer='muon', ns_dtype=ns_dtype)).opts[1]
        assert muon.ns_dtype == want, ns_dtype
    assert fast_bfloat16('meta') and isinstance(fast_bfloat16('cpu'), bool)


def test_muon_refuses_a_vector():
    gain = nn.Parameter(torch.ones(4)); gain.grad = torch.ones(4)
    with pytest.raises(ValueError, match='matrices only'): Muon([gain]).step()


def test_the_split_gives_muon_the_blocks_matrices_and_adamw_the_rest_once():
    cfg, tc = MODERN_CONFIGS['speedrun']
    model = ModernGPT(replace(cfg, vocab_size=65, tie_embeddings=True))
    opt = make_modern_optimizer(model, tc)
    adamw, muon = opt.opts
    in_muon = [p for grp in muon.param_groups for p in grp['params']]
    in_adamw = [p for grp in adamw.param_groups for p in grp['params']]
    assert {id(p) for p in in_muon} == {id(p) for p in muon_params(model)} and len(in_muon) == 6 * cfg.n_layer
    assert model.tok_emb.weight in in_adamw and all(p is not model.tok_emb.weight for p in in_muon)
    assert len(in_muon) + len(in_adamw) == len(list(model.parameters()))   # tied: the one table once
    assert muon.param_groups[0]['lr_scale'] == tc.muon_lr / tc.lr
    assert adamw.param_groups[0]['params'] == [model.tok_emb.weight] and adamw.param_groups[0]['lr_scale'] == tc.embed_lr_scale
    assert all('lr_scale' not in grp for grp in adamw.param_groups[1:])
    assert make_modern_optimizer(model, replace(tc, optimizer='adamw', embed_lr_scale=1.)).__class__ is torch.optim.AdamW
    assert muon.param_groups[0]['weight_decay'] == tc.muon_weight_decay
    decayed = make_modern_optimizer(model, replace(tc, muon_weight_decay=0.01)).opts[1]
    assert decayed.param_groups[0]['weight_decay'] == 0.01


def test_optimizers_state_round_trips_so_two_runs_continue_alike():
    torch.manual_seed(9)
    a = perturbed(ModernGPT(SMALL)); b = ModernGPT(SMALL); b.load_state_dict(a.state_dict())
    tc = ModernTrainConfig(optimizer='muon', lr=1e-2)
    oa, ob = make_modern_optimizer(a, tc), make_modern_optimizer(b, tc)
    x = torch.randint(13, (2, 12))
    def step(model, opt):
        model(x, x)[1].backward(); opt.step(); opt.zero_grad()
    step(a, oa); step(b, ob)
    ob2 = make_modern_optimizer(b, tc); ob2.load_state_dict(ob.state_dict())
    step(a, oa); step(b, ob2)
    for name, w in a.state_dict().items(): assert torch.equal(b.state_dict()[name], w), name
    with pytest.raises(ValueError, match='a state of 1 optimizers for 2'): ob2.load_state_dict({'optimizers': [{}]})


# ---- the schedule

def test_wsd_warms_up_holds_then_decays_linearly():
    tc = ModernTrainConfig(lr=1e-3, min_lr=0., warmup_iters=10, lr_decay_iters=100, schedule='wsd', cooldown_frac=0.2)
    lr = wsd_schedule(tc)
    expected = {0: 1e-4, 4: 5e-4, 9: 1e-3, 10: 1e-3, 79: 1e-3, 80: 1e-3, 90: 5e-4, 100: 0., 500: 0.}
    for it, want in expected.items(): assert lr(it) == pytest.approx(want, abs=1e-15), it
    flat = wsd_schedule(replace(tc, cooldown_frac=0., warmup_iters=0))
    assert {flat(i) for i in range(0, 200, 7)} == {1e-3}


# ---- configurations and the model

def test_configs_cpu_is_16s_and_tiny_switches_every_change_on():
    cfg, tc = MODERN_CONFIGS['cpu']
    cfg16, tc16 = CONFIGS16['cpu']
    assert {k: getattr(cfg, k) for k in asdict(cfg16)} == asdict(cfg16) and {k: getattr(tc, k) for k in asdict(tc16)} == asdict(tc16)
    assert asdict(cfg) == asdict(ModernGPTConfig(**asdict(cfg16))) and asdict(tc) == asdict(ModernTrainConfig(**asdict(tc16)))
    tiny, ttc = MODERN_CONFIGS['tiny']
    assert (tiny.norm, tiny.pos, tiny.qk_norm, tiny.mlp, tiny.bias, ttc.optimizer, ttc.schedule) == \
           ('rms', 'rope', True, 'relu2', False, 'muon', 'wsd') and tiny.softcap > 0
    assert as_modern(cfg16, tc16, norm='rms', lr=5e-3)[0].norm == 'rms' and as_modern(cfg16, tc16, lr=5e-3)[1].lr == 5e-3


@pytest.mark.parametrize('name', ['tiny', 'cpu', 'lecture'])
@pytest.mark.parametrize('fused', [True, False])
def test_with_16s_settings_the_model_is_16s_gpt(name, fused):
    cfg16 = replace(CONFIGS16[name][0], vocab_size=65, fused=fused, dropout=0.)
    if name == 'lecture': cfg16 = replace(cfg16, n_layer=1)   # the shape of a lecture block, one of them
    torch.manual_seed(10); theirs = GPT(cfg16)
    torch.manual_seed(10); ours = ModernGPT(ModernGPTConfig(**asdict(cfg16)))
    assert count_params(ours) == count_params(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for k, w in theirs.state_dict().items(): assert torch.equal(ours.state_dict()[k], w), k   # the same draws
    theirs, ours = perturbed(theirs.double()), ours.double()
    ours.load_state_dict(theirs.state_dict())
    idx = torch.randint(65, (2, min(cfg16.block_size, 32)))
    torch.testing.assert_close(ours(idx)[0], theirs(idx)[0], **TOL)


def test_each_flag_changes_what_it_says():
    base = count_params(ModernGPT(SMALL))
    C, L, V, T, hd = 16, 2, 13, 12, 8
    assert count_params(ModernGPT(replace(SMALL, pos='rope'))) == base - T * C
    assert count_params(ModernGPT(replace(SMALL, norm='rms'))) == base - (2 * L + 1) * C
    assert count_params(ModernGPT(replace(SMALL, qk_norm=True))) == base + 2 * hd * L
    assert count_params(ModernGPT(replace(SMALL, tie_embeddings=True))) == base - V * C
    nobias = ModernGPT(replace(SMALL, bias=False))
    assert not any(n.endswith('bias') for n, _ in nobias.named_parameters())
    tied = ModernGPT(replace(SMALL, tie_embeddings=True))
    assert tied.lm_head.weight is tied.tok_emb.weight
    z = ModernGPT(replace(SMALL, zero_init=True, mlp='swiglu'))
    assert all(b.attn.proj.weight.abs().sum() == 0 and b.ffwd.down.weight.abs().sum() == 0 for b in z.blocks)
    assert ModernGPT(SMALL).blocks[0].attn.proj.weight.abs().sum() > 0
    capped = perturbed(ModernGPT(replace(SMALL, softcap=0.5)), scale=3.)
    logits = capped(torch.randint(13, (2, 12)))[0]
    assert logits.abs().max() <= 0.5 and logits.abs().max() > 0.4


@pytest.mark.parametrize('fused', [True, False])
def test_qk_norm_makes_attention_blind_to_the_scale_of_queries_and_keys(fused):
    for qk_norm in (True, False):
        torch.manual_seed(15)
        model = perturbed(ModernGPT(replace(SMALL, pos='rope', qk_norm=qk_norm, fused=fused))).double()
        idx = torch.randint(13, (2, 12))
        before = model(idx)[0]
        with torch.no_grad():
            for block in model.blocks: block.attn.query.weight.mul_(1000); block.attn.key.weight.mul_(1000)
        moved = (model(idx)[0] - before).abs().max()
        assert moved < 1e-4 if qk_norm else moved > 0.1   # 1e-4: RMSNorm's eps is not scale-free


@pytest.mark.parametrize('changes, match', [(dict(norm='batch'), "norm must be one of 'layer', 'rms'"),
                                            (dict(pos='alibi'), 'pos must be'), (dict(mlp='gelu'), 'mlp must be'),
                                            (dict(softcap=-1.), 'softcap must be'), (dict(qk_norm=1), 'qk_norm must be True or False'),
                                            (dict(pos='rope', n_embd=18, n_head=2), 'head size 9 must be even')])
def test_bad_model_settings_are_refused_where_they_are_made(changes, match):
    with pytest.raises(InputError, match=match): replace(SMALL, **changes)


def test_bad_training_settings_are_refused():
    with pytest.raises(InputError, match='optimizer must be'): ModernTrainConfig(optimizer='sgd')
    with pytest.raises(InputError, match='cooldown_frac must be'): ModernTrainConfig(cooldown_frac=1.5)
    with pytest.raises(InputError, match='muon_momentum must be'): ModernTrainConfig(muon_momentum=1.)
    with pytest.raises(InputError, match='muon_weight_decay must be'): ModernTrainConfig(muon_weight_decay=-0.1)
    with pytest.raises(InputError, match='embed_lr_scale must be'): ModernTrainConfig(optimizer='muon', embed_lr_scale=0.)
    with pytest.raises(InputError, match="a setting of optimizer 'muon'"): ModernTrainConfig(embed_lr_scale=10.)
    with pytest.raises(InputError, match="ns_dtype must be one of 'float32', 'bfloat16', 'auto'"): ModernTrainConfig(ns_dtype='float16')


# ---- the key/value cache

def stepwise(model, idx, prompt_len, window=None):
    caches = [KVCache() for _ in range(model.cfg.n_layer)]
    out = [model(idx[:, :prompt_len], caches=caches, window=window)[0]]
    for t in range(prompt_len, idx.size(1)): out.append(model(idx[:, t:t + 1], caches=caches, start=t, window=window)[0])
    return torch.cat(out, 1)


@pytest.mark.parametrize('pos', ['learned', 'rope'])
@pytest.mark.parametrize('fused', [True, False])
def test_cached_logits_equal_the_uncached_model_at_every_position(pos, fused):
    torch.manual_seed(11)
    model = perturbed(ModernGPT(replace(SMALL, **MODERN | dict(pos=pos, fused=fused, softcap=10.)))).double().eval()
    idx = torch.randint(13, (3, 12))
    for prompt_len in (1, 4, 12):
        torch.testing.assert_close(stepwise(model, idx, prompt_len), model(idx)[0], **TOL)


def test_a_rolling_cache_is_exactly_sliding_window_attention():
    torch.manual_seed(12)
    model = perturbed(ModernGPT(replace(SMALL, **MODERN))).double().eval()
    idx = torch.randint(13, (2, 40))
    rolling = stepwise(model, idx, 3, window=12)
    torch.testing.assert_close(rolling, model(idx, window=12)[0], **TOL)
    # not the uncached model on the last block: the cached keys were computed with contexts that have left the window
    assert (rolling[:, -1] - model(idx[:, -12:])[0][:, -1]).abs().max() > 1e-6
    caches = [KVCache() for _ in range(2)]
    model(idx[:, :3], caches=caches, window=12)
    for t in range(3, 40): model(idx[:, t:t + 1], caches=caches, start=t, window=12)
    assert caches[0].k.shape == (2, 2, 12, 8) and caches[0].pos.tolist() == list(range(28, 40))


def test_learned_positions_refuse_a_window_and_a_sequence_past_the_block():
    model = ModernGPT(SMALL)
    with pytest.raises(ValueError, match='relative positions'): model(torch.zeros(1, 4, dtype=torch.long), window=4)
    with pytest.raises(ValueError, match='the position table has 12 rows'): model(torch.zeros(1, 13, dtype=torch.long))
    with pytest.raises(ValueError, match='or pass a window'): ModernGPT(replace(SMALL, pos='rope'))(torch.zeros(1, 13, dtype=torch.long))


@pytest.mark.parametrize('pos, n', [('learned', 30), ('rope', 9)])
def test_generate_cached_writes_what_16s_generate_writes(pos, n):
    torch.manual_seed(13)
    model = perturbed(ModernGPT(replace(SMALL, **MODERN | dict(pos=pos))), scale=0.5).double()
    prompt = torch.randint(13, (2, 3))
    for temperature, top_k in ((1., None), (0.7, 3)):
        a = generate_tokens(model, prompt, n, 12, torch.Generator().manual_seed(1), temperature, top_k)
        b = generate_cached(model, prompt, n, 12, torch.Generator().manual_seed(1), temperature, top_k)
        assert torch.equal(a, b)
    assert model.training   # 16's generate restores the mode


def test_generate_cached_with_rope_runs_one_token_per_step_past_the_block():
    model = ModernGPT(replace(SMALL, pos='rope')).eval()
    seen = []
    model.register_forward_pre_hook(lambda m, args, kwargs: seen.append((args[0].shape[1], kwargs['start'])), with_kwargs=True)
    out = generate_cached(model, torch.zeros(1, 2, dtype=torch.long), 30, 12, torch.Generator().manual_seed(0))
    assert out.shape == (1, 32) and seen[0] == (2, 0) and seen[1:] == [(1, t) for t in range(2, 31)]


# ---- the trainer

def test_the_trainer_with_16s_settings_takes_16s_steps():
    cfg, tc = CONFIGS16['tiny']
    cfg, tc = replace(cfg, vocab_size=13, dropout=0.), replace(tc, eval_iters=1)
    data = {'train': torch.randint(13, (500,)), 'val': torch.randint(13, (100,))}
    torch.manual_seed(14); t16 = GPTTrainer(GPT(cfg), tc, data, cfg.block_size)
    torch.manual_seed(14); t19 = ModernTrainer(ModernGPT(ModernGPTConfig(**asdict(cfg))), ModernTrainConfig(**asdict(tc)), data, cfg.block_size)
    for _ in range(5): assert t16.step() == t19.step()
    for k, w in t16.model.state_dict().items(): assert torch.equal(t19.model.state_dict()[k], w), k


def test_the_trainer_sets_each_groups_rate_from_the_schedule():
    cfg, tc = MODERN_CONFIGS['tiny']
    data = {'train': torch.randint(13, (500,)), 'val': torch.randint(13, (100,))}
    trainer = ModernTrainer(ModernGPT(replace(cfg, vocab_size=13)), tc, data, cfg.block_size)
    for _ in range(3): trainer.step()
    lr = wsd_schedule(tc)(2)
    adamw, muon = trainer.opt.opts
    assert adamw.param_groups[1]['lr'] == lr and muon.param_groups[0]['lr'] == pytest.approx(lr * tc.muon_lr / tc.lr)
    assert adamw.param_groups[0]['lr'] == pytest.approx(lr * tc.embed_lr_scale)   # the token table


def test_the_token_table_steps_at_embed_lr_scale_times_the_rate_and_nothing_else_changes():
    data = {'train': torch.randint(13, (500,)), 'val': torch.randint(13, (100,))}
    moved = {}
    for scale in (1., 10.):
        tc = ModernTrainConfig(optimizer='muon', lr=1e-3, weight_decay=0., warmup_iters=0, embed_lr_scale=scale)
        torch.manual_seed(5); trainer = ModernTrainer(ModernGPT(SMALL), tc, data, SMALL.block_size)
        start = {k: w.clone() for k, w in trainer.model.state_dict().items()}
        trainer.step()
        moved[scale] = {k: w - start[k] for k, w in trainer.model.state_dict().items()}
    # Adam's first step is lr * g / (|g| + eps) per entry: ten times the rate, ten times the step, where the table moved
    torch.testing.assert_close(moved[10.]['tok_emb.weight'], 10 * moved[1.]['tok_emb.weight'], rtol=1e-5, atol=0)
    assert moved[1.]['tok_emb.weight'].abs().max() > 0
    for k in moved[1.]:
        if k != 'tok_emb.weight': assert torch.equal(moved[10.][k], moved[1.][k]), k


# ---- the command line (16's code, with this notebook's model)

def cli(*args):
    try: modern_main([str(a) for a in args])
    except SystemExit as e: return str(e.code) if e.code not in (None, 0) else None


def test_train_resume_and_sample_through_the_command_line(tmp_path, text_file, capsys):
    out, straight = tmp_path / 'run.pt', tmp_path / 'straight.pt'
    assert cli('train', f'--data={text_file}', f'--out={out}', '--config=tiny', '--max_iters=10') is None
    assert cli('resume', f'--data={text_file}', f'--out={out}', '--max_iters=16') is None
    assert cli('train', f'--data={text_file}', f'--out={straight}', '--config=tiny', '--max_iters=16') is None
    a, b = load_modern_checkpoint(out), load_modern_checkpoint(straight)
    assert a['format'] == MODERN_CHECKPOINT_FORMAT and a['config'] == 'tiny' and a['iter'] == 16 and a['model_config']['pos'] == 'rope'
    for k, w in b['model'].items(): assert torch.equal(a['model'][k], w), k     # resume is exact
    assert [(h['iter'], h['train'], h['val']) for h in a['history']] == [(h['iter'], h['train'], h['val']) for h in b['history']]
    assert [h['iter'] for h in a['history']] == [0, 10, 16]
    capsys.readouterr()
    assert cli('sample', f'--ckpt={out}', '--prompt=Shall', '--n=40', '--seed=3', '--temperature=0.8', '--top_k=5') is None
    first = capsys.readouterr().out
    assert first.startswith('Shall') and len(first) == len('Shall') + 40 + 1
    assert sample_modern_text(out, 'Shall', 40, 3, 0.8, 5) + '\n' == first


def test_the_command_line_refuses_bad_input_and_16s_checkpoints(tmp_path, text_file):
    assert 'the configurations are tiny, cpu, speedrun' in cli('train', f'--data={text_file}', f'--out={tmp_path / "x.pt"}', '--config=huge')
    import exp.nb_16 as nb16
    old = tmp_path / 'old.pt'
    nb16.train_gpt(str(text_file), old, 'tiny', 2, log=None)
    assert 'not a checkpoint of this course' in cli('sample', f'--ckpt={old}')
    assert cli('resume', f'--data={text_file}', f'--out={tmp_path / "none.pt"}').startswith('error: ')
    assert not (tmp_path / 'x.pt').exists() and not (tmp_path / 'none.pt').exists()


def test_the_command_line_is_strict_a_misspelt_flag_is_refused_before_any_work(tmp_path, text_file, capsys):
    for bad in ('--max_iter=5', '--max=5', '--pdb'):   # misspelt, abbreviated, fastcore's hidden flag
        assert cli('train', f'--data={text_file}', f'--out={tmp_path / "x.pt"}', bad) == '2', bad
        assert 'max_iters' in capsys.readouterr().err
    assert not (tmp_path / 'x.pt').exists()


def test_python_dash_m_lists_the_commands():
    r = subprocess.run([sys.executable, '-m', 'exp.nb_19', '--help'], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and all(c in r.stdout for c in ('train', 'resume', 'sample')) and 'python -m exp.nb_19' in r.stdout
