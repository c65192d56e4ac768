"Tests of notebook 10a's tensor autograd engine (exp.nb_10a): every op against torch.autograd in float64."
import math, operator
from pathlib import Path

import numpy as np

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

from exp.nb_00 import test_eq as check_eq, test_fail as check_fails, test_near as check_near  # renamed: pytest would collect test_*
import exp.nb_10a
from exp.nb_10a import (Function, Mul, Tensor, compare_with_torch, gradcheck, is_grad_enabled, no_grad,
                        tensor_cross_entropy, tensor_topo_sort, unbroadcast)

ROOT = Path(__file__).resolve().parent.parent

FAST = settings(max_examples=25, deadline=None, derandomize=True)


def randn(shape, seed, positive=False):
    t = torch.randn(tuple(shape), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return t.abs() + 0.5 if positive else t


# ---------------------------------------------------------------- broadcasting and arithmetic

@FAST
@given(mutually_broadcastable_shapes(num_shapes=2, max_dims=4, max_side=3), st.integers(0, 2**16))
def test_unbroadcast_is_the_sum_over_broadcast_dims(shapes, seed):
    (sa, sb), out_shape = shapes.input_shapes, shapes.result_shape
    a = randn(sa, seed)
    grad = randn(out_shape, seed + 1)
    ref = torch.autograd.grad((a.requires_grad_() + torch.zeros(sb, dtype=torch.float64) * 0) .mul(grad).sum(), a)[0]
    check_near(unbroadcast(grad, torch.Size(sa)), ref, atol=1e-12)


@FAST
@given(mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=4), st.integers(0, 2**16),
       st.sampled_from(['add', 'sub', 'mul', 'div']))
def test_binary_ops_broadcast_like_torch(shapes, seed, op):
    sa, sb = shapes.input_shapes
    a, b = randn(sa, seed), randn(sb, seed + 1, positive=(op == 'div'))
    f = {'add': lambda x, y: x + y, 'sub': lambda x, y: x - y, 'mul': lambda x, y: x * y, 'div': lambda x, y: x / y}[op]
    assert compare_with_torch(f, a, b)
    assert compare_with_torch(lambda x, y: f(y, x) if op != 'div' else y / (x * x + 1), a, b)


@pytest.mark.parametrize('f', [lambda x: 2 + x, lambda x: x + 2.5, lambda x: 3 - x, lambda x: x - 3, lambda x: -2 * x,
                               lambda x: x * 0.5, lambda x: 1 / x, lambda x: x / 4, lambda x: -x, lambda x: True * x])
def test_python_scalars_on_either_side(f):
    assert compare_with_torch(f, randn((3, 2), 0, positive=True))


def test_torch_tensors_are_constants():
    x = Tensor(torch.ones(2, 3), requires_grad=True)
    c = torch.arange(3.)
    (c * x + x * c - c).backward(torch.ones(2, 3))
    check_eq(x.grad, 2 * c.expand(2, 3))


# ---------------------------------------------------------------- unary ops

@pytest.mark.parametrize('f,positive', [
    (lambda x: x ** 2, False), (lambda x: x ** 3, False), (lambda x: x ** 0.5, True), (lambda x: x ** -1.5, True),
    (lambda x: x ** 0, False), (lambda x: x.exp(), False), (lambda x: x.log(), True), (lambda x: -x, False),
    (lambda x: x.relu(), False), (lambda x: (x.relu() * x).exp().log(), False)])
def test_unary_ops(f, positive):
    x = randn((4, 3), 1, positive)
    if not positive: x = x + 0.1 * x.sign()   # keep away from relu's kink for finite differences
    assert compare_with_torch(f, x)
    assert gradcheck(f, [x])


def test_relu_gradient_at_zero_is_zero():
    x = Tensor(torch.tensor([-1., 0., 2.]), requires_grad=True)
    x.relu().sum().backward()
    check_eq(x.grad, torch.tensor([0., 0., 1.]))


# ---------------------------------------------------------------- matmul

