"""Tests of the scalar autograd engine of nbs/10_micrograd.ipynb (exp/nb_10.py).

Property tests build random expressions that use every op (binary, reflected, unary, the fused
`dot` and `vsum`), run them in the engine and in PyTorch float64, and compare the output and the
gradient of every leaf. Tolerances: output within rtol 1e-9; each gradient within
1e-9 * (1 + the largest absolute gradient of that expression), since both sides compute in float64
but round in a different order.
"""
import gc, json, math, random, subprocess, sys
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings, HealthCheck, strategies as st

import exp.nb_10
from exp.nb_10 import (ScalarMLP, Value, copy_weights, demo_step, dot, make_moons, micrograd_step, topo_sort, unfused_step,
                       vsum)

ROOT = Path(__file__).resolve().parent.parent

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
    model = ScalarMLP(nin, hidden + [1])
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
    assert len(ScalarMLP(3, [4, 4, 1]).parameters()) == 41
    assert len(ScalarMLP(2, [16, 16, 1]).parameters()) == 337


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
    model = ScalarMLP(2, [3, 1])
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
    model = ScalarMLP(2, [8, 1])
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


# ---- a pure-Python module ----

def test_import_loads_neither_torch_nor_another_course_module():
    "The scalar engine is pure Python: importing it loads no torch, no numpy, no matplotlib and no other exp module."
    code = ("import sys, json, exp.nb_10; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'matplotlib') "
            "or (m.startswith('exp.') and m != 'exp.nb_10'))))")
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [], f"import exp.nb_10 loaded {out.stdout}"


# ---- NaN and infinities: the same as torch ----

NAN, INF = float('nan'), float('inf')


def same(a, b):
    "Equal floats, NaN equal to NaN."
    return (math.isnan(a) and math.isnan(b)) or a == b or math.isclose(a, b, rel_tol=1e-12)


SPECIAL_OPS = {
    'relu': (lambda x: x.relu(), torch.relu), 'exp': (lambda x: x.exp(), torch.exp),
    'log': (lambda x: x.log(), torch.log),
    'tanh': (lambda x: x.tanh(), torch.tanh), 'sigmoid': (lambda x: x.sigmoid(), torch.sigmoid),
    'pow 0': (lambda x: x ** 0, None), 'pow 2': (lambda x: x ** 2, None), 'pow 0.5': (lambda x: x ** 0.5, None),
    'pow 1': (lambda x: x ** 1, None), 'rpow': (lambda x: 2.0 ** x, None), 'neg': (lambda x: -x, None),
    'add': (lambda x: x + 1.5, None), 'mul': (lambda x: x * -2.0, None), 'mul 0': (lambda x: x * 0.0, None),
    'div': (lambda x: x / 4.0, None), 'square': (lambda x: x * x, None), 'sub self': (lambda x: x - x, None),
    'relu times 0': (lambda x: x.relu() * 0.0, None), 'exp times 0': (lambda x: x.exp() * 0.0, None),
}


def in_domain(name, x):
    "log of x <= 0 and a negative base to a fractional power are refused with a clear error (tested above)."
    return not ((name == 'log' and x <= 0) or (name == 'pow 0.5' and x < 0))


@pytest.mark.parametrize('name,x', [(name, x) for name in SPECIAL_OPS for x in [NAN, INF, -INF, 0.0, -1.0, 2.0]
                                    if in_domain(name, x)], ids=str)
def test_nan_and_infinities_like_torch(name, x):
    ours_f, torch_f = SPECIAL_OPS[name]
    v, t = Value(x), t64(x)
    out, ref = ours_f(v), (torch_f or ours_f)(t)
    out.backward(); ref.backward()
    assert same(out.data, ref.item()), (out.data, ref.item())
    assert same(v.grad, t.grad.item()), (v.grad, t.grad.item())


def test_relu_keeps_nan():
    x = Value(NAN)
    y = x.relu()
    assert math.isnan(y.data)
    y.backward()
    t = t64(NAN); torch.relu(t).backward()
    assert x.grad == t.grad.item() == 1.0          # torch passes the gradient through a NaN


