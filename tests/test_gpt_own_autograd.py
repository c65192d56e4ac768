"Tests of notebook 16a (exp.nb_16a): the GPT ops, TensorGPT, its optimizer and trainer, against torch.autograd."
import ast, json, math, re, time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

from exp.nb_00 import test_eq as check_eq, test_fail as check_fails, test_near as check_near  # renamed: pytest would collect test_*
from exp.nb_10a import Function, MatMul, Tensor, compare_with_torch, gradcheck, is_grad_enabled, no_grad
from exp.nb_16 import CONFIGS, GPT, GPTTrainer, generate_tokens, get_batch, lm_loss, split_data
from exp.nb_16a import (CrossEntropy, EmbeddingLookup, FusedLayerNorm, InvertedDropout, LogSoftmax, MaskedFill, Softmax,
                        TensorAdamW, TensorDropout, TensorGPT, TensorGPTTrainer, clip_grad_norm, composed_layer_norm,
                        op_times, tensor_generate, tensor_lm_loss)

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT / 'nbs'

FAST = settings(max_examples=25, deadline=None, derandomize=True)
NAN, INF = float('nan'), float('inf')
VOCAB = 65


def randn(shape, seed, positive=False):
    t = torch.randn(tuple(shape), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return t.abs() + 0.5 if positive else t


def ints(high, shape, seed):
    return torch.randint(high, tuple(shape), generator=torch.Generator().manual_seed(seed))


def tiny_config(**changes):
    "16's 'tiny' model config without dropout (so that two engines can agree), vocabulary 65, and its train config."
    cfg, tc = CONFIGS['tiny']
    return replace(cfg, dropout=0., vocab_size=VOCAB, **changes), tc


def torch_gpt(cfg, dtype=torch.float32, seed=0):
    "16's GPT with every parameter moved off its init (biases not 0, norm gains not 1), so that each one is tested."
    torch.manual_seed(seed)
    gpt = GPT(cfg).to(dtype)
    with torch.no_grad():
        for p in gpt.parameters(): p.add_(torch.randn_like(p) * 0.05)
    return gpt


# ---------------------------------------------------------------- EmbeddingLookup

def embed(w, idx): return EmbeddingLookup.apply(w, idx)
def torch_embed(w, idx): return F.embedding(idx, w)   # F.embedding takes (input, weight)


@pytest.mark.parametrize('idx', [torch.tensor([3, 0, 3, 3, 1]), torch.tensor([[0, 4], [4, 4], [2, 0]]), torch.tensor(2),
                                 torch.zeros(2, 0, dtype=torch.long), torch.tensor([[[1]], [[1]]], dtype=torch.int32)],
                         ids=['1d repeats', '2d repeats', '0d', 'empty', '3d int32'])
def test_embedding_matches_torch(idx):
    w = randn((5, 3), 0)
    assert compare_with_torch(embed, w, idx, torch_f=torch_embed)
    assert gradcheck(embed, [w, idx])


def test_embedding_gradient_counts_every_use():
    w = Tensor(torch.zeros(4, 2), requires_grad=True)
    embed(w, torch.tensor([[1, 1, 3], [1, 0, 3]])).sum().backward()
    check_eq(w.grad, torch.tensor([[1., 1.], [3., 3.], [0., 0.], [2., 2.]]))


@FAST
@given(st.integers(1, 4), array_shapes(min_dims=1, max_dims=3, max_side=4), st.integers(1, 3), st.data())
def test_embedding_with_repeated_indices_matches_f_embedding(rows, shape, dim, data):
    n = math.prod(shape)
    flat = data.draw(st.lists(st.integers(0, rows - 1), min_size=n, max_size=n))
    if n > 1: flat[-1] = flat[0]                     # at least one index repeats
    idx = torch.tensor(flat, dtype=torch.long).reshape(shape)
    assert compare_with_torch(embed, randn((rows, dim), n), idx, torch_f=torch_embed, rtol=1e-12, atol=1e-12)


def test_embedding_rejects_bad_indices():
    w = Tensor(torch.randn(5, 3), requires_grad=True)
    check_fails(lambda: embed(w, torch.tensor([0., 1.])), contains='indices must be a tensor of integers, not torch.float32',
                exc=TypeError)
    check_fails(lambda: embed(w, torch.tensor([True])), contains='not torch.bool', exc=TypeError)
    check_fails(lambda: embed(w, [0, 1]), contains='not list', exc=TypeError)
    check_fails(lambda: embed(w, torch.tensor([0, 5, 1])), contains='index 5 is out of range for a table of 5 rows',
                exc=IndexError)
    check_fails(lambda: embed(w, torch.tensor([[0], [-1]])), contains='index -1 is out of range', exc=IndexError)


# ---------------------------------------------------------------- MaskedFill, Softmax, LogSoftmax

def test_masked_fill_with_a_causal_mask_broadcast_over_batch_and_heads():
    future = torch.ones(5, 5, dtype=torch.bool).triu(1)
    a = randn((2, 3, 5, 5), 1)
    assert compare_with_torch(lambda x: x.masked_fill(future, -2.5), a)
    assert compare_with_torch(lambda x: x.masked_fill(future, -INF).softmax(-1), a)
    assert compare_with_torch(lambda x: MaskedFill.apply(x, future, 0.), a, torch_f=lambda x: x.masked_fill(future, 0.))
    assert gradcheck(lambda x: x.masked_fill(future, 3.), [randn((2, 1, 5, 5), 2)])
    x = Tensor(a, requires_grad=True)
    x.masked_fill(Tensor(future), 0.).backward(torch.ones(2, 3, 5, 5, dtype=torch.float64))   # our Tensor as the mask
    check_eq(x.grad, (~future).double().expand(2, 3, 5, 5))


@st.composite
def mask_cases(draw):
    "A shape for `a` and a mask shape that broadcasts to it: a suffix of its dims, some of them 1."
    shape = draw(array_shapes(min_dims=1, max_dims=4, max_side=3))
    suffix = shape[draw(st.integers(0, len(shape) - 1)):]
    return shape, tuple(draw(st.sampled_from([1, n])) for n in suffix)


@FAST
@given(mask_cases(), st.integers(0, 2**16), st.sampled_from([0., -1.5, -INF]))
def test_masked_fill_broadcasts_like_torch(case, seed, value):
    shape, mask_shape = case
    mask = torch.rand(mask_shape, generator=torch.Generator().manual_seed(seed)) < 0.5
    assert compare_with_torch(lambda x: x.masked_fill(mask, value), randn(shape, seed))


def test_masked_fill_rejects_a_non_bool_mask():
    a = Tensor(torch.randn(3, 3), requires_grad=True)
    check_fails(lambda: a.masked_fill(torch.ones(3, 3, dtype=torch.long), 0.),
                contains='masked_fill: the mask must be a bool tensor, not torch.int64', exc=TypeError)
    check_fails(lambda: a.masked_fill(Tensor(torch.ones(3, 3)), 0.), contains='not torch.float32', exc=TypeError)
    check_fails(lambda: MaskedFill.apply(a, [[True] * 3] * 3, 0.), contains='not list', exc=TypeError)


@pytest.mark.parametrize('dim', [-1, 0, 1, 2])
def test_softmax_and_log_softmax_match_torch(dim):
    x = randn((2, 3, 4), 3 + dim) * 3
    tight = dict(rtol=1e-12, atol=1e-14)
    assert compare_with_torch(lambda t: Softmax.apply(t, dim), x, torch_f=lambda t: t.softmax(dim), **tight)
    assert compare_with_torch(lambda t: t.softmax(dim), x, **tight)            # the method 16a registers on Tensor
    assert compare_with_torch(lambda t: LogSoftmax.apply(t, dim), x, torch_f=lambda t: t.log_softmax(dim), **tight)
    assert gradcheck(lambda t: Softmax.apply(t, dim), [x])
    assert gradcheck(lambda t: LogSoftmax.apply(t, dim), [x])


def test_softmax_is_stable_and_rows_sum_to_one():
    big = torch.tensor([[1000., 0., -1000.], [-INF, 0., 1.]], dtype=torch.float64)
    assert compare_with_torch(lambda t: t.softmax(-1), big)
    check_near(Tensor(randn((4, 7), 4) * 10).softmax(-1).data.sum(-1), torch.ones(4, dtype=torch.float64), rtol=0, atol=1e-12)


def test_softmax_rejects_a_dim_that_is_not_an_int():
    x = Tensor(torch.randn(2, 3))
    check_fails(lambda: x.softmax(1.0), contains='softmax: dim must be an int, not 1.0', exc=TypeError)
    check_fails(lambda: x.softmax(True), contains='dim must be an int, not True', exc=TypeError)
    check_fails(lambda: Softmax.apply(x, (0,)), contains='not (0,)', exc=TypeError)
    check_fails(lambda: LogSoftmax.apply(x, None), contains='log_softmax: dim must be an int, not None', exc=TypeError)


# ---------------------------------------------------------------- MatMul of 10a on the attention's 4-d shapes

@FAST
@given(mutually_broadcastable_shapes(num_shapes=2, min_dims=2, max_dims=2, max_side=3), st.integers(1, 4),
       st.integers(1, 4), st.integers(1, 4), st.integers(0, 2**16))
def test_matmul_4d_with_broadcast_leading_dims(lead, n, k, m, seed):
    la, lb = lead.input_shapes
    assert compare_with_torch(lambda x, y: x @ y, randn(la + (n, k), seed), randn(lb + (k, m), seed + 1))


def test_matmul_of_attention_shapes():
    q, k = randn((2, 3, 5, 4), 5), randn((2, 3, 5, 4), 6)
    assert compare_with_torch(lambda a, b: a @ b.transpose(-2, -1), q, k)
    assert gradcheck(lambda a, b: a @ b.transpose(-2, -1), [q[:1, :2], k[:1, :2]])


# ---------------------------------------------------------------- FusedLayerNorm

@pytest.mark.parametrize('shape', [(4, 6), (2, 3, 6), (1, 1, 1)])
def test_layer_norm_matches_torch(shape):
    C = shape[-1]
    x, w, b = randn(shape, 7) * 2 + 1, randn((C,), 8), randn((C,), 9)
    def ours(x, w, b): return FusedLayerNorm.apply(x, w, b, 1e-5)
    assert compare_with_torch(ours, x, w, b, torch_f=lambda x, w, b: F.layer_norm(x, (C,), w, b, 1e-5), rtol=1e-10, atol=1e-12)
    assert compare_with_torch(ours, x, w, b, torch_f=lambda x, w, b: composed_layer_norm(x, w, b), rtol=1e-10, atol=1e-12)
    assert gradcheck(ours, [x, w, b])


def test_layer_norm_gradients_for_some_inputs_only():
    x, w, b = randn((3, 5), 10), randn((5,), 11), randn((5,), 12)
    for need in [(True, False, False), (False, True, False), (False, False, True), (False, True, True)]:
        ours = [Tensor(t, requires_grad=r) for t, r in zip((x, w, b), need)]
        theirs = [t.clone().requires_grad_(r) for t, r in zip((x, w, b), need)]
        g = randn((3, 5), 13)
        FusedLayerNorm.apply(*ours, 1e-5).backward(g)
        F.layer_norm(theirs[0], (5,), theirs[1], theirs[2]).backward(g)
        for o, t, r in zip(ours, theirs, need):
            if r: check_near(o.grad, t.grad, rtol=0, atol=1e-12)
            else: check_eq(o.grad, None)


def test_layer_norm_rejects_a_wrong_weight_shape():
    x = Tensor(torch.randn(2, 6), requires_grad=True)
    check_fails(lambda: FusedLayerNorm.apply(x, torch.ones(5), torch.zeros(6), 1e-5),
                contains='layer_norm: weight (5,) and bias (6,) must both be (6,), the last dim of the input (2, 6)',
                exc=ValueError)
    check_fails(lambda: FusedLayerNorm.apply(x, torch.ones(6), torch.zeros(1, 6), 1e-5), contains='bias (1, 6)',
                exc=ValueError)


# ---------------------------------------------------------------- CrossEntropy and tensor_lm_loss

@FAST
@given(st.integers(1, 12), st.integers(2, 7), st.integers(0, 2**16))
def test_cross_entropy_over_rows_matches_torch(n, c, seed):
    logits, target = randn((n, c), seed) * 3, ints(c, (n,), seed)
    assert compare_with_torch(CrossEntropy.apply, logits, target, torch_f=F.cross_entropy, rtol=1e-10, atol=1e-12)


def test_cross_entropy_gradcheck_and_lm_loss_over_b_times_t():
    logits, target = randn((6, 5), 14), ints(5, (6,), 14)
    assert gradcheck(CrossEntropy.apply, [logits, target])
    logits3, targets = randn((2, 4, VOCAB), 15) * 2, ints(VOCAB, (2, 4), 15)
    assert compare_with_torch(tensor_lm_loss, logits3, targets, torch_f=lm_loss, rtol=1e-12, atol=1e-12)
    assert compare_with_torch(tensor_lm_loss, logits3, targets, rtol=1e-12, atol=1e-12,
                              torch_f=lambda lg, t: F.cross_entropy(lg.reshape(-1, VOCAB), t.reshape(-1)))


def test_lm_loss_rejects_bad_targets():
    logits = Tensor(torch.randn(2, 3, VOCAB), requires_grad=True)
    targets = ints(VOCAB, (2, 3), 0)
    check_fails(lambda: tensor_lm_loss(logits, targets.float()),
                contains='cross_entropy: targets must be integer class indices, not torch.float32', exc=TypeError)
    check_fails(lambda: tensor_lm_loss(logits, targets.bool()), contains='not torch.bool', exc=TypeError)
    check_fails(lambda: tensor_lm_loss(logits, torch.tensor([[0, 1, 65], [0, 0, 0]])),
                contains='cross_entropy: Target 65 is out of bounds (classes are 0 to 64)', exc=IndexError)
    check_fails(lambda: tensor_lm_loss(logits, torch.tensor([[0, 1, 2], [0, -1, 0]])), contains='Target -1 is out of bounds',
                exc=IndexError)
    check_fails(lambda: tensor_lm_loss(logits, targets[:, :2]),
                contains='lm_loss: logits must be (B, T, vocab) and targets (B, T), not (2, 3, 65) and (2, 2)', exc=ValueError)
    check_fails(lambda: tensor_lm_loss(logits.reshape(6, VOCAB), targets.reshape(6)), contains='not (6, 65) and (6,)',
                exc=ValueError)


# ---------------------------------------------------------------- ReLU (10a's, with its faster backward)

def relu_grads(x, upstream):
    "Gradient of relu at `x` for the upstream gradient, from our engine and from torch.autograd."
    ours = Tensor(x.clone(), requires_grad=True)
    out = ours.relu()
    out.backward(upstream.clone())
    theirs = x.clone().requires_grad_()
    ref = theirs.relu()
    ref.backward(upstream.clone())
    torch.testing.assert_close(out.data, ref.detach(), rtol=0, atol=0, equal_nan=True)
    return ours.grad, theirs.grad


def test_relu_gradient_at_zeros_and_at_nan_outputs_like_torch():
    x = torch.tensor([-1., 0., -0., 2., 0.5, NAN, -3., NAN], dtype=torch.float64)
    ours, theirs = relu_grads(x, torch.linspace(-1, 2, 8, dtype=torch.float64))
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    check_eq(ours != 0, torch.tensor([False, False, False, True, True, True, False, True]))  # NaN outputs pass the gradient


def test_relu_with_infinite_and_nan_upstream_gradients_like_torch():
    x = torch.tensor([-1., 0., 2., -3., 1., 0., 4., NAN])
    upstream = torch.tensor([INF, NAN, 1., -INF, NAN, -INF, INF, NAN])
    ours, theirs = relu_grads(x, upstream)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(ours, torch.tensor([0., 0., 1., 0., NAN, 0., INF, NAN]), rtol=0, atol=0, equal_nan=True)
    for bad in (INF, NAN):        # a single non-finite value where the output is 0 must not leak a NaN
        up = torch.ones(6); up[0] = bad
        ours, theirs = relu_grads(torch.tensor([-2., 1., 0., 3., -1., 5.]), up)
        check_eq(ours, torch.tensor([0., 1., 0., 1., 0., 1.]))
        check_eq(ours, theirs)


# ---------------------------------------------------------------- InvertedDropout and TensorDropout

@pytest.mark.parametrize('p', [0.1, 0.5, 0.8])
def test_dropout_drops_about_p_and_scales_the_rest(p):
    x = Tensor(torch.randn(100_000).abs() + 0.1, requires_grad=True)
    out = InvertedDropout.apply(x, p, torch.Generator().manual_seed(0))
    kept = out.data != 0
    assert abs(1 - kept.double().mean().item() - p) < 0.01, (kept.double().mean().item(), p)
    check_near(out.data[kept], x.data[kept] / (1 - p), rtol=1e-6, atol=0)
    g = torch.randn(100_000)
    out.backward(g)
    check_near(x.grad, torch.where(kept, g / (1 - p), 0.), rtol=1e-6, atol=0)   # the forward's mask, not a new one


def test_dropout_p0_p1_generator_and_bad_p():
    x = Tensor(torch.randn(1000), requires_grad=True)
    out = InvertedDropout.apply(x, 0.)
    check_eq(out.data, x.data)
    out.backward(torch.full((1000,), 3.))
    check_eq(x.grad, torch.full((1000,), 3.))
    x.zero_grad()
    out = InvertedDropout.apply(x, 1.)
    check_eq(out.data, torch.zeros(1000))
    out.sum().backward()
    check_eq(x.grad, torch.zeros(1000))
    draw = lambda seed: InvertedDropout.apply(x, 0.5, torch.Generator().manual_seed(seed)).data
    check_eq(draw(3), draw(3))
    assert not torch.equal(draw(3), draw(4))
    for bad in (-0.1, 1.5, NAN):
        check_fails(lambda: InvertedDropout.apply(x, bad), contains=f'dropout: p must be between 0 and 1, not {bad}',
                    exc=ValueError)


def test_tensor_dropout_is_off_in_eval_and_on_in_train():
    drop = TensorDropout(0.5)
    x = Tensor(torch.randn(4, 50))
    assert drop.eval()(x) is x
    assert (drop.train()(x).data == 0).any()
    cfg, _ = tiny_config()
    model = TensorGPT(replace(cfg, dropout=0.3))
    idx = ints(VOCAB, (2, 16), 1)
    model.eval()
    drops = [model.drop] + [d for b in model.blocks for d in (b.attn.attn_drop, b.attn.proj_drop, b.ffwd.net[3])]
    check_eq([d.training for d in drops], [False] * len(drops))
    check_eq(model(idx)[0].data, model(idx)[0].data)
    model.train()
    check_eq([d.training for d in drops], [True] * len(drops))
    assert not torch.equal(model(idx)[0].data, model(idx)[0].data)


# ---------------------------------------------------------------- TensorGPT: 16's GPT, parameter for parameter

def test_tensor_gpt_has_16s_parameters_in_16s_order():
    cfg, _ = tiny_config()
    gpt = torch_gpt(cfg)
    ours = TensorGPT.from_torch(gpt)
    check_eq(list(ours.state_dict()), list(gpt.state_dict()))
    check_eq([name for name, _ in ours.named_parameters()], [name for name, _ in gpt.named_parameters()])
    for (name, p), q in zip(ours.named_parameters(), gpt.parameters()):
        check_eq((name, p.dtype, p.requires_grad), (name, q.dtype, True))
        check_eq(p.data, q.detach())
    check_eq(TensorGPT.from_torch(gpt.double()).lm_head.weight.dtype, torch.float64)   # from_torch keeps the dtype
    ours.lm_head.weight.data.add_(1.)                                 # a copy: training ours leaves 16's model alone
    assert not torch.equal(ours.lm_head.weight.data, gpt.lm_head.weight.detach())
    check_eq(len(ours.parameters()), len(list(gpt.parameters())))


@pytest.mark.parametrize('T', [16, 11, 1])
def test_tensor_gpt_logits_match_the_fused_torch_gpt_in_float32(T):
    cfg, _ = tiny_config()
    assert cfg.fused
    gpt = torch_gpt(cfg)
    ours = TensorGPT.from_torch(gpt)
    idx = ints(VOCAB, (3, T), T)
    logits, loss = ours(idx, idx.roll(1, 1))
    with torch.no_grad(): ref, ref_loss = gpt(idx, idx.roll(1, 1))
    check_eq(logits.dtype, torch.float32)
    check_near(logits.data, ref, rtol=0, atol=1e-5)
    check_near(loss.data, ref_loss, rtol=0, atol=1e-5)


@pytest.mark.parametrize('T', [16, 7])
def test_tensor_gpt_gradients_match_torch_in_float64(T):
    cfg, _ = tiny_config()
    gpt = torch_gpt(cfg, torch.float64)
    ours = TensorGPT.from_torch(gpt)
    idx, targets = ints(VOCAB, (3, T), 20 + T), ints(VOCAB, (3, T), 30 + T)
    logits, loss = ours(idx, targets)
    ref_logits, ref_loss = gpt(idx, targets)
    check_near(logits.data, ref_logits.detach(), rtol=0, atol=1e-12)
    loss.backward(); ref_loss.backward()
    grads = dict(gpt.named_parameters())
    for name, p in ours.named_parameters():
        assert p.grad is not None, name
        check_eq(p.grad.dtype, torch.float64)
        err = (p.grad - grads[name].grad).abs().max().item()
        assert err <= 1e-10, f"{name}: max |ours - torch| = {err:.3g}"


def test_tensor_gpt_load_state_dict_rejects_missing_unexpected_and_misshapen():
    cfg, _ = tiny_config()
    model, state = TensorGPT(cfg), torch_gpt(cfg).state_dict()
    missing = {k: v for k, v in state.items() if k != 'lm_head.bias'}
    check_fails(lambda: model.load_state_dict(missing), contains="missing ['lm_head.bias'], unexpected []", exc=KeyError)
    check_fails(lambda: model.load_state_dict({**state, 'extra.weight': torch.ones(1)}),
                contains="missing [], unexpected ['extra.weight']", exc=KeyError)
    check_fails(lambda: model.load_state_dict({**state, 'lm_head.bias': torch.zeros(3)}),
                contains='load_state_dict: lm_head.bias is (3,) in the state, (65,) here', exc=ValueError)
    other = GPT(replace(cfg, n_embd=8)).state_dict()
    check_fails(lambda: model.load_state_dict(other), contains='is (65, 8) in the state, (65, 16) here', exc=ValueError)


def test_tensor_gpt_rejects_a_sequence_longer_than_block_size():
    cfg, _ = tiny_config()
    model = TensorGPT(cfg)
    check_fails(lambda: model(ints(VOCAB, (1, 17), 0)), contains='a sequence of 17 tokens is longer than block_size 16',
                exc=ValueError)
    check_eq(model(ints(VOCAB, (1, 16), 0))[0].shape, (1, 16, VOCAB))


# ---------------------------------------------------------------- TensorAdamW and clip_grad_norm against torch

@pytest.mark.parametrize('grad_scale,clipping', [(10., True), (1e-3, False)])
def test_adamw_and_clipping_match_torch(grad_scale, clipping):
    init = [randn((4, 3), 40), randn((3,), 41), randn((2, 2, 3), 42)]
    ours = [Tensor(t.clone(), requires_grad=True) for t in init]
    theirs = [nn.Parameter(t.clone()) for t in init]
    opt = TensorAdamW([{'params': [ours[0], ours[2]], 'wd': 0.1}, {'params': [ours[1]], 'wd': 0.}], lr=1e-2, beta2=0.99)
    ref = torch.optim.AdamW([{'params': [theirs[0], theirs[2]], 'weight_decay': 0.1},
                             {'params': [theirs[1]], 'weight_decay': 0.}], lr=1e-2, betas=(0.9, 0.99))
    for step in range(6):
        for group, ref_group in zip(opt.param_groups, ref.param_groups): group['lr'] = ref_group['lr'] = 1e-2 / (step + 1)
        for i, (p, q) in enumerate(zip(ours, theirs)):
            g = randn(p.shape, 100 * step + i) * grad_scale
            p.grad, q.grad = g.clone(), g.clone()
        norm, ref_norm = clip_grad_norm(ours, 1.), nn.utils.clip_grad_norm_(theirs, 1.)
        check_near(norm, ref_norm, rtol=1e-14, atol=0)
        check_eq(bool(ref_norm > 1.), clipping)
        for p, q in zip(ours, theirs): check_near(p.grad, q.grad, rtol=0, atol=1e-15)
        opt.step(); ref.step()
        opt.zero_grad(); ref.zero_grad()
        for p, q in zip(ours, theirs):
            check_near(p.data, q.detach(), rtol=0, atol=1e-12)
            check_eq(p.grad, None)
    assert not torch.equal(ours[0].data, init[0])


def test_adamw_in_float32_within_1e_6():
    init = [torch.randn(5, 4), torch.randn(4)]
    ours, theirs = [Tensor(t.clone(), requires_grad=True) for t in init], [nn.Parameter(t.clone()) for t in init]
    opt = TensorAdamW([{'params': ours[:1], 'wd': 0.1}, {'params': ours[1:], 'wd': 0.}], lr=1e-2, beta2=0.99)
    ref = torch.optim.AdamW([{'params': theirs[:1], 'weight_decay': 0.1}, {'params': theirs[1:], 'weight_decay': 0.}],
                            lr=1e-2, betas=(0.9, 0.99))
    for step in range(5):
        for p, q in zip(ours, theirs):
            g = torch.randn(p.shape) * 5
            p.grad, q.grad = g.clone(), g.clone()
        clip_grad_norm(ours, 1.); nn.utils.clip_grad_norm_(theirs, 1.)
        opt.step(); ref.step(); opt.zero_grad(); ref.zero_grad()
    for p, q in zip(ours, theirs): check_near(p.data, q.detach(), rtol=0, atol=1e-6)


# ---------------------------------------------------------------- training: TensorGPTTrainer against 16's GPTTrainer

def synthetic_splits(seed=1, n=2000):
    return dict(zip(('train', 'val'), split_data(ints(VOCAB, (n,), seed))))


def two_trainers(tc, seed=0):
    cfg, _ = tiny_config()
    gpt = torch_gpt(cfg, torch.float64, seed)
    ours = TensorGPT.from_torch(gpt)
    splits = synthetic_splits()
    return TensorGPTTrainer(ours, tc, splits, cfg.block_size), GPTTrainer(gpt, tc, splits, cfg.block_size)


@pytest.mark.parametrize('grad_clip', [1., 0.05, 0.])
def test_training_steps_match_16s_trainer_in_float64(grad_clip):
    _, tc = tiny_config()
    ours, theirs = two_trainers(replace(tc, grad_clip=grad_clip))
    init = {name: p.data.clone() for name, p in ours.model.named_parameters()}
    for step in range(10):
        loss, ref = ours.step(), theirs.step()
        assert isinstance(loss, float)
        assert abs(loss - ref) <= 1e-10, (step, loss, ref)
    check_eq(ours.iter, 10)
    ref_params = dict(theirs.model.named_parameters())
    for name, p in ours.model.named_parameters():
        check_near(p.data, ref_params[name].detach(), rtol=0, atol=1e-10)
        assert (p.data - init[name]).abs().max() > 1e-4, name      # every parameter was trained


def test_fit_history_and_evaluation_match_16s_trainer():
    _, tc = tiny_config()
    tc = replace(tc, eval_interval=3, eval_iters=2)
    ours, theirs = two_trainers(tc)
    lines = []
    ours.fit(6, log=lines.append, bar=False)
    theirs.fit(6, log=None, bar=False)
    check_eq([h['iter'] for h in ours.history], [0, 3, 6])
    for row, ref in zip(ours.history, theirs.history):
        check_eq(set(row), {'iter', 'time', 'train', 'val'})
        assert isinstance(row['train'], float) and isinstance(row['val'], float)
        assert abs(row['train'] - ref['train']) <= 1e-10 and abs(row['val'] - ref['val']) <= 1e-10, (row, ref)
    check_eq(len(lines), 3)
    for line, row in zip(lines, ours.history):   # the log format the regex below reads off notebook 16's outputs
        m = LOG_LINE.fullmatch(line)
        assert m, line
        check_eq((int(m[1].replace(',', '')), m[2], m[3]), (row['iter'], f"{row['train']:.4f}", f"{row['val']:.4f}"))
    assert issubclass(TensorGPTTrainer, GPTTrainer)


def test_evaluate_leaves_no_graph_and_restores_the_state():
    _, tc = tiny_config()
    ours, _ = two_trainers(tc)
    model, seen = ours.model, []
    def watched(idx, targets=None):
        logits, loss = TensorGPT.forward(model, idx, targets)
        seen.append((is_grad_enabled(), model.training, loss.requires_grad, loss._ctx))
        return logits, loss
    model.forward = watched
    losses = ours.evaluate()
    check_eq(sorted(losses), ['train', 'val'])
    assert all(type(v) is float for v in losses.values()), losses
    check_eq(set(seen), {(False, False, False, None)})
    check_eq(len(seen), 2 * tc.eval_iters)
    check_eq((is_grad_enabled(), model.training), (True, True))
    model.eval()
    ours.evaluate()
    check_eq(model.training, False)
    with no_grad(): ours.evaluate()
    check_eq(is_grad_enabled(), True)


def test_tensor_trainer_refuses_checkpoints():
    _, tc = tiny_config()
    ours, _ = two_trainers(tc)
    check_fails(ours.state_dict, contains='writes no checkpoints', exc=NotImplementedError)
    check_fails(lambda: ours.load_state_dict({}), contains='reads no checkpoints', exc=NotImplementedError)


def test_tensor_generate_length_determinism_and_16s_samples():
    cfg, _ = tiny_config()
    gpt = torch_gpt(cfg, torch.float64)
    model = TensorGPT.from_torch(gpt)
    idx = torch.tensor([[0], [7]])
    sample = lambda seed: tensor_generate(model, idx, 24, torch.Generator().manual_seed(seed))   # past block_size 16
    out = sample(0)
    check_eq(out.shape, (2, 25))
    check_eq(out[:, :1], idx)
    assert out.dtype == torch.long and 0 <= out.min() and out.max() < VOCAB
    check_eq(sample(0), out)
    assert not torch.equal(sample(1), out)
    check_eq(out, generate_tokens(gpt, idx, 24, cfg.block_size, torch.Generator().manual_seed(0)))
    check_eq((model.training, is_grad_enabled()), (True, True))
    model.eval(); sample(0)
    check_eq(model.training, False)


# ---------------------------------------------------------------- op_times

def all_methods():
    found, todo = {}, [Function]
    while todo:
        cls = todo.pop()
        found[cls] = (vars(cls).get('forward'), vars(cls).get('backward'))
        todo.extend(cls.__subclasses__())
    return found


def test_op_times_records_the_ops_used_and_restores_the_methods():
    cfg, tc = tiny_config()
    model = TensorGPT(cfg)
    before, forward = all_methods(), vars(MatMul)['forward']
    x, y = get_batch(synthetic_splits()['train'], 4, cfg.block_size, torch.Generator().manual_seed(0))
    start = time.perf_counter()
    with op_times() as seconds:
        assert vars(MatMul)['forward'] is not forward
        _, loss = model(x, y)
        loss.backward()
    elapsed = time.perf_counter() - start
    check_eq(vars(MatMul)['forward'], forward)
    check_eq(all_methods(), before)
    for op in ['EmbeddingLookup', 'MatMul', 'FusedLayerNorm', 'MaskedFill', 'Softmax', 'ReLU', 'CrossEntropy', 'Add']:
        for kind in ('forward', 'backward'):
            assert seconds[op, kind] > 0, (op, kind)
    assert ('LogSoftmax', 'forward') not in seconds and ('InvertedDropout', 'forward') not in seconds
    assert ('Softmax', 'backward') in seconds
    assert 0 < sum(seconds.values()) <= elapsed


def test_op_times_measures_seconds_and_restores_after_an_exception():
    class Slow(Function):
        def forward(ctx, a): time.sleep(0.02); return a * 1
        def backward(ctx, grad): time.sleep(0.01); return (grad,)
    forward, before = vars(MatMul)['forward'], all_methods()
    with op_times() as seconds:
        Slow.apply(Tensor(torch.ones(2), requires_grad=True)).sum().backward()
    assert 0.02 <= seconds['Slow', 'forward'] < 0.5 and 0.01 <= seconds['Slow', 'backward'] < 0.5, seconds
    with pytest.raises(RuntimeError, match='inside'):
        with op_times():
            assert vars(MatMul)['forward'] is not forward
            raise RuntimeError('inside the block')
    check_eq(vars(MatMul)['forward'], forward)
    check_eq(all_methods(), before)
    with pytest.raises(ValueError, match='at least one dimension'):   # an op that raises is timed and restored too
        with op_times() as seconds: Tensor(torch.ones(2)) @ Tensor(torch.tensor(2.))
    assert seconds['MatMul', 'forward'] > 0
    check_eq(all_methods(), before)


# ---------------------------------------------------------------- the numbers 16a quotes from 16

def notebook_cells(name):
    cells = json.loads((NBS / name).read_text())['cells']
    return [(c['cell_type'], ''.join(c['source']) if isinstance(c['source'], list) else c['source'], c.get('outputs', []))
            for c in cells]


def quoted_from_16():
    "The GPT16_VAL dict of notebook 16a's code, read without running it."
    found = {}
    for kind, src, _ in notebook_cells('16a_gpt_own_autograd.ipynb'):
        if kind != 'code' or 'GPT16_VAL' not in src: continue
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                    and node.targets[0].id == 'GPT16_VAL':
                assert node.targets[0].id not in found, f'{node.targets[0].id} is assigned twice'
                found[node.targets[0].id] = ast.literal_eval(node.value)
    return found


LOG_LINE = re.compile(r'iter +([\d,]+): train loss (\d+\.\d+), val loss (\d+\.\d+) \((\d+) s\)')


def runs_printed_by_16():
    "Each cell of notebook 16 whose saved outputs log a training run: {iteration: (train, val, seconds) as printed}."
    runs = []
    for kind, _, outputs in notebook_cells('16_gpt.ipynb'):
        texts = [out.get('text', out.get('data', {}).get('text/plain', '')) for out in outputs]
        text = ''.join(''.join(t) if isinstance(t, list) else t for t in texts)   # a stream may come in many pieces
        rows = {int(m[1].replace(',', '')): m.group(2, 3, 4) for m in LOG_LINE.finditer(text)}
        if rows: runs.append(rows)
    return runs


def test_16a_quotes_only_the_val_losses_that_16_printed():
    quoted, runs = quoted_from_16(), runs_printed_by_16()
    val = quoted['GPT16_VAL']
    assert len(val) >= 2 and runs
    matching = [run for run in runs if all(it in run and run[it][1] == f'{v:.4f}' for it, v in val.items())]
    assert matching, (f"GPT16_VAL {val} is not what notebook 16 printed: "
                      f"{[{it: r[1] for it, r in run.items()} for run in runs]}")
    run = matching[-1]
    assert max(val) == max(run), f"GPT16_VAL stops at {max(val)}, 16's run at {max(run)}"


# ---------------------------------------------------------------- regressions (each failed before its fix)

def test_layer_norm_of_a_1d_input():
    "The weight and bias gradients sum over the positions: for a 1-d input there are none to sum over."
    x, w, b = randn((5,), 1), randn((5,), 2), randn((5,), 3)
    assert compare_with_torch(lambda x, w, b: FusedLayerNorm.apply(x, w, b, 1e-5), x, w, b, atol=1e-10,
                              torch_f=lambda x, w, b: F.layer_norm(x, (5,), w, b, 1e-5))


def test_masked_fill_whose_mask_broadcasts_the_input():
    mask = torch.tensor([[True, False, False], [False, True, False]])
    assert compare_with_torch(lambda a: a.masked_fill(mask, 0.), randn((3,), 4), atol=1e-12)
    check_fails(lambda: Tensor(randn((3,), 4)).masked_fill(mask, Tensor(torch.tensor(1.), requires_grad=True)),
                contains='fill value must be a number', exc=TypeError)


def test_clip_grad_norm_scales_a_shared_gradient_once():
    "10a's backprop may hand two leaves one gradient tensor (Add returns (g, g)): clipping must scale it once."
    w1, w2 = Tensor(torch.ones(3), requires_grad=True), Tensor(torch.ones(3), requires_grad=True)
    ((w1 + w2) * torch.tensor([3., 4., 0.])).sum().backward()
    r1, r2 = nn.Parameter(torch.ones(3)), nn.Parameter(torch.ones(3))
    ((r1 + r2) * torch.tensor([3., 4., 0.])).sum().backward()
    check_near(clip_grad_norm([w1, w2], 1.), nn.utils.clip_grad_norm_([r1, r2], 1.), atol=1e-6)
    check_near(w1.grad, r1.grad, atol=1e-7); check_near(w2.grad, r2.grad, atol=1e-7)


def test_an_optimizer_made_before_load_state_dict_still_trains():
    cfg, tc = tiny_config()
    ours = TensorGPT(cfg)
    opt = TensorAdamW([{'params': ours.parameters()}], lr=1e-2)
    ours.load_state_dict(torch_gpt(cfg).state_dict())
    before = ours.lm_head.weight.data.clone()
    x = ints(VOCAB, (2, 8), 0)
    ours(x, x)[1].backward(); opt.step()
    assert not torch.equal(before, ours.lm_head.weight.data)


def test_an_optimizer_made_before_to_dtype_says_so():
    cfg, _ = tiny_config()
    ours = TensorGPT(cfg)
    opt = TensorAdamW([{'params': ours.parameters()}], lr=1e-2)
    ours.to(torch.float64)
    x = ints(VOCAB, (2, 8), 0)
    ours(x, x)[1].backward()
    check_fails(opt.step, contains='make the optimizer after it', exc=RuntimeError)


def test_from_torch_leaves_the_global_generator_alone():
    cfg, _ = tiny_config()
    gpt = torch_gpt(cfg)
    state = torch.get_rng_state()
    TensorGPT.from_torch(gpt)
    assert torch.equal(torch.get_rng_state(), state)