@pytest.mark.parametrize('sa,sb', [((4, 3), (3, 5)), ((3,), (3, 5)), ((4, 3), (3,)), ((3,), (3,)), ((1, 1), (1, 1)),
                                   ((2, 4, 3), (3, 5)), ((4, 3), (2, 3, 5)), ((2, 1, 4, 3), (3, 3, 2)), ((5,), (2, 5, 3))])
def test_matmul_shapes(sa, sb):
    assert compare_with_torch(lambda x, y: x @ y, randn(sa, 2), randn(sb, 3))


@FAST
@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**16))
def test_matmul_2d(n, k, m, seed):
    a, b = randn((n, k), seed), randn((k, m), seed + 1)
    assert compare_with_torch(lambda x, y: x @ y, a, b)


def test_matmul_skips_gradients_nobody_needs():
    x, w = Tensor(torch.randn(3, 4)), Tensor(torch.randn(4, 2), requires_grad=True)
    out = x @ w
    check_eq(out._ctx.needs_input_grad, (False, True))
    check_eq(out._ctx.backward(torch.ones(3, 2))[0], None)


# ---------------------------------------------------------------- reductions, shapes, indexing

@FAST
@given(array_shapes(min_dims=1, max_dims=4, max_side=3), st.data(), st.booleans(), st.sampled_from(['sum', 'mean']))
def test_reductions(shape, data, keepdim, red):
    dims = data.draw(st.lists(st.integers(-len(shape), len(shape) - 1), min_size=1, max_size=len(shape),
                              unique_by=lambda d: d % len(shape)))
    dim = dims[0] if len(dims) == 1 else tuple(dims)
    assert compare_with_torch(lambda x: getattr(x, red)(dim, keepdim=keepdim), randn(shape, len(shape)))


@pytest.mark.parametrize('red', ['sum', 'mean'])
def test_full_reductions(red):
    x = randn((2, 3, 4), 5)
    assert compare_with_torch(lambda t: getattr(t, red)(), x)
    assert compare_with_torch(lambda t: getattr(t, red)(None, keepdim=True), x)
    assert compare_with_torch(lambda t: getattr(t, red)(), torch.tensor(3.))


@pytest.mark.parametrize('f', [lambda x: x.reshape(6, 4), lambda x: x.reshape(-1), lambda x: x.reshape((4, 3, 2)).exp(),
                               lambda x: x.view(2, 12), lambda x: x.transpose(0, 2), lambda x: x.transpose(-1, 1).exp(),
                               lambda x: x.reshape(6, 4).T.exp()])
def test_reshape_transpose(f):
    assert compare_with_torch(f, randn((2, 3, 4), 6))


DUP = torch.tensor([0, 2, 2, 3, 0])
@pytest.mark.parametrize('index', [
    1, -1, (1, 2), slice(1, 3), (slice(None), 2), (Ellipsis, slice(None, None, 2)), (None, 1), DUP,
    (DUP, torch.tensor([1, 1, 1, 4, 1])), (range(4), torch.tensor([4, 0, 0, 2])), [3, 3], (1, DUP),
    (DUP, slice(1, 4)), (slice(None), [4, 4, 0])])
def test_getitem(index):
    assert compare_with_torch(lambda x: x[index], randn((4, 5), 7))


def test_getitem_bool_mask_our_tensor_index_and_accumulation():
    a = randn((4, 5), 8)
    assert compare_with_torch(lambda x: x[a > 0], a)
    check_eq(Tensor(a)[Tensor(torch.tensor([1, 1]))].data, a[[1, 1]])
    x = Tensor(torch.zeros(3), requires_grad=True)
    x[torch.tensor([1, 1, 1, 2])].sum().backward()
    check_eq(x.grad, torch.tensor([0., 3., 1.]))


# ---------------------------------------------------------------- log_softmax and cross-entropy

@pytest.mark.parametrize('f', [lambda x: x.logsumexp(-1), lambda x: x.logsumexp(0, keepdim=True),
                               lambda x: x.logsumexp(1), lambda x: x.log_softmax(-1), lambda x: x.log_softmax(1)])
def test_logsumexp_log_softmax(f):
    assert compare_with_torch(f, randn((3, 4, 5), 9) * 3)


