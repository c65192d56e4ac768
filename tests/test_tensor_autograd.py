"Tests of notebook 10a's tensor autograd engine (exp.nb_10a): every op against torch.autograd in float64."
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

from exp.nb_00 import test_eq as check_eq, test_fail as check_fails, test_near as check_near  # renamed: pytest would collect test_*
from exp.nb_10a import (Function, Mul, Tensor, compare_with_torch, cross_entropy, gradcheck, is_grad_enabled, no_grad,
                        tensor_topo_sort, unbroadcast)

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
    assert compare_with_torch(cross_entropy, logits, target, torch_f=F.cross_entropy)


def test_cross_entropy_errors():
    logits, target = Tensor(torch.randn(4, 3)), torch.tensor([0, 1, 2, 0])
    check_fails(lambda: cross_entropy(logits, target.float()), contains='integer class indices', exc=TypeError)
    check_fails(lambda: cross_entropy(logits, target[:2]), contains='expected (4,)', exc=ValueError)
    check_fails(lambda: cross_entropy(logits.reshape(-1), target), contains='(batch, classes)', exc=ValueError)
    check_fails(lambda: cross_entropy([[0.5, 0.5]], target[:1]), contains='must be a Tensor', exc=TypeError)


def test_cross_entropy_runs_the_same_ops_on_torch_tensors():
    logits = torch.randn(16, 5, generator=torch.Generator().manual_seed(3)).requires_grad_()
    target = torch.arange(16) % 5
    loss = cross_entropy(logits, target)
    check_near(loss, F.cross_entropy(logits, target), atol=1e-6)
    ours = Tensor(logits.detach(), requires_grad=True)
    ours_loss = cross_entropy(ours, target)
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
    def net(x, w1, b1, w2, b2, loss=cross_entropy):
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
        cross_entropy(mlp(Tensor(x[idx]), *ours), y[idx]).backward()
        F.cross_entropy(mlp(x[idx], *theirs), y[idx]).backward()
        for p, q in zip(ours, theirs):
            p.data -= 0.5 * p.grad; p.zero_grad()
            with torch.no_grad(): q -= 0.5 * q.grad
            q.grad = None
    for p, q in zip(ours, theirs): check_near(p.data, q.detach(), rtol=1e-9, atol=1e-9)
