"Fast checks of exp.nb_14 (hand-written backward passes) and exp.nb_15 (WaveNet layers); the notebooks hold the full runs."
import math
import pytest, torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from exp.nb_00 import near
from exp.nb_14 import (cmp, cross_entropy_backward, batchnorm_backward, embedding_backward, init_ninja_params,
                       ninja_forward, ninja_backward, manual_step, autograd_step)

SETTINGS = settings(max_examples=40, deadline=None)
seeds = st.integers(0, 2**31 - 1)


def check_near(a, b, rtol=0., atol=1e-10): assert near(a, b, rtol, atol), (a - b).abs().max()


# ---- 14: the fused backward passes against autograd

@SETTINGS
@given(n=st.integers(1, 40), classes=st.integers(2, 30), scale=st.floats(0.1, 20.), seed=seeds)
def test_cross_entropy_backward_matches_autograd(n, classes, scale, seed):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, classes, generator=g, dtype=torch.float64) * scale).requires_grad_()
    Y = torch.randint(0, classes, (n,), generator=g)
    F.cross_entropy(logits, Y).backward()
    check_near(cross_entropy_backward(logits.detach(), Y), logits.grad, atol=1e-12)


def test_cross_entropy_backward_rejects_mismatched_targets():
    with pytest.raises(ValueError, match=r'targets \(n,\)'):
        cross_entropy_backward(torch.randn(4, 5), torch.tensor([0, 1]))


def batchnorm_forward(x, gain, bias, unbiased, eps=1e-5):
    "The forward pass that `batchnorm_backward` differentiates: (y, var_inv, xhat)."
    var_inv = (x.var(0, keepdim=True, unbiased=unbiased) + eps) ** -0.5
    xhat = (x - x.mean(0, keepdim=True)) * var_inv
    return gain * xhat + bias, var_inv, xhat


@SETTINGS
@given(n=st.integers(2, 40), d=st.integers(1, 20), unbiased=st.booleans(), seed=seeds)
def test_batchnorm_backward_matches_autograd(n, d, unbiased, seed):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(n, d, generator=g, dtype=torch.float64) * 3 + 1).requires_grad_()
    gain = torch.rand(1, d, generator=g, dtype=torch.float64) + 0.5
    bias = torch.randn(1, d, generator=g, dtype=torch.float64)
    dout = torch.randn(n, d, generator=g, dtype=torch.float64)
    y, var_inv, xhat = batchnorm_forward(x, gain, bias, unbiased)
    (y * dout).sum().backward()
    check_near(batchnorm_backward(dout, gain, var_inv.detach(), xhat.detach(), unbiased=unbiased), x.grad, atol=1e-9)


def test_batchnorm_backward_biased_matches_torch_batch_norm():
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(16, 5, generator=g, dtype=torch.float64) * 2).requires_grad_()
    dout = torch.randn(16, 5, generator=g, dtype=torch.float64)
    (F.batch_norm(x, None, None, training=True, eps=1e-5) * dout).sum().backward()
    _, var_inv, xhat = batchnorm_forward(x.detach(), 1., 0., unbiased=False)
    check_near(batchnorm_backward(dout, torch.ones(1, 5, dtype=torch.float64), var_inv, xhat, unbiased=False), x.grad)
    # the Bessel factor matters: the unbiased formula is not the biased layer's gradient
    assert not near(batchnorm_backward(dout, 1., var_inv, xhat, unbiased=True), x.grad, 0., 1e-4)


def test_batchnorm_backward_rejects_a_batch_of_one():
    with pytest.raises(ValueError, match='at least 2'):
        batchnorm_backward(torch.randn(1, 3), 1., torch.ones(1, 3), torch.zeros(1, 3))