def test_logsumexp_is_stable():
    check_near(Tensor(torch.tensor([[1000., 0.]])).logsumexp(1).data, torch.tensor([1000.]))
    check_near(Tensor(torch.tensor([[-1000., -1001.]])).log_softmax(-1).data, torch.tensor([[-0.3133, -1.3133]]), atol=1e-4)
    masked = torch.tensor([[0., float('-inf')], [float('-inf'), float('-inf')]])
    check_eq(Tensor(masked).logsumexp(-1).data, torch.tensor([0., float('-inf')]))


@FAST
@given(st.integers(1, 8), st.integers(2, 6), st.integers(0, 2**16))
def test_cross_entropy_matches_torch(n, c, seed):
    logits = randn((n, c), seed) * 3
    target = torch.randint(0, c, (n,), generator=torch.Generator().manual_seed(seed))
    assert compare_with_torch(tensor_cross_entropy, logits, target, torch_f=F.cross_entropy)


def test_cross_entropy_errors():
    logits, target = Tensor(torch.randn(4, 3)), torch.tensor([0, 1, 2, 0])
    check_fails(lambda: tensor_cross_entropy(logits, target.float()), contains='integer class indices', exc=TypeError)
    check_fails(lambda: tensor_cross_entropy(logits, target[:2]), contains='expected (4,)', exc=ValueError)
    check_fails(lambda: tensor_cross_entropy(logits.reshape(-1), target), contains='(batch, classes)', exc=ValueError)
    check_fails(lambda: tensor_cross_entropy([[0.5, 0.5]], target[:1]), contains='must be a Tensor', exc=TypeError)


def test_cross_entropy_runs_the_same_ops_on_torch_tensors():
    logits = torch.randn(16, 5, generator=torch.Generator().manual_seed(3)).requires_grad_()
    target = torch.arange(16) % 5
    loss = tensor_cross_entropy(logits, target)
    check_near(loss, F.cross_entropy(logits, target), atol=1e-6)
    ours = Tensor(logits.detach(), requires_grad=True)
    ours_loss = tensor_cross_entropy(ours, target)
    check_eq(ours_loss.item(), loss.item())            # the same torch ops in the same order: bit for bit
    loss.backward(); ours_loss.backward()
    check_eq(ours.grad, logits.grad)


# ---------------------------------------------------------------- gradcheck and the engine

def test_gradcheck_passes_on_ops_and_catches_a_wrong_backward():
    class BrokenMul(Mul):
        def backward(ctx, grad): return ctx.reduce_to_inputs(grad, grad)
    a, b = randn((3, 4), 10), randn((4,), 11)
    assert gradcheck(lambda x, y: (x * y).relu() @ y.reshape(4, 1), [a, b])
    check_fails(lambda: gradcheck(BrokenMul.apply, [a, b]), contains='gradcheck: input', exc=AssertionError)
    check_fails(lambda: compare_with_torch(BrokenMul.apply, a, b, torch_f=torch.mul), exc=AssertionError)


def test_backward_of_wrong_shape_names_the_op():
    class BadShape(Function):
        def forward(ctx, a): return a * 2
        def backward(ctx, grad): return (grad.sum(),)
    x = Tensor(torch.ones(3), requires_grad=True)
    check_fails(lambda: BadShape.apply(x).sum().backward(), contains='BadShape.backward returned a gradient of shape ()',
              exc=RuntimeError)


def test_shared_subexpressions_and_accumulation():
    a = Tensor(torch.tensor(3.), requires_grad=True)
    (a + a).backward()
    check_eq(a.grad, torch.tensor(2.))
    b = a * a
    c = b * a + b        # b reached along two paths of different lengths
    c.backward()
    check_eq(a.grad, torch.tensor(2. + 3 * 9 + 2 * 3))
    c.backward()         # gradients accumulate across backward calls
    check_eq(a.grad, torch.tensor(2. + 2 * (27 + 6)))
    a.zero_grad()
    check_eq(a.grad, None)
    check_eq(b.grad, None)   # intermediate tensors keep no gradient


