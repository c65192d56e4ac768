"""Tests of the scalar autograd engine of nbs/10_micrograd.ipynb (exp/nb_10.py).

Property tests build random expressions that use every op (binary, reflected, unary, the fused
`dot` and `vsum`), run them in the engine and in PyTorch float64, and compare the output and the
gradient of every leaf. Tolerances: output within rtol 1e-9; each gradient within
1e-9 * (1 + the largest absolute gradient of that expression), since both sides compute in float64
but round in a different order.
"""
import gc, math, random

import pytest
import torch
from hypothesis import given, settings, HealthCheck, strategies as st

from exp.nb_10 import Value, MLP, dot, vsum, topo_sort

VALUE_RTOL, GRAD_TOL = 1e-9, 1e-9
UNARY = ['neg', 'exp', 'log', 'tanh', 'relu', 'sigmoid']
BINARY = ['add', 'sub', 'mul', 'div']
WITH_CONST = ['add_c', 'sub_c', 'mul_c', 'div_c', 'radd', 'rsub', 'rmul', 'rdiv', 'rpow', 'pow']
NARY = ['dot', 'vsum']
OPS = UNARY + BINARY + WITH_CONST + NARY
EXPONENTS = [0, 1, 2, 3, -1, -2, 0.5, 1.5, 2.5, -0.5]


def t64(x): return torch.tensor(x, dtype=torch.float64, requires_grad=True)


class Pair:
    "A node built twice, in the engine and in torch, so that every op is applied to both."
    def __init__(self, v, t): self.v, self.t = v, t


def safe(op, a, b=None, const=None, exponent=None):
    "Does `op` on these operands stay away from poles, branch points, kinks and overflow?"
    x = a.v.data
    if abs(x) > 50 or (b is not None and abs(b.v.data) > 50): return False
    if op == 'exp': return x < 5
    if op == 'log': return x > 0.2
    if op == 'relu': return abs(x) > 1e-6
    if op == 'div': return abs(b.v.data) > 0.2
    if op in ('rdiv',): return abs(x) > 0.2
    if op == 'div_c': return abs(const) > 0.2
    if op == 'rpow': return abs(x) < 5
    if op == 'pow':
        if exponent != int(exponent) and x <= 0.2: return False
        if exponent < 0 and abs(x) < 0.2: return False
        return True
    return True


def apply(op, a, b, const, exponent, group, rng):
    "Apply `op` (name) to pairs; `group` is a list of pairs for the n-ary ops."
    if not safe(op, a, b, const, exponent): op = 'tanh'
    if op == 'neg': return Pair(-a.v, -a.t)
    if op in ('exp', 'log', 'tanh', 'relu', 'sigmoid'):
        return Pair(getattr(a.v, op)(), getattr(torch, op)(a.t))
    if op == 'add': return Pair(a.v + b.v, a.t + b.t)
    if op == 'sub': return Pair(a.v - b.v, a.t - b.t)
    if op == 'mul': return Pair(a.v * b.v, a.t * b.t)
    if op == 'div': return Pair(a.v / b.v, a.t / b.t)
    if op == 'add_c': return Pair(a.v + const, a.t + const)
    if op == 'sub_c': return Pair(a.v - const, a.t - const)
    if op == 'mul_c': return Pair(a.v * const, a.t * const)
    if op == 'div_c': return Pair(a.v / const, a.t / const)
    if op == 'radd': return Pair(const + a.v, const + a.t)
    if op == 'rsub': return Pair(const - a.v, const - a.t)
    if op == 'rmul': return Pair(const * a.v, const * a.t)
    if op == 'rdiv': return Pair(const / a.v, const / a.t)
    if op == 'rpow':
        base = abs(const) + 0.5
        return Pair(base ** a.v, base ** a.t)
    if op == 'pow': return Pair(a.v ** exponent, a.t ** exponent)
    group = [p for p in group if abs(p.v.data) <= 50] or [a]
    if op == 'vsum':
        consts = [const] if rng.random() < 0.5 else []
        return Pair(vsum([p.v for p in group] + consts), sum([p.t for p in group] + consts))
    # dot: weights from the group, inputs a mix of nodes and constants, bias a node, a constant or none
    ws = group
    xs = [a if rng.random() < 0.5 else rng.uniform(-2, 2) for _ in ws]
    bias = rng.choice([None, b, const])
    xv = [x.v if isinstance(x, Pair) else x for x in xs]
    xt = [x.t if isinstance(x, Pair) else x for x in xs]
    bv = bias.v if isinstance(bias, Pair) else bias
    bt = bias.t if isinstance(bias, Pair) else (0.0 if bias is None else bias)
    return Pair(dot([w.v for w in ws], xv, bv), sum((w.t * x for w, x in zip(ws, xt)), bt))