def test_pow_zero_has_zero_gradient_even_at_nan():
    for x in (0.0, NAN, 3.0):
        v = Value(x); (v ** 0).backward()
        assert (v ** 0).data == 1.0 and v.grad == 0.0, (x, v.grad)


def test_a_zero_gradient_still_meets_an_infinite_slope_like_torch():
    "0 * inf is NaN in torch's backward: an engine that skips zero gradients would report 0."
    x = Value(0.0); (x ** 0.5 * 0.0).backward()
    t = t64(0.0); (t ** 0.5 * 0.0).backward()
    assert math.isnan(t.grad.item()) and math.isnan(x.grad)


def test_nan_reaches_the_loss_of_an_mlp():
    random.seed(0)
    model = ScalarMLP(2, [4, 1])
    loss = (model([NAN, 1.0]) - 1.0) ** 2
    assert math.isnan(loss.data)
    model.zero_grad(); loss.backward()
    assert any(math.isnan(p.grad) for p in model.parameters())


# ---- the module's names ----

def earlier_public_names():
    "Every name that exp.nb_00 ... exp.nb_09 hand on with `import *`."
    names = {}
    for path in sorted((ROOT / 'exp').glob('nb_0*.py')):
        module = __import__(f'exp.{path.stem}', fromlist=['*'])
        for name in getattr(module, '__all__', [n for n in vars(module) if not n.startswith('_')]):
            names.setdefault(name, path.stem)
    return names


def test_all_is_the_public_api_and_renames_nothing_from_earlier_modules():
    namespace = {}
    exec('from exp.nb_10 import *', namespace)
    assert set(namespace) - {'__builtins__'} == set(exp.nb_10.__all__)
    clashes = {name: module for name, module in earlier_public_names().items() if name in exp.nb_10.__all__}
    assert clashes == {}, f"exp.nb_10 rebinds names of earlier modules: {clashes}"
    assert {'Module', 'MLP', 'Neuron', 'Layer'}.isdisjoint(vars(exp.nb_10))


def test_the_timed_steps_do_the_same_arithmetic():
    "bench_micrograd compares micrograd_step, unfused_step and demo_step: the same loss and gradients, same start."
    mg_nn = pytest.importorskip('micrograd.nn')
    xs, ys = make_moons(30, seed=1)
    random.seed(3)
    theirs, ours = mg_nn.MLP(2, [4, 4, 1]), ScalarMLP(2, [4, 4, 1])
    copy_weights(theirs, ours)
    mg_loss = micrograd_step(theirs, xs, ys)
    unfused = unfused_step(ours, xs, ys)
    assert unfused.data == mg_loss.data                     # node for node: the same loss, to the last bit
    # the same gradients, up to the order in which the two engines add up each one's contributions
    pairs = list(zip(ours.parameters(), theirs.parameters()))
    assert all(math.isclose(p.grad, q.grad, rel_tol=1e-12, abs_tol=1e-15) for p, q in pairs)
    fused, _ = demo_step(ours, xs, ys)
    assert math.isclose(fused.data, mg_loss.data, rel_tol=1e-12)
    assert all(math.isclose(p.grad, q.grad, rel_tol=1e-9, abs_tol=1e-12) for p, q in pairs)
    assert len(topo_sort(fused)) < len(topo_sort(unfused)) < len(topo_sort(mg_loss))


# ---- overflow: one rule everywhere, a result beyond the float range is +-inf (as torch, and as float * gives) ----

def t64s(*xs): return [t64(x) for x in xs]


