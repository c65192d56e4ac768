"""The lesson-local pieces of nbs/10_micrograd.ipynb (not exported), taken from the notebook's own cells: the lecture's
engine (`Node`, one `_backward` closure per op, the recursive topological sort), its first attempt with `=` and the
`+=` fix, tanh rebuilt from exp and division, the hand-filled graph and the step along the gradient; and the parts of
the exported engine that the lesson explains (one object per node, the marked depth-first order, the drawing's layout).
Gradients are compared with torch.autograd in float64: values within rtol 1e-9, each gradient within
1e-9 * (1 + the largest absolute gradient of that expression)."""
import ast, gc, math, random

import nbformat, pytest, torch

from conftest import ROOT
from exp.nb_10 import Value, _interior_order, _layers, draw_graph, topo_sort, vsum

NOTEBOOK = ROOT / 'nbs/10_micrograd.ipynb'


def definitions(source):
    "Only the definitions of a cell: functions, classes, and assignments to attributes of `Node` (the ops)."
    keep = [node for node in ast.parse(source).body
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) or
            (isinstance(node, ast.Assign) and any('Node.' in ast.unparse(t) for t in node.targets))]
    return ast.unparse(ast.Module(body=keep, type_ignores=[]))


def lesson_cells():
    "The code cells of sections 2 and 3 (the lecture's engine), in order."
    cells = nbformat.read(NOTEBOOK, as_version=4).cells
    start = next(i for i, c in enumerate(cells) if c.cell_type == 'markdown' and c.source.startswith('## 2.'))
    end = next(i for i, c in enumerate(cells) if c.cell_type == 'markdown' and c.source.startswith('## 4.'))
    return [c.source for c in cells[start:end] if c.cell_type == 'code' and '#export' not in c.source]


def lecture_namespace(upto=None):
    "The lecture's engine as the notebook defines it, cell after cell (only the definitions), up to the cell containing `upto`."
    ns = {'math': math, 'torch': torch}
    for source in lesson_cells():
        exec(definitions(source), ns)
        if upto and upto in source: break
    return ns


@pytest.fixture(scope='module')
def lesson(): return lecture_namespace()


def t64(x): return torch.tensor(x, dtype=torch.float64, requires_grad=True)


def close(ours, theirs):
    scale = 1 + max(map(abs, theirs), default=0)
    return all(abs(a - b) <= 1e-9 * scale for a, b in zip(ours, theirs))


# ---- the lecture's engine against torch ----

def random_program(seed):
    "A random expression over three inputs using every op of the lecture's engine (numbers on either side included)."
    rng = random.Random(seed)
    ops = ['add', 'mul', 'sub', 'div', 'radd', 'rmul', 'rsub', 'rdiv', 'pow', 'exp', 'tanh', 'neg']
    steps = [(rng.choice(ops), rng.randrange(100), rng.randrange(100), rng.uniform(0.5, 2) * rng.choice([-1, 1]),
              rng.choice([2, 3, -1, -2, 0.5])) for _ in range(rng.randint(2, 10))]
    xs = [rng.uniform(0.3, 1.5) for _ in range(3)]
    def run(pool):
        pool = list(pool)
        for op, i, j, c, n in steps:
            a, b = pool[i % len(pool)], pool[j % len(pool)]
            x = float(a.data if hasattr(a, 'data') and not torch.is_tensor(a) else a.item())
            y = float(b.data if hasattr(b, 'data') and not torch.is_tensor(b) else b.item())
            # stay away from poles and overflow: fall back to tanh
            if (op == 'div' and abs(y) < 0.3) or (op == 'rdiv' and abs(x) < 0.3) or (op == 'exp' and x > 3) or \
                    (op == 'pow' and (abs(x) > 5 or (n < 0 and abs(x) < 0.3) or (n == 0.5 and x < 0.3))): op = 'tanh'
            pool.append({'add': lambda: a + b, 'mul': lambda: a * b, 'sub': lambda: a - b, 'div': lambda: a / b,
                         'radd': lambda: c + a, 'rmul': lambda: c * a, 'rsub': lambda: c - a, 'rdiv': lambda: c / a,
                         'pow': lambda: a ** n, 'exp': lambda: a.exp(), 'tanh': lambda: a.tanh(), 'neg': lambda: -a}[op]())
        return pool[-1]
    return xs, run


@pytest.mark.parametrize('seed', range(60))
def test_the_lecture_engine_matches_torch_on_random_expressions(lesson, seed):
    Node = lesson['Node']
    xs, run = random_program(seed)
    nodes, tensors = [Node(x) for x in xs], [t64(x) for x in xs]
    out, ref = run(nodes), run(tensors)
    if not isinstance(out, Node): return                 # the program ended on an input: nothing to compare
    assert math.isclose(out.data, ref.item(), rel_tol=1e-9, abs_tol=1e-12)
    out.backward()
    if ref.requires_grad: ref.backward()
    assert close([n.grad for n in nodes], [0.0 if t.grad is None else t.grad.item() for t in tensors])