@SETTINGS
@given(vocab=st.integers(1, 8), n=st.integers(1, 30), block=st.integers(1, 6), dim=st.integers(1, 5), seed=seeds)
def test_embedding_backward_matches_autograd_with_repeated_indices(vocab, n, block, dim, seed):
    g = torch.Generator().manual_seed(seed)
    C = torch.randn(vocab + 2, dim, dtype=torch.float64, requires_grad=True)   # the last two rows never looked up
    X = torch.randint(0, vocab, (n, block), generator=g)                        # few tokens: many repeats
    demb = torch.randn(n, block, dim, generator=g, dtype=torch.float64)
    (C[X] * demb).sum().backward()
    dC = embedding_backward(demb, X, vocab + 2)
    check_near(dC, C.grad, atol=1e-12)
    assert torch.equal(dC[vocab:], torch.zeros(2, dim, dtype=torch.float64))


def test_embedding_backward_sums_every_occurrence():
    X = torch.tensor([[1, 1, 1], [0, 1, 3]])
    demb = torch.arange(18.).view(2, 3, 3)
    dC = embedding_backward(demb, X, 4)
    assert torch.equal(dC[1], demb[0, 0] + demb[0, 1] + demb[0, 2] + demb[1, 1])
    assert torch.equal(dC[2], torch.zeros(3))


def test_embedding_backward_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="X's shape"):
        embedding_backward(torch.randn(4, 2, 3), torch.zeros(4, 3, dtype=torch.long), 5)


def test_cmp_compares_shapes_before_values():
    t = torch.ones(1, 4, requires_grad=True)
    (2 * t).sum().backward()
    assert cmp('t', torch.full((1, 4), 2.), t)['exact']
    row = cmp('t', torch.full((4,), 2.), t)           # broadcasting would make these "equal"
    assert (row['exact'], row['approx'], row['maxdiff']) == (False, False, math.inf)


def test_manual_steps_track_autograd_steps():
    g = torch.Generator().manual_seed(1)
    manual = init_ninja_params(27, 10, 50, 3, generator=g, dtype=torch.float64)
    auto = [p.clone().requires_grad_() for p in manual]
    for _ in range(20):
        X, Y = torch.randint(0, 27, (32, 3), generator=g), torch.randint(0, 27, (32,), generator=g)
        check_near(manual_step(manual, X, Y, 0.1), autograd_step(auto, X, Y, 0.1), atol=1e-12)
    for pm, pa in zip(manual, auto): check_near(pm, pa.detach(), atol=1e-12)
    assert not any(p.requires_grad for p in manual)


def test_ninja_backward_matches_autograd():
    g = torch.Generator().manual_seed(2)
    params = [p.requires_grad_() for p in init_ninja_params(27, 10, 64, 3, generator=g, dtype=torch.float64)]
    X, Y = torch.randint(0, 27, (32, 3), generator=g), torch.randint(0, 27, (32,), generator=g)
    loss, cache = ninja_forward(params, X, Y)
    loss.backward()
    for grad, p in zip(ninja_backward([p.detach() for p in params], X, Y, [c.detach() for c in cache]), params):
        check_near(grad, p.grad, atol=1e-14)


# ---- 15: the WaveNet layers against torch and references

from torch import nn
from exp.nb_13 import BatchNorm1d as BatchNorm1d13, Linear, Tanh
from exp.nb_15 import (BatchNorm1d, Embedding, FlattenConsecutive, Sequential, flat_lm, hierarchical_lm,
                       lm_dls, model_losses)


def flatten_reference(x, n):
    "Every n-th vector from each offset, side by side along the features; the group axis dropped when it is 1."
    out = torch.cat([x[:, i::n, :] for i in range(n)], dim=2)
    return out.squeeze(1) if out.shape[1] == 1 else out


@SETTINGS
@given(b=st.integers(1, 6), groups=st.integers(1, 5), n=st.integers(1, 4), c=st.integers(1, 6), seed=seeds)
def test_flatten_consecutive_matches_reference(b, groups, n, c, seed):
    x = torch.randn(b, groups * n, c, generator=torch.Generator().manual_seed(seed))
    out = FlattenConsecutive(n)(x)
    assert torch.equal(out, flatten_reference(x, n))
    assert tuple(out.shape) == ((b, n * c) if groups == 1 else (b, groups, n * c))