def test_tensor_topo_sort_visits_each_node_once():
    def ladder(x, levels=12):
        for _ in range(levels): x = x * x + x   # every level uses the previous one twice
        return x
    x = Tensor(torch.tensor(0.1, dtype=torch.float64), requires_grad=True)
    order = tensor_topo_sort(ladder(x))
    check_eq(len(order), 1 + 2 * 12)
    check_eq(len(set(order)), len(order))
    assert compare_with_torch(lambda t: ladder(t, 6), torch.tensor(0.1))


def test_small_network_against_torch():
    def net(x, w1, b1, w2, b2, loss=tensor_cross_entropy):
        h = (x @ w1 + b1).relu()
        return loss(h @ w2 + b2 + (h * h).mean(1, keepdim=True) @ b2.reshape(1, -1), torch.tensor([0, 2, 1, 2]))
    inputs = [randn(s, 12 + i) for i, s in enumerate([(4, 6), (6, 5), (5,), (5, 3), (3,)])]
    assert compare_with_torch(net, *inputs, torch_f=lambda *xs: net(*xs, loss=F.cross_entropy))
    assert gradcheck(net, inputs)


def test_deep_chain_needs_no_recursion():
    x = Tensor(torch.tensor(1., dtype=torch.float64), requires_grad=True)
    y = x
    for _ in range(20_000): y = y * 1.0001 + 0.1
    y.backward()
    check_near(x.grad, 1.0001 ** 20_000, rtol=1e-9)


def test_gradients_take_the_dtype_of_their_leaf():
    w = Tensor(torch.ones(3), requires_grad=True)
    (w * torch.ones(3, dtype=torch.float64)).sum().backward()
    check_eq(w.grad.dtype, torch.float32)


def test_no_grad():
    x = Tensor(torch.ones(2), requires_grad=True)
    with no_grad():
        y = x * 2
        check_eq(is_grad_enabled(), False)
    check_eq((y.requires_grad, y._ctx), (False, None))
    check_eq(is_grad_enabled(), True)
    with pytest.raises(KeyError):
        with no_grad(): raise KeyError
    check_eq(is_grad_enabled(), True)
    @no_grad()
    def doubled(t): return t * 2
    check_eq(doubled(x).requires_grad, False)
    check_eq((x * 2).requires_grad, True)


def test_errors_are_clear():
    x = Tensor([1., 2., 3.], requires_grad=True)
    check_fails(lambda: (x * x).backward(), contains='only a scalar output', exc=RuntimeError)
    check_fails(lambda: (x * x).backward(torch.ones(2)), contains='grad has shape (2,)', exc=ValueError)
    check_fails(lambda: Tensor([1., 2.]).sum().backward(), contains='does not require grad', exc=RuntimeError)
    check_fails(lambda: Tensor('abc'), contains='not str', exc=TypeError)
    check_fails(lambda: Tensor(None), contains='not NoneType', exc=TypeError)
    check_fails(lambda: Tensor([[1, 2], [3]]), contains='cannot make a tensor', exc=TypeError)
    check_fails(lambda: Tensor([1, 2], requires_grad=True), contains='floating-point', exc=TypeError)
    check_fails(lambda: x + 'a', exc=TypeError)
    check_fails(lambda: [1, 2, 3] * x, exc=TypeError)
    check_fails(lambda: x ** x, contains='must be a Python int or float', exc=TypeError)
    check_fails(lambda: 2 ** x, contains='not supported', exc=TypeError)
    check_fails(lambda: x @ Tensor(2.), contains='at least one dimension', exc=ValueError)
    check_fails(lambda: Tensor(torch.ones(2, 3)) @ Tensor(torch.ones(2, 3)), contains='cannot be multiplied', exc=RuntimeError)
    check_fails(lambda: x.T, contains='needs a 2-d tensor', exc=ValueError)
    check_fails(lambda: x.logsumexp((0,)), contains='dim must be an int', exc=TypeError)
    check_fails(lambda: unbroadcast(torch.ones(2, 3), torch.Size([4])), contains='cannot come from', exc=ValueError)


# ---------------------------------------------------------------- training matches torch.autograd