@pytest.mark.parametrize('seed', range(30))
def test_the_two_engines_give_the_same_gradients(lesson, seed):
    "Value (numbers instead of closures) and the lecture's Node agree on every expression both can build."
    xs, run = random_program(seed)
    nodes, values = [lesson['Node'](x) for x in xs], [Value(x) for x in xs]
    out_n, out_v = run(nodes), run(values)
    if not isinstance(out_n, lesson['Node']): return
    out_n.backward(); out_v.backward()
    assert math.isclose(out_n.data, out_v.data, rel_tol=1e-12, abs_tol=1e-15)
    assert close([v.grad for v in values], [n.grad for n in nodes])


def test_the_first_attempt_overwrites_and_the_fix_adds(lesson):
    broken = lecture_namespace(upto='self.grad = out.grad')
    broken['Node'].backward = lesson['backward']
    Node = broken['Node']
    a = Node(3.0)
    (a + a).backward()
    assert a.grad == 1.0                                   # the bug the notebook shows: db/da is 2
    x, y = Node(-2.0), Node(3.0)
    lesson['two_uses'](x, y).backward()
    assert (x.grad, y.grad) == (3.0, -2.0)                 # torch: (-3, -8)
    Node = lesson['Node']
    a = Node(3.0)
    (a + a).backward()
    assert a.grad == 2.0
    x, y = Node(-2.0), Node(3.0)
    lesson['two_uses'](x, y).backward()
    tx, ty = t64(-2.0), t64(3.0)
    lesson['two_uses'](tx, ty).backward()
    assert (x.grad, y.grad) == (tx.grad.item(), ty.grad.item()) == (-3.0, -8.0)


def test_subtraction_and_division_have_no_backward_of_their_own(lesson):
    "They are built from +, * and **-1: the graph of a / b holds a power node and a product, no division node."
    Node = lesson['Node']
    q = Node(1.0) / Node(4.0)
    assert q._op == '*' and {c._op for c in q._prev} == {'', '**-1'}
    d = Node(1.0) - Node(4.0)
    assert d._op == '+' and '*' in {c._op for c in d._prev}


@pytest.mark.parametrize('seed', range(10))
def test_tanh_from_exp_and_division_gives_the_same_leaf_gradients(lesson, seed):
    Node, neuron, pieces = lesson['Node'], lesson['neuron'], lesson['tanh_from_pieces']
    rng = random.Random(seed)
    xs = [rng.uniform(-1.5, 1.5) for _ in range(5)]
    one, many = [Node(x) for x in xs], [Node(x) for x in xs]
    o1, o2 = neuron(*one), neuron(*many, tanh=pieces)
    o1.backward(); o2.backward()
    assert math.isclose(o1.data, o2.data, rel_tol=1e-12, abs_tol=1e-15)
    assert close([v.grad for v in many], [v.grad for v in one])
    ts = [t64(x) for x in xs]
    neuron(*ts).backward()
    assert close([v.grad for v in one], [t.grad.item() for t in ts])
    assert len(_layers(o2)[0]) > len(_layers(o1)[0])      # more nodes, the same gradients


def test_the_lectures_neuron(lesson):
    nv = {k: lesson['Node'](v) for k, v in dict(x1=2.0, x2=0.0, w1=-3.0, w2=1.0, b=6.8813735870195432).items()}
    o = lesson['neuron'](**nv)
    o.backward()
    assert round(o.data, 4) == 0.7071
    assert {k: round(v.grad, 4) for k, v in nv.items()} == dict(x1=-1.5, x2=0.5, w1=1.0, w2=0.0, b=0.5)


def test_the_graph_of_section_2_by_backward_and_the_step_along_the_gradient(lesson):
    L, nodes = lesson['build_L']()
    assert L.data == -8.0 and [c.label for c in L._prev] == ['d', 'f']
    L.backward()
    grads = {k: nodes[k].grad for k in 'abcf'}
    assert grads == dict(a=6.0, b=-4.0, c=-2.0, f=4.0)
    assert {k: nodes[k].grad for k in 'edL'} == dict(e=-2.0, d=-2.0, L=1.0)
    for k in 'abcf': nodes[k].data += 0.01 * nodes[k].grad
    a, b, c, f = (nodes[k] for k in 'abcf')
    after = ((a * b + c) * f).data
    assert after > L.data and math.isclose(after - L.data, 0.01 * sum(g * g for g in grads.values()), rel_tol=0.02)
    assert round(after, 4) == -7.2865