steps = st.tuples(st.sampled_from(OPS), st.integers(0, 10**6), st.integers(0, 10**6),
                  st.floats(-3, 3, allow_nan=False), st.sampled_from(EXPONENTS),
                  st.lists(st.integers(0, 10**6), min_size=1, max_size=4))
programs = st.tuples(st.lists(st.floats(-2, 2, allow_nan=False), min_size=1, max_size=4),
                     st.lists(steps, min_size=1, max_size=14), st.integers(0, 2**32 - 1))


def run_program(leaf_values, program, seed):
    rng = random.Random(seed)
    leaves = [Pair(Value(x), t64(x)) for x in leaf_values]
    pool = list(leaves)
    for op, i, j, const, exponent, group in program:
        a, b = pool[i % len(pool)], pool[j % len(pool)]
        pool.append(apply(op, a, b, const, exponent, [pool[k % len(pool)] for k in group], rng))
    return leaves, pool[-1]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs)
def test_random_expressions_match_torch(prog):
    leaf_values, program, seed = prog
    leaves, out = run_program(leaf_values, program, seed)
    assert math.isclose(out.v.data, out.t.item(), rel_tol=VALUE_RTOL, abs_tol=1e-12), (out.v.data, out.t.item())
    out.v.backward()
    if out.t.requires_grad: out.t.backward()
    ours = [leaf.v.grad for leaf in leaves]
    theirs = [0.0 if leaf.t.grad is None else leaf.t.grad.item() for leaf in leaves]
    scale = 1 + max(abs(g) for g in theirs)
    for g, gt in zip(ours, theirs):
        assert abs(g - gt) <= GRAD_TOL * scale, (ours, theirs)


def test_every_op_is_exercised():
    "The property test's interpreter knows every op of the engine, and each one reaches torch."
    names = {'__add__', '__radd__', '__sub__', '__rsub__', '__mul__', '__rmul__', '__truediv__', '__rtruediv__',
             '__pow__', '__rpow__', '__neg__', 'exp', 'log', 'tanh', 'relu', 'sigmoid'}
    assert names <= set(dir(Value))
    rng = random.Random(0)
    for op in OPS:
        a, b = Pair(Value(0.7), t64(0.7)), Pair(Value(1.3), t64(1.3))
        out = apply(op, a, b, 1.5, 2, [a, b], rng)
        out.v.backward(); out.t.backward()
        assert math.isclose(out.v.data, out.t.item(), rel_tol=1e-12), op
        assert math.isclose(a.v.grad, a.t.grad.item() if a.t.grad is not None else 0.0, rel_tol=1e-12, abs_tol=1e-15), op


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.lists(st.integers(1, 5), min_size=1, max_size=3), st.integers(1, 4))
def test_mlp_gradients_match_torch(seed, hidden, nin):
    random.seed(seed)
    model = MLP(nin, hidden + [1])
    x = [random.uniform(-2, 2) for _ in range(nin)]
    out = model(x)
    (out * out).backward()
    h, params = torch.tensor(x, dtype=torch.float64), []
    for layer in model.layers:
        W = t64([[w.data for w in n.w] for n in layer.neurons]); b = t64([n.b.data for n in layer.neurons])
        params.append((W, b))
        h = (W * h).sum(1) + b
        if layer.neurons[0].nonlin: h = torch.relu(h)
    (h[0] * h[0]).backward()
    assert math.isclose(out.data, h[0].item(), rel_tol=1e-12, abs_tol=1e-12)
    theirs = [g for W, b in params for gw, gb in zip(W.grad.tolist(), b.grad.tolist()) for g in gw + [gb]]
    ours = [p.grad for p in model.parameters()]
    assert len(ours) == len(theirs)
    scale = 1 + max(map(abs, theirs))
    assert all(abs(g - gt) <= 1e-12 * scale for g, gt in zip(ours, theirs)), (ours, theirs)


def test_parameter_count():
    assert len(MLP(3, [4, 4, 1]).parameters()) == 41
    assert len(MLP(2, [16, 16, 1]).parameters()) == 337


# ---- accumulation and repeated backward ----

def test_gradients_accumulate_within_one_backward():
    a = Value(3.0)
    (a + a).backward()
    assert a.grad == 2.0
    a = Value(3.0)
    (a * a).backward()
    assert a.grad == 6.0
    a = Value(3.0)
    b = a * 2.0
    (b * a + b).backward()          # d/da (2a^2 + 2a) = 4a + 2
    assert a.grad == 14.0