def test_sgd_training_matches_torch_autograd():
    "Twenty SGD steps of a small MLP in float64: our engine and torch.autograd land on the same weights."
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(200, 20, generator=g, dtype=torch.float64), torch.randint(0, 4, (200,), generator=g)
    init = [torch.randn(20, 16, generator=g, dtype=torch.float64) / math.sqrt(20), torch.zeros(16, dtype=torch.float64),
            torch.randn(16, 4, generator=g, dtype=torch.float64) / 4, torch.zeros(4, dtype=torch.float64)]
    ours = [Tensor(t.clone(), requires_grad=True) for t in init]
    theirs = [t.clone().requires_grad_() for t in init]
    def mlp(xb, w1, b1, w2, b2): return (xb @ w1 + b1).relu() @ w2 + b2
    for step in range(20):
        idx = torch.arange(step * 10, step * 10 + 10)
        tensor_cross_entropy(mlp(Tensor(x[idx]), *ours), y[idx]).backward()
        F.cross_entropy(mlp(x[idx], *theirs), y[idx]).backward()
        for p, q in zip(ours, theirs):
            p.data -= 0.5 * p.grad; p.zero_grad()
            with torch.no_grad(): q -= 0.5 * q.grad
            q.grad = None
    for p, q in zip(ours, theirs): check_near(p.data, q.detach(), rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------- indexing: every index form that can repeat a position

def torch_index(index):
    "The same index for torch: our Tensors become torch tensors; everything else torch reads as it is."
    if isinstance(index, Tensor): return index.data
    if isinstance(index, tuple): return tuple(p.data if isinstance(p, Tensor) else p for p in index)
    return index


def check_index_grad(x, index):
    "Forward and gradient of x[index] (x a float64 torch tensor) against torch.autograd."
    assert compare_with_torch(lambda t: t[index], x, torch_f=lambda t: t[torch_index(index)])


REPEATS = [np.array([0, 0, 1]), [0, 0, 1], (np.array([0, 0, 1]),), ((0, 0, 1),), ([0, 0, 1],), torch.tensor([0, 0, 1]),
           Tensor(torch.tensor([0, 0, 1])), (Tensor(torch.tensor([0, 0, 1])),), np.array([[0, 1], [1, 1]]),
           (slice(None), np.array([2, 2, 0])), (slice(None), (2, 2, 0)), (Ellipsis, [2, 2]), (np.array([1, 1]), 2),
           (None, np.array([0, 0])), (np.array([0, 1, 1]), np.array([2, 2, 2])), (np.int64(1), [0, 0]),
           (slice(0, 2), Tensor(torch.tensor([1, 1])))]


@pytest.mark.parametrize('index', REPEATS, ids=repr)
def test_getitem_with_repeated_positions_accumulates(index):
    check_index_grad(randn((3, 3), 20), index)


def test_getitem_repeats_from_the_issue():
    for index in [np.array([0, 0, 1]), ((0, 0),), ([0, 0, 1],)]:
        x = Tensor([1., 2., 3.], requires_grad=True)
        x[index].sum().backward()
        t = torch.tensor([1., 2., 3.], requires_grad=True)
        t[index].sum().backward()
        check_eq(x.grad, t.grad)
    x = Tensor([1., 2., 3.], requires_grad=True)
    x[np.array([0, 0, 1])].sum().backward()
    check_eq(x.grad, torch.tensor([2., 1., 0.]))


def index_parts(shape):
    "Strategy: an index for a tensor of `shape`, built from every form torch accepts, positions repeated."
    def part(side, length):
        positions = st.lists(st.integers(-side, side - 1), min_size=length, max_size=length)
        return st.one_of(
            st.integers(-side, side - 1),
            st.builds(slice, st.none() | st.integers(-side, side), st.none() | st.integers(-side, side),
                      st.none() | st.integers(1, 2)),
            positions.map(list), positions.map(tuple), positions.map(np.array),
            positions.map(lambda p: torch.tensor(p, dtype=torch.long)),
            positions.map(lambda p: Tensor(torch.tensor(p, dtype=torch.long))))
    @st.composite
    def build(draw):
        n = draw(st.integers(1, len(shape)))
        length = draw(st.integers(1, 4))          # advanced parts must broadcast: one common length
        parts = [draw(part(side, length)) for side in shape[:n]]
        if draw(st.booleans()): parts.insert(draw(st.integers(0, len(parts))), None)
        if len(parts) == 1 and not isinstance(parts[0], tuple) and draw(st.booleans()):
            return parts[0]                       # a bare index (a bare tuple would be one index per dimension)
        return tuple(parts)
    return build()


@settings(max_examples=150, deadline=None, derandomize=True)
@given(array_shapes(min_dims=1, max_dims=3, max_side=4).flatmap(lambda s: st.tuples(st.just(s), index_parts(s))))
def test_getitem_matches_torch_for_any_index(case):
    shape, index = case
    check_index_grad(randn(shape, len(shape)), index)


# ---------------------------------------------------------------- no_grad restores the state it found

def test_no_grad_decorator_on_a_recursive_function():
    @no_grad()
    def countdown(n):
        check_eq(is_grad_enabled(), False)
        return 0 if n == 0 else countdown(n - 1) + 1
    check_eq(countdown(2), 2)
    check_eq(is_grad_enabled(), True)
    check_eq((Tensor([1.], requires_grad=True) * 2).requires_grad, True)


def test_no_grad_restores_on_exceptions_and_when_nested():
    @no_grad()
    def fails(n):
        if n == 0: raise ValueError('bottom')
        fails(n - 1)
    with pytest.raises(ValueError): fails(3)
    check_eq(is_grad_enabled(), True)
    outer, inner = no_grad(), no_grad()
    with outer:
        with inner:
            with pytest.raises(KeyError):
                with no_grad(): raise KeyError
            check_eq(is_grad_enabled(), False)
        check_eq(is_grad_enabled(), False)
    check_eq(is_grad_enabled(), True)
    @no_grad()
    def inside(): return is_grad_enabled()
    with no_grad(): check_eq(inside(), False)
    check_eq((inside(), is_grad_enabled()), (False, True))


# ---------------------------------------------------------------- x**0, targets out of range, numpy scalars

def test_pow_zero_has_zero_gradient_everywhere():
    for exponent in (0, 0.):
        x = Tensor(torch.tensor([0., 2., -1., float('nan'), float('inf')]), requires_grad=True)
        out = x ** exponent
        out.sum().backward()
        t = torch.tensor([0., 2., -1., float('nan'), float('inf')], requires_grad=True)
        ref = t ** exponent
        ref.sum().backward()
        check_eq(out.data, ref.detach())
        check_eq(out.data, torch.ones(5))
        check_eq(x.grad, t.grad)
        check_eq(x.grad, torch.zeros(5))


@pytest.mark.parametrize('bad', [-1, 3, 7, -100])
def test_cross_entropy_rejects_targets_out_of_range(bad):
    logits, target = Tensor(torch.randn(4, 3)), torch.tensor([0, 1, bad, 2])
    with pytest.raises(IndexError, match=f'Target {bad} is out of bounds'): tensor_cross_entropy(logits, target)
    with pytest.raises(IndexError, match=f'Target {bad} is out of bounds'): tensor_cross_entropy(logits.data, target)
    if bad != -100:    # torch's default ignore_index skips -100; we have no ignore_index
        with pytest.raises(IndexError, match=f'Target {bad} is out of bounds'): F.cross_entropy(logits.data, target)


NUMPY_SCALARS = [np.float32(2), np.float64(2.5), np.int64(3), np.int32(-2), np.float16(0.5)]


@pytest.mark.parametrize('c', NUMPY_SCALARS, ids=lambda c: type(c).__name__)
@pytest.mark.parametrize('op', ['add', 'sub', 'mul', 'truediv'])
def test_numpy_scalars_on_either_side(c, op):
    x = Tensor(torch.tensor([1., 2., 3.]), requires_grad=True)
    t = torch.tensor([1., 2., 3.], requires_grad=True)
    for ours, theirs in [(getattr(operator, op)(x, c), getattr(operator, op)(t, c)),
                         (getattr(operator, op)(c, x), getattr(operator, op)(c, t))]:
        assert isinstance(ours, Tensor), type(ours)
        check_eq(ours.dtype, theirs.dtype)
        check_near(ours.data, theirs.detach(), rtol=1e-6, atol=1e-6)
        ours.sum().backward(); theirs.sum().backward()
    check_near(x.grad, t.grad, rtol=1e-6, atol=1e-6)


def test_numpy_arrays_are_refused_not_turned_into_object_arrays():
    x = Tensor(torch.ones(3))
    for bad in [lambda: x * np.ones(3), lambda: np.ones(3) * x, lambda: np.ones(3) + x]:
        check_fails(bad, exc=TypeError)


# ---------------------------------------------------------------- NaN and infinities: the same as torch

NAN, INF = float('nan'), float('inf')
SPECIAL = torch.tensor([[NAN, 0., -0., 1.5], [-2., INF, -INF, 1.], [0.5, -1., 3., 2.], [-INF, -INF, -INF, -INF]],
                       dtype=torch.float64)
OTHER = SPECIAL.flip(0).contiguous()      # a second operand: specials meet numbers and other specials


def same_as_torch(f, *inputs, torch_f=None):
    "f with our engine and with torch.autograd: outputs and gradients equal, NaN where torch has NaN."
    ours = [Tensor(x.clone(), requires_grad=True) if x.is_floating_point() else x for x in inputs]
    theirs = [x.clone().requires_grad_() if x.is_floating_point() else x for x in inputs]
    out, ref = f(*ours), (torch_f or f)(*theirs)
    w = torch.linspace(0.5, 1.5, ref.numel(), dtype=torch.float64).reshape(ref.shape)
    out.backward(w); ref.backward(w)
    pairs = [(out.data, ref.detach())] + [(o.grad, t.grad) for o, t in zip(ours, theirs) if isinstance(o, Tensor)]
    for a, b in pairs:
        b = torch.zeros_like(a) if b is None else b
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, equal_nan=True)