def test_flatten_consecutive_rejects_a_length_that_does_not_divide():
    with pytest.raises(ValueError, match='7 is not a multiple of 2'):
        FlattenConsecutive(2)(torch.randn(3, 7, 4))


def run_against_torch(shape, steps=3, momentum=0.1):
    "15's BatchNorm1d on (N, L, C) or (N, C) against nn.BatchNorm1d (channels moved to dim 1), train then eval, float64."
    c = shape[-1]
    g = torch.Generator().manual_seed(sum(shape))
    ours = BatchNorm1d(c, momentum=momentum).double()
    theirs = nn.BatchNorm1d(c, momentum=momentum).double()
    with torch.no_grad():
        w, b = torch.rand(c, generator=g, dtype=torch.float64) + 0.5, torch.randn(c, generator=g, dtype=torch.float64)
        for m in (ours, theirs): m.weight.copy_(w); m.bias.copy_(b)
    to_torch = (lambda t: t.transpose(1, 2)) if len(shape) == 3 else (lambda t: t)
    for training in (True, False):
        ours.train(training); theirs.train(training)
        for _ in range(steps):
            x = (torch.randn(shape, generator=g, dtype=torch.float64) * 3 + 2).requires_grad_()
            x2 = x.detach().clone().requires_grad_()
            gy = torch.randn(shape, generator=g, dtype=torch.float64)
            y, y2 = ours(x), to_torch(theirs(to_torch(x2)))
            check_near(y, y2)
            (gy * y).sum().backward(); (gy * y2).sum().backward()
            for a, b in [(x.grad, x2.grad), (ours.weight.grad, theirs.weight.grad), (ours.bias.grad, theirs.bias.grad),
                         (ours.running_mean, theirs.running_mean), (ours.running_var, theirs.running_var)]:
                check_near(a, b)
            ours.zero_grad(); theirs.zero_grad()
    return ours


@SETTINGS
@given(n=st.integers(1, 8), length=st.integers(1, 6), c=st.integers(1, 8), momentum=st.floats(0.01, 1.))
def test_batchnorm1d_matches_torch_on_3d_input(n, length, c, momentum):
    if n * length < 2: n = 2                 # one value per channel has no variance (rejected, tested below)
    ours = run_against_torch((n, length, c), momentum=momentum)
    assert tuple(ours.running_mean.shape) == tuple(ours.running_var.shape) == (c,)


@SETTINGS
@given(n=st.integers(2, 16), c=st.integers(1, 8))
def test_batchnorm1d_matches_torch_on_2d_input(n, c):
    run_against_torch((n, c))


def test_batchnorm1d_fixes_the_dim_0_statistics_of_notebook_13():
    x = torch.randn(8, 4, 5) + torch.arange(4.).view(1, 4, 1)   # each position its own mean
    old, new = BatchNorm1d13(5), BatchNorm1d(5)
    old(x); new(x)
    assert tuple(old.running_mean.shape) == (4, 5)                # the bug the notebook shows
    assert tuple(new.running_mean.shape) == (5,)
    check_near(new.running_mean, 0.1 * x.mean((0, 1)), atol=1e-6)
    assert isinstance(new, BatchNorm1d13)


def test_batchnorm1d_rejects_one_value_per_channel_in_training():
    with pytest.raises(ValueError, match='at least 2 values per channel'):
        BatchNorm1d(3)(torch.randn(1, 1, 3))
    BatchNorm1d(3).eval()(torch.randn(1, 1, 3))                   # eval mode uses the running statistics