def test_second_backward_adds_the_same_gradient_again():
    "Leaves accumulate across calls, as in PyTorch; interior nodes hold the latest pass only."
    a = Value(1.5)
    mid = a * a + 1.0
    y = mid.tanh() * 3.0
    y.backward()
    first_leaf, first_mid = a.grad, mid.grad
    y.backward()
    assert a.grad == 2 * first_leaf
    assert mid.grad == first_mid
    ta = t64(1.5)
    ty = (ta * ta + 1.0).tanh() * 3.0
    ty.backward(retain_graph=True); ty.backward()
    assert math.isclose(a.grad, ta.grad.item(), rel_tol=1e-12)
    y.backward()
    assert math.isclose(a.grad, 3 * first_leaf, rel_tol=1e-15)


def test_zero_grad_resets():
    random.seed(0)
    model = MLP(2, [3, 1])
    out = model([1.0, -1.0])
    out.backward(); out.backward()
    assert any(p.grad != 0 for p in model.parameters())
    model.zero_grad()
    assert all(p.grad == 0 for p in model.parameters())


def test_backward_of_a_leaf():
    a = Value(2.0)
    a.backward(); a.backward()
    assert a.grad == 2.0


# ---- scale ----

def test_chain_of_100k_operations():
    x0 = Value(1.0)
    x = x0
    for _ in range(100_000): x = x * 1.0001 + 0.1
    x.backward()
    assert math.isclose(x0.grad, 1.0001 ** 100_000, rel_tol=1e-9)
    assert len(topo_sort(x)) == 200_001
    del x                            # freeing a 200k-deep graph must not overflow the C stack either


def test_no_reference_cycles():
    "A graph is freed by reference counting: the cyclic garbage collector finds nothing."
    gc.collect()
    random.seed(0)
    model = MLP(2, [8, 1])
    loss = vsum((model([random.random(), random.random()]) - 1.0) ** 2 for _ in range(20))
    model.zero_grad(); loss.backward()
    del loss
    assert gc.collect() == 0


def test_matches_pypi_micrograd_on_its_readme_expression():
    mg = pytest.importorskip('micrograd.engine')
    def expr(a, b):
        c = a + b; d = a * b + b**3
        c += c + 1; c += 1 + c + (-a)
        d += d * 2 + (b + a).relu(); d += 3 * d + (b - a).relu()
        e = c - d; f = e**2; g = f / 2.0; g += 10.0 / f
        return g
    results = []
    for V in (Value, mg.Value):
        a, b = V(-4.0), V(2.0)
        g = expr(a, b); g.backward()
        results.append((g.data, a.grad, b.grad))
    for ours, theirs in zip(*results): assert math.isclose(ours, theirs, rel_tol=1e-12)
    assert [round(r, 4) for r in results[0]] == [24.7041, 138.8338, 645.5773]


# ---- bad input ----

@pytest.mark.parametrize('bad, message', [
    ('x', 'needs a real number'), (None, 'needs a real number'), ([1.0], 'needs a real number'),
    (1 + 2j, 'needs a real number'), (True, 'needs a real number'), (Value(1.0), 'already a Value')])
def test_value_rejects_non_numbers(bad, message):
    with pytest.raises(TypeError, match=message): Value(bad)


def test_value_accepts_ints_and_floats():
    assert Value(2).data == 2.0 and type(Value(2).data) is float
    assert Value(-0.5).grad == 0.0


def test_pow_rejects_a_value_exponent():
    with pytest.raises(TypeError, match='int or float exponent'): Value(2.0) ** Value(2.0)
    with pytest.raises(TypeError, match='int or float exponent'): Value(2.0) ** '2'


def test_domain_errors_are_clear():
    with pytest.raises(ValueError, match='not a real number'): Value(-2.0) ** 0.5
    with pytest.raises(ValueError, match='positive input'): Value(0.0).log()
    with pytest.raises(ValueError, match='positive base'): (-2.0) ** Value(1.0)
    with pytest.raises(ValueError, match='1 weights but 2 inputs'): dot([Value(1.0)], [1.0, 2.0])


def test_unsupported_operands_raise_type_error():
    with pytest.raises(TypeError): Value(1.0) + 'x'
    with pytest.raises(TypeError): 'x' * Value(1.0) + 1   # str * Value is not defined either
    with pytest.raises(TypeError, match='needs a real number'): dot([Value(1.0)], ['x'])