UNARY_CASES = {
    'rdiv': lambda x: 1 / x, 'neg': lambda x: -x, 'add 1': lambda x: x + 1, 'mul by 0': lambda x: x * 0.,
    'pow 2': lambda x: x ** 2, 'pow 3': lambda x: x ** 3, 'pow 0.5': lambda x: x ** 0.5, 'pow -1': lambda x: x ** -1,
    'pow 0': lambda x: x ** 0, 'pow 1': lambda x: x ** 1, 'exp': lambda x: x.exp(), 'log': lambda x: x.log(),
    'relu': lambda x: x.relu(), 'relu then mul 0': lambda x: x.relu() * 0., 'exp then mul 0': lambda x: x.exp() * 0.,
    'matmul': lambda x: x @ x.T, 'sum': lambda x: x.sum(1), 'mean': lambda x: x.mean(0),
    'reshape': lambda x: x.reshape(2, 8), 'transpose': lambda x: x.transpose(0, 1),
    'getitem': lambda x: x[[0, 0, 2], 1:],
    'logsumexp': lambda x: x.logsumexp(1), 'logsumexp dim 0': lambda x: x.logsumexp(0, keepdim=True),
    'log_softmax': lambda x: x.log_softmax(-1), 'log_softmax dim 0': lambda x: x.log_softmax(0),
}
BINARY_CASES = {'add': lambda x, y: x + y, 'sub': lambda x, y: x - y, 'mul': lambda x, y: x * y,
                'div': lambda x, y: x / y, 'matmul': lambda x, y: x @ y, 'broadcast mul': lambda x, y: x * y[0]}