def test_the_recursive_sort_fails_where_topo_sort_does_not(lesson):
    Node = lesson['Node']
    x = Node(1.0)
    for _ in range(1000): x = x * 1.0001 + 0.1
    with pytest.raises(RecursionError): x.backward()
    order = topo_sort(x)
    position = {v: i for i, v in enumerate(order)}
    assert len(order) == 4001 and all(position[c] < position[v] for v in order for c in v._prev)


def test_a_second_backward_piles_up_interior_gradients_in_the_lecture_engine(lesson):
    "The notebook's remark: for c = 3 (2a) a second backward takes a.grad from 6 to 18 (Value's: 12, as in torch)."
    a = lesson['Node'](1.0)
    c = 3 * (2 * a)
    c.backward(); c.backward()
    assert a.grad == 18.0
    v = Value(1.0)
    c = 3 * (2 * v)
    c.backward(); c.backward()
    assert v.grad == 12.0


def test_every_lecture_node_is_cyclic_garbage(lesson):
    Node = lesson['Node']
    gc.collect()
    x = Node(0.5)
    y = (x * x + 1).tanh() * 3
    y.backward()
    del x, y
    assert gc.collect() >= 4 * 3                          # four result nodes, each with its closure and cells


# ---- the exported engine, as the lesson explains it ----

def random_dag(seed, n_leaves=4, n_nodes=40):
    "A random graph of Values with shared nodes: binary, unary and n-ary (vsum) nodes."
    rng = random.Random(seed)
    pool = [Value(rng.uniform(-1, 1)) for _ in range(n_leaves)]
    def pick(): return rng.choice(pool[-6:] if rng.random() < 0.7 else pool)
    for _ in range(n_nodes):
        kind = rng.random()
        if kind < 0.4: pool.append(pick() * pick())
        elif kind < 0.7: pool.append(pick() + 0.5)
        else: pool.append(vsum([pick() for _ in range(rng.randint(3, 5))]))
    return pool[-1]


@pytest.mark.parametrize('seed', range(20))
def test_the_marked_order_is_topological_and_complete(seed):
    root = random_dag(seed)
    order = _interior_order(root)
    expected = [v for v in topo_sort(root) if v._prev]
    assert len(order) == len(set(map(id, order))) and set(map(id, order)) == set(map(id, expected))
    position = {id(v): i for i, v in enumerate(order)}
    assert all(position[id(c)] < position[id(v)] for v in order for c in v._prev if c._prev)


def test_a_stale_mark_from_an_interrupted_backward_changes_nothing():
    "A mark is a fresh NaN object per call: a NaN left in a grad by an earlier call does not count as 'reached'."
    root = random_dag(3)
    root.backward()
    want = [v.grad for v in topo_sort(root)]
    for v in topo_sort(root):
        if v._prev: v.grad = float('nan')                 # what an interrupted call would leave behind
    leaves = [v for v in topo_sort(root) if not v._prev]
    for leaf in leaves: leaf.grad = 0.0
    root.backward()
    leaf_grads = {id(v): v.grad for v in leaves}
    assert [leaf_grads.get(id(v), v.grad) for v in topo_sort(root)] == want


def test_a_node_is_one_object_with_its_children_in_slots():
    a, b = Value(2.0), Value(3.0)
    for node, children, slopes in [(a, (), ()), (a * 2.0, (a,), (2.0,)), (a * b, (a, b), (3.0, 2.0)),
                                   (vsum([a, b, a]), (a, b, a), (1.0, 1.0, 1.0))]:
        assert node._prev == children and node._local == slopes
    assert not hasattr(a * b, '__dict__')
    gc.collect(); gc.disable()
    try:
        before = len(gc.get_objects())
        x = Value(0.5)
        for _ in range(1000): x = (x * 1.5 + 0.25).relu() * x
        made = len(gc.get_objects()) - before
    finally: gc.enable()
    assert made == len(topo_sort(x))                        # one tracked object per node, nothing beside it


def test_the_drawing_lays_out_both_engines(lesson):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    L, nodes = lesson['build_L']()
    order, depth = _layers(L)
    assert [depth[nodes[k]] for k in 'abecfdL'] == [0, 0, 1, 1, 2, 2, 3]
    assert all(order.index(c) < order.index(v) for v in order for c in v._prev)
    def boxes_and_arrows(fig):
        texts = fig.axes[0].texts
        arrows = [t for t in texts if isinstance(t, matplotlib.text.Annotation)]
        return len(texts) - len(arrows), len(arrows)
    fig = draw_graph(L)
    assert boxes_and_arrows(fig) == (7 + 3, 3 + 6)         # a box per node and a circle per op; op -> result, child -> op
    plt.close(fig)
    a, b = Value(2.0, label='a'), Value(-3.0, label='b')
    fig = draw_graph((a * b + a).tanh())
    assert boxes_and_arrows(fig) == (5 + 3, 3 + 5)
    plt.close(fig)