def test_embedding_matches_nn_embedding():
    ours, theirs = Embedding(10, 3), nn.Embedding(10, 3)
    with torch.no_grad(): theirs.weight.copy_(ours.weight)
    idx = torch.tensor([[1, 1, 9], [0, 1, 1]])
    out, ref = ours(idx), theirs(idx)
    assert torch.equal(out, ref)
    gy = torch.randn(2, 3, 3)
    (out * gy).sum().backward(); (ref * gy).sum().backward()
    check_near(ours.weight.grad, theirs.weight.grad, atol=1e-6)


@pytest.mark.parametrize('bad', [-1, -10, 10, 27])
def test_embedding_refuses_an_index_outside_the_table_like_f_embedding(bad):
    ours = Embedding(10, 3)
    idx = torch.tensor([[1, bad], [0, 2]])
    with pytest.raises(IndexError): F.embedding(idx, ours.weight)              # torch refuses, no wrapping
    with pytest.raises(IndexError, match=f'Embedding: index {bad} is out of range for a table of 10 rows'):
        ours(idx)
    assert torch.equal(ours(torch.tensor([0, 9])), F.embedding(torch.tensor([0, 9]), ours.weight))   # both ends are fine


def test_embedding_refuses_non_integer_indices_like_f_embedding():
    ours = Embedding(2, 3)
    mask = torch.tensor([True, False])                                         # indexing would read it as a mask
    with pytest.raises(RuntimeError): F.embedding(mask, ours.weight)
    with pytest.raises(TypeError, match='Embedding: indices must be int64 or int32, not torch.bool'):
        ours(mask)


def test_sequential_matches_nn_sequential():
    layers = [Embedding(27, 4), FlattenConsecutive(2), Linear(8, 6), Tanh(), FlattenConsecutive(4), Linear(24, 27)]
    ours, theirs = Sequential(*layers), nn.Sequential(*layers)
    idx = torch.randint(0, 27, (5, 8))
    assert torch.equal(ours(idx), theirs(idx))
    assert [p.data_ptr() for p in ours.parameters()] == [p.data_ptr() for p in theirs.parameters()]
    assert len(ours) == 6 and ours[2] is layers[2]


def test_model_sizes_match_the_lecture():
    n = lambda m: sum(p.numel() for p in m.parameters())
    assert n(flat_lm(27, 8, norm=BatchNorm1d)) == 22097
    assert n(hierarchical_lm(27, norm=BatchNorm1d, n_embd=10, n_hidden=68)) == 22397
    assert n(hierarchical_lm(27, norm=BatchNorm1d)) == 76579
    out = hierarchical_lm(27, norm=BatchNorm1d)(torch.randint(0, 27, (4, 8)))
    assert tuple(out.shape) == (4, 27)


def test_model_losses_are_eval_mode_means_over_chunks():
    torch.manual_seed(0)
    model = hierarchical_lm(27, norm=BatchNorm1d, n_embd=4, n_hidden=8)
    model(torch.randint(0, 27, (64, 8)))                        # move the running statistics away from 0 and 1
    X, Y = torch.randint(0, 27, (50, 8)), torch.randint(0, 27, (50,))
    got = model_losses(model, {'a': (X, Y)}, chunk=7)['a']
    model.eval()
    with torch.no_grad(): want = F.cross_entropy(model(X), Y).item()
    assert abs(got - want) < 1e-6
    model.train(); model_losses(model, {'a': (X, Y)})
    assert model.training                                      # the mode is restored


def test_lm_dls_refuses_splits_that_give_no_batch():
    X, Y = torch.randint(0, 27, (20, 8)), torch.randint(0, 27, (20,))
    with pytest.raises(ValueError, match=r'lm_dls: 20 training examples make no full batch of bs=32'):
        lm_dls(X, Y, X, Y, bs=32)                                     # drop_last would leave an epoch with no batch
    with pytest.raises(ValueError, match=r'lm_dls: the validation split is empty'):
        lm_dls(X, Y, X[:0], Y[:0], bs=4)
    assert [len(yb) for _, yb in lm_dls(X, Y, X[:1], Y[:1], bs=20).train] == [20]   # exactly one batch is enough