@pytest.mark.parametrize('name', UNARY_CASES)
def test_nan_and_infinities_like_torch(name):
    same_as_torch(UNARY_CASES[name], SPECIAL)


@pytest.mark.parametrize('name', BINARY_CASES)
def test_nan_and_infinities_in_binary_ops_like_torch(name):
    same_as_torch(BINARY_CASES[name], SPECIAL, OTHER)


def test_relu_at_nan_like_torch():
    x = Tensor(torch.tensor([NAN, -1., 0., 2.]), requires_grad=True)
    out = x.relu()
    out.sum().backward()
    check_eq(out.data.isnan(), torch.tensor([True, False, False, False]))
    check_eq(x.grad, torch.tensor([1., 0., 0., 1.]))     # torch passes the gradient through a NaN


def test_cross_entropy_with_nan_and_infinite_logits_like_torch():
    logits = torch.tensor([[NAN, 0., 1.], [INF, 0., 1.], [-INF, 0., 1.], [0., -INF, -INF], [2., 1., 0.]],
                          dtype=torch.float64)
    target = torch.tensor([1, 0, 2, 0, 1])
    same_as_torch(tensor_cross_entropy, logits, target, torch_f=F.cross_entropy)


# ---------------------------------------------------------------- the module's names

def test_all_is_the_public_api_and_renames_nothing_from_earlier_modules():
    namespace = {}
    exec('from exp.nb_10a import *', namespace)
    assert set(namespace) - {'__builtins__'} == set(exp.nb_10a.__all__)
    earlier = set()
    for path in sorted((ROOT / 'exp').glob('nb_0*.py')) + [ROOT / 'exp' / 'nb_10.py']:
        module = __import__(f'exp.{path.stem}', fromlist=['*'])
        earlier |= set(getattr(module, '__all__', [n for n in vars(module) if not n.startswith('_')]))
    assert earlier.isdisjoint(exp.nb_10a.__all__), earlier & set(exp.nb_10a.__all__)
    assert {'cross_entropy', 'no_grad', 'Sum', 'Exp', 'sgd_step', 'accuracy'}.isdisjoint(exp.nb_10a.__all__)
    assert 'cross_entropy' not in vars(exp.nb_10a)