# name: (the expression, on our Values and on torch float64 tensors alike; its inputs)
OVERFLOW_CASES = {
    'pow int': (lambda x: x ** 400, [10.0]),
    'pow float': (lambda x: x ** 400.0, [10.0]),
    'pow odd of negative': (lambda x: x ** 401, [-10.0]),
    'pow even of negative': (lambda x: x ** 400, [-10.0]),    # +inf, and a slope of -inf
    'pow negative exponent': (lambda x: x ** -400, [0.1]),
    'pow slope only': (lambda x: x ** -61, [1e-5]),           # x**-61 fits in a float, its slope -61 x**-62 does not
    'pow slope only, negative': (lambda x: x ** -61, [-1e-5]),
    'rpow': (lambda x: 2 ** x, [2000.0]),
    'rpow float base': (lambda x: 2.0 ** x, [1025.0]),
    'rpow base under 1': (lambda x: 0.5 ** x, [-2000.0]),
    'exp': (lambda x: x.exp(), [1000.0]),
    'mul': (lambda a, b: a * b, [1e200, 1e200]),
    'mul const': (lambda a: a * 1e200, [1e200]),
    'add': (lambda a, b: a + b, [1e308, 1e308]),
    'sub': (lambda a, b: a - b, [1e308, -1e308]),
    'rsub': (lambda a: -1e308 - a, [1e308]),
    'div': (lambda a, b: a / b, [1e308, 1e-10]),
    'rdiv': (lambda a: 1.0 / a, [1e-320]),
    'sigmoid': (lambda a: (a * 1e300).sigmoid(), [1e10]),      # inf in, and no overflow inside
    'tanh': (lambda a: (a * 1e300).tanh(), [1e10]),
    'backward only': (lambda a: (a * 1e200) * 1e200 * 0.0 + a, [1.0]),   # forward 0 * inf = NaN, backward inf * 0
}


@pytest.mark.parametrize('name', OVERFLOW_CASES)
def test_overflow_gives_infinity_like_torch_in_every_op(name):
    f, inputs = OVERFLOW_CASES[name]
    vs, ts = [Value(x) for x in inputs], t64s(*inputs)
    out, ref = f(*vs), f(*ts)
    out.backward(); ref.backward()
    assert same(out.data, ref.item()), (out.data, ref.item())
    for v, t in zip(vs, ts): assert same(v.grad, t.grad.item()), (v.grad, t.grad.item())


def test_overflow_in_the_fused_nodes_gives_infinity():
    ws = [Value(1e200), Value(1e200)]
    y = dot(ws, [1e200, 1.0], Value(1.0))
    y.backward()
    assert y.data == INF and ws[0].grad == 1e200
    s = vsum([Value(1e308), Value(1e308), 1.0])
    assert s.data == INF


def test_a_negative_base_to_a_fractional_power_is_refused_even_when_huge():
    with pytest.raises(ValueError, match='not a real number'): Value(-10.0) ** 400.5
    with pytest.raises(ValueError, match='not a real number'): Value(-10.0) ** 0.5


# ---- assigning to .data ----

def test_assigning_an_int_to_data_works_everywhere():
    "w.data = 3 (an int, or any real number) is stored as a float: the next forward, fused or not, works."
    random.seed(0)
    neuron = exp.nb_10.ScalarNeuron(2, nonlin=False)
    neuron.w[0].data, neuron.w[1].data, neuron.b.data = 3, -1, 2
    assert all(type(p.data) is float for p in neuron.parameters())
    out = neuron([1.0, 2.0])                       # dot: sum(map(float.__mul__, ...)) needed floats
    assert out.data == 3.0 and type(out.data) is float
    out.backward()
    assert [p.grad for p in neuron.parameters()] == [1.0, 2.0, 1.0]
    w = Value(1.0)
    w.data = 10
    assert (w ** 400).data == INF                  # a float: overflows to inf, not to a 400-digit int
    w.data = Fraction(1, 4)
    assert w.data == 0.25 and type(w.data) is float


@pytest.mark.parametrize('bad, message', [('3', 'real number'), (None, 'real number'), (True, 'real number'),
                                          ([1.0], 'real number'), (1j, 'real number'), (Value(1.0), 'already a Value')])
def test_assigning_a_non_number_to_data_is_a_clear_error(bad, message):
    w = Value(1.0)
    with pytest.raises(TypeError, match=message): w.data = bad
    assert w.data == 1.0                           # and the old value is kept