def test_model_losses_refuses_an_empty_split():
    model = hierarchical_lm(27, norm=BatchNorm1d, n_embd=4, n_hidden=8)
    X, Y = torch.randint(0, 27, (5, 8)), torch.randint(0, 27, (5,))
    with pytest.raises(ValueError, match="model_losses: split 'dev' is empty"):
        model_losses(model, {'train': (X, Y), 'dev': (X[:0], Y[:0])})


def test_lm_dls_never_hands_batchnorm_a_batch_of_one():
    X, Y = torch.randint(0, 27, (65, 8)), torch.randint(0, 27, (65,))   # 65 = 2 x 32 + 1
    dls = lm_dls(X, Y, X[:9], Y[:9], bs=32)
    assert [len(yb) for _, yb in dls.train] == [32, 32]
    assert sum(len(yb) for _, yb in dls.valid) == 9                    # validation keeps every example
    model = hierarchical_lm(27, norm=BatchNorm1d, n_embd=4, n_hidden=8)
    for xb, _ in dls.train: model(xb)                                  # would raise on a batch of one


# ---- 15's convolution view: the tree slid along a sequence is a stack of dilated causal convolutions

def tree_as_convolutions(tree, padded, n_levels, left_half_first=True):
    "The logits at every position of `padded` tokens: dilated kernel-2 convolutions (1, 2, 4, ...) built from the tree's weights."
    h = tree[0](padded).transpose(1, 2)                                   # (N, C, L)
    for k in range(n_levels):
        W = tree[2 + 4 * k].weight                                        # (2C, out): the left vector's rows first
        c = W.shape[0] // 2
        taps = [W[:c].T, W[c:].T] if left_half_first else [W[c:].T, W[:c].T]
        h = F.conv1d(h, torch.stack(taps, dim=-1), dilation=2 ** k)
        h = tree[4 + 4 * k](tree[3 + 4 * k](h.transpose(1, 2))).transpose(1, 2)
    return tree[-1](h.transpose(1, 2))


@pytest.mark.parametrize('n_levels', [1, 2, 3, 4])
def test_the_tree_at_every_window_equals_dilated_causal_convolutions_over_the_padded_sequence(n_levels):
    torch.manual_seed(n_levels)
    tree = hierarchical_lm(27, norm=BatchNorm1d, n_embd=5, n_hidden=7, n_levels=n_levels).double()
    with torch.no_grad():                                                 # trained-looking BatchNorm statistics
        for m in tree.modules():
            if isinstance(m, BatchNorm1d):
                m.running_mean.normal_(); m.running_var.uniform_(0.5, 2.); m.weight.uniform_(0.5, 1.5); m.bias.normal_()
    tree.eval()
    block = 2 ** n_levels
    tokens = torch.randint(1, 27, (3, 11))
    padded = F.pad(tokens, (block - 1, 0), value=0)                      # '.' (token 0) on the left: block - 1 = 1 + 2 + ...
    with torch.no_grad():
        windows = padded.unfold(1, block, 1)                              # (3, 11, block): the window ending at each position
        want = tree(windows.reshape(-1, block)).view(3, 11, 27)
        check_near(tree_as_convolutions(tree, padded, n_levels), want, atol=1e-12)
        swapped = tree_as_convolutions(tree, padded, n_levels, left_half_first=False)
        assert not near(swapped, want, 0., 1e-3)                          # the taps in the other order are another model
        other_padded = tree_as_convolutions(tree, F.pad(tokens, (block - 1, 0), value=5), n_levels)
        assert not near(other_padded[:, 0], want[:, 0], 0., 1e-3)         # padding with another token changes the first positions
        check_near(other_padded[:, block - 1:], want[:, block - 1:], atol=1e-12)   # ... and only those