def test_two_leaves_never_share_one_gradient_tensor():
    "Add's backward hands the same tensor to both inputs; each leaf's .grad must still be its own (an in-place op on one must not touch the other)."
    w1, w2 = Tensor(torch.ones(3), requires_grad=True), Tensor(torch.ones(3), requires_grad=True)
    ((w1 + w2) * torch.tensor([3., 4., 0.])).sum().backward()
    assert w1.grad.untyped_storage().data_ptr() != w2.grad.untyped_storage().data_ptr()
    w1.grad.mul_(0.)
    assert torch.equal(w2.grad, torch.tensor([3., 4., 0.]))


def shares_memory(a, b): return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


@pytest.mark.parametrize('build', [
    lambda x: x,                      # x.backward(g): the output is the leaf itself
    lambda x: x.reshape(2, 3),        # a view of the seed reaches the leaf
    lambda x: x.reshape(-1).reshape(3, 2),
    lambda x: x + 0.,                 # Add passes the seed through unchanged
], ids=['leaf itself', 'reshape', 'two reshapes', 'add a constant'])
def test_the_seed_gradient_is_copied_into_every_leaf(build):
    "backward(g): no leaf's .grad may be the caller's g (or a view of it): as torch, each leaf gets its own tensor."
    x = Tensor(torch.ones(3, 2), requires_grad=True)
    y = build(x)
    g = torch.arange(6.).reshape(y.shape)
    y.backward(g)
    assert not shares_memory(x.grad, g)
    x.grad.mul_(0.)                                       # clipping the leaf's gradient in place ...
    assert torch.equal(g, torch.arange(6.).reshape(y.shape))   # ... leaves the caller's tensor alone
    x.grad = None
    y.backward(g)
    g.add_(100.)                                          # and changing the caller's tensor leaves .grad alone
    assert torch.equal(x.grad, torch.arange(6.).reshape(3, 2))


def test_the_seed_gradient_is_copied_when_given_as_our_tensor():
    x = Tensor(torch.ones(3), requires_grad=True)
    g = Tensor(torch.tensor([1., 2., 3.]))
    x.backward(g)
    assert not shares_memory(x.grad, g.data)


def test_two_leaves_fed_by_the_seed_share_nothing_with_it_or_each_other():
    "y = a + b, y.backward(g): a.grad, b.grad and g are three tensors (clipping one changes neither other)."
    a, b = Tensor(torch.ones(3), requires_grad=True), Tensor(torch.ones(3), requires_grad=True)
    g = torch.tensor([1., 2., 3.])
    (a + b).backward(g)
    ptrs = {t.untyped_storage().data_ptr() for t in (a.grad, b.grad, g)}
    assert len(ptrs) == 3
    a.grad.clamp_(max=1.)
    assert torch.equal(b.grad, torch.tensor([1., 2., 3.])) and torch.equal(g, torch.tensor([1., 2., 3.]))
