"""Checks for the exercises of 10_micrograd: what backward computes when inputs are reused (10.1), an op's `_backward`
for the lecture's engine (10.2), a topological sort without recursion (10.3), an op of the fast engine as one node with
its local derivatives (10.4), and a challenge on the two-moons demo (10.5)."""
import math, random, sys

import torch

from exercises import NotAttempted, Wrong, check_predictions, exercise


def t64(x): return torch.tensor(x, dtype=torch.float64, requires_grad=True)


# ---- a copy of the lecture's engine (notebook 10, section 3), for checks that need one of their own ----

class LectureNode:
    "The lecture's closure engine, as the notebook builds it (with `+=`); `accumulate=False` is its first attempt."
    accumulate = True

    def __init__(self, data, _children=(), _op='', label=''):
        self.data, self.grad = data, 0.0
        self._prev, self._op, self.label = tuple(_children), _op, label
        self._backward = lambda: None

    def _give(self, node, amount):
        node.grad = node.grad + amount if self.accumulate else amount

    def __add__(self, other):
        other = other if isinstance(other, LectureNode) else type(self)(other)
        out = type(self)(self.data + other.data, (self, other), '+')
        def _backward():
            out._give(self, out.grad)
            out._give(other, out.grad)
        out._backward = _backward
        return out
    __radd__ = __add__

    def __mul__(self, other):
        other = other if isinstance(other, LectureNode) else type(self)(other)
        out = type(self)(self.data * other.data, (self, other), '*')
        def _backward():
            out._give(self, other.data * out.grad)
            out._give(other, self.data * out.grad)
        out._backward = _backward
        return out
    __rmul__ = __mul__

    def __neg__(self): return self * -1
    def __sub__(self, other): return self + (-other)
    def __rsub__(self, other): return (-self) + other

    def backward(self):
        order, visited = [], set()
        def visit(v):
            if v not in visited:
                visited.add(v)
                for child in v._prev: visit(child)
                order.append(v)
        visit(self)
        self.grad = 1.0
        for v in reversed(order): v._backward()


class FirstAttemptNode(LectureNode):
    "The lecture's first attempt: every `_backward` sets its children's gradients with `=`."
    accumulate = False


# ---- 10.1: predict the gradients ----

def exercise_expression(node):
    a, b = node(2.0), node(-3.0)
    c = a * b
    d = c + a
    L = d * b
    L.backward()
    return L.data, a.grad, b.grad


def is_number(v): return isinstance(v, (int, float)) and not isinstance(v, bool)


def near(v, truth): return is_number(v) and math.isclose(v, truth, rel_tol=1e-9, abs_tol=1e-9)


@exercise('10.1', 'predict: gradients of an expression that reuses its inputs', kind='predict')
def check_backward_predictions(answer):
    L, a_grad, b_grad = exercise_expression(LectureNode)
    _, a_bug, b_bug = exercise_expression(FirstAttemptNode)
    truth = {'L.data': L, 'a.grad': a_grad, 'b.grad': b_grad,
             "a.grad with '=' instead of '+='": a_bug, "b.grad with '=' instead of '+='": b_bug}
    given = answer if isinstance(answer, dict) else {}
    # the hint for a wrong answer names the usual reason for that answer
    two_paths = "{} reaches L along two paths ({}): add the contributions of both"
    hints = {
        'L.data': "the forward pass: c = a*b, d = c + a, L = d*b",
        'a.grad': (two_paths.format('a', 'through c, and straight into d') if near(given.get('a.grad'), a_bug) or
                   near(given.get('a.grad'), -3.0) else "write L = (a*b + a)*b out and differentiate in a"),
        'b.grad': (two_paths.format('b', 'through c, and straight into L') if near(given.get('b.grad'), b_bug) or
                   near(given.get('b.grad'), -4.0) else "write L = (a*b + a)*b out and differentiate in b"),
        "a.grad with '=' instead of '+='": ("that is the right gradient; with '=' each _backward overwrites: which one writes into "
                                            "a.grad last, and what is c.grad at that moment?"),
        "b.grad with '=' instead of '+='": ("the order is L, d, c: L's _backward writes b.grad first, then c's overwrites it; "
                                            "what does c's write?"),
    }
    return check_predictions(answer, {k: (lambda v, t=t: near(v, t)) for k, t in truth.items()}, hints, "what the engine gives")


# ---- 10.2: relu's _backward ----

def unit_case(relu, node, x, upstream=1.0, earlier=0.0):
    "relu of one fresh leaf, its `_backward` called by hand: (output, the leaf's gradient afterwards)."
    leaf = node(x)
    leaf.grad = earlier
    out = relu(leaf)
    if out is None or out is Ellipsis: raise NotAttempted()
    if not hasattr(out, '_backward') or not hasattr(out, 'data'):
        raise Wrong(f"relu(Node({x})) came back a {type(out).__name__}; expected a new Node",
                    "make the result with Node(value, (self,), 'ReLU'), give it a _backward, and return it")
    out.grad = upstream
    out._backward()
    return out, leaf


RELU_EXPRESSIONS = [
    lambda x, y, z, relu: relu(x * y + z) * relu(x - z) + relu(y) * relu(y),
    lambda x, y, z, relu: relu(relu(x) * 2 - y) * z + relu(z - x * y),
    lambda x, y, z, relu: (relu(x + y) + relu(x - y)) * (relu(z) + relu(-1 * z)) * x,
]


def kinks_of(fn, xs):
    "The inputs of every relu in fn(*xs), computed in floats: a check keeps away from the kink at 0."
    seen = []
    def relu(v):
        seen.append(v)
        return max(v, 0.0)
    fn(*xs, relu)
    return seen


@exercise('10.2', 'implement: relu for the lecture\'s engine')
def check_relu(relu, node=None):
    node = node if isinstance(node, type) else LectureNode
    rng = random.Random(1002)
    x = rng.uniform(0.5, 2.0)
    out, leaf = unit_case(relu, node, x)
    if not math.isclose(out.data, x): raise Wrong(f"relu(Node({x:.4f})).data is {out.data}; expected {x:.4f}", "relu(x) is max(x, 0)")
    if leaf not in tuple(getattr(out, '_prev', ())):
        raise Wrong("the result does not list its input among its children (_prev)", "Node(value, (self,), 'ReLU'): the input is its child")
    if leaf.grad != 1.0:
        raise Wrong(f"x = {x:.4f}: after out.grad = 1 and out._backward(), x.grad is {leaf.grad}; expected 1",
                    "set out._backward to a function that adds relu's slope times out.grad into self.grad (where the "
                    "input is positive, relu is the identity)")
    x = -rng.uniform(0.5, 2.0)
    out, leaf = unit_case(relu, node, x)
    if out.data != 0: raise Wrong(f"relu(Node({x:.4f})).data is {out.data}; expected 0", "relu(x) is max(x, 0)")
    if leaf.grad != 0.0:
        raise Wrong(f"x = {x:.4f}: after out._backward(), x.grad is {leaf.grad}; expected 0",
                    "where the input is negative relu is flat: its slope there is 0, so nothing passes back")
    out, leaf = unit_case(relu, node, 0.0)
    if leaf.grad != 0.0:
        raise Wrong(f"x = 0: x.grad is {leaf.grad}; PyTorch's relu has slope 0 at exactly 0",
                    "pass the gradient only where the input is strictly positive (> 0, not >= 0)")
    x = rng.uniform(0.5, 2.0)
    out, leaf = unit_case(relu, node, x, upstream=2.0, earlier=0.25)
    if not math.isclose(leaf.grad, 2.25):
        raise Wrong(f"x = {x:.4f} already had grad 0.25; out.grad 2 should bring it to 2.25, it is {leaf.grad}",
                    "add into self.grad (+=): the input may have received gradient from elsewhere already")
    checked = 0
    for seed in range(40):
        rng = random.Random(seed)
        fn = RELU_EXPRESSIONS[seed % len(RELU_EXPRESSIONS)]
        xs = [rng.uniform(-2, 2) for _ in range(3)]
        if any(abs(k) < 1e-3 for k in kinks_of(fn, xs)): continue
        ours, theirs = [node(x) for x in xs], [t64(x) for x in xs]
        out, ref = fn(*ours, relu), fn(*theirs, torch.relu)
        out.backward(); ref.backward()
        got, want = [v.grad for v in ours], [0.0 if t.grad is None else t.grad.item() for t in theirs]
        if not math.isclose(out.data, ref.item(), rel_tol=1e-9, abs_tol=1e-12) or \
                not all(math.isclose(g, w, rel_tol=1e-9, abs_tol=1e-12) for g, w in zip(got, want)):
            raise Wrong(f"inputs {[round(x, 4) for x in xs]}: value {out.data:.6g}, gradients {[round(g, 6) for g in got]}; "
                        f"PyTorch gives {ref.item():.6g} and {[round(w, 6) for w in want]}",
                        "compare with one relu on one input first; in these expressions some relus are used twice")
        checked += 1
        if checked == 12: break
    return f"right on 4 single-input cases and {checked} random expressions, against PyTorch"


# ---- 10.3: a topological sort without recursion ----

class GraphNode:
    "A node of a test graph: only `_prev` (and a name to print)."
    def __init__(self, name, children=()): self.name, self._prev = name, tuple(children)
    def __repr__(self): return self.name


def random_graph(seed):
    "A random DAG with shared nodes: (root, every node below root)."
    rng = random.Random(seed)
    nodes = [GraphNode(f'leaf{i}') for i in range(rng.randint(2, 5))]
    for i in range(rng.randint(5, 30)):
        kids = [rng.choice(nodes[-8:] if rng.random() < 0.7 else nodes) for _ in range(rng.randint(1, 3))]
        nodes.append(GraphNode(f'n{i}', kids))
    root = nodes[-1]
    below, stack = {root}, [root]
    while stack:
        for c in stack.pop()._prev:
            if c not in below: below.add(c); stack.append(c)
    return root, below


def sibling_trap():
    "root uses a and b, and b uses a: a sort that pushes all of root's children at once emits b before a."
    a = GraphNode('a', [GraphNode('leaf')])
    b = GraphNode('b', [a])
    root = GraphNode('root', [a, b])
    return root, {root, a, b, a._prev[0]}


def check_order(order, root, below, shown):
    if order is None or order is Ellipsis: raise NotAttempted()
    try: order = list(order)
    except TypeError: raise Wrong(f"{shown}: came back a {type(order).__name__}; expected a list of nodes") from None
    if len(order) != len(set(map(id, order))):
        raise Wrong(f"{shown}: {len(order)} entries but only {len(set(map(id, order)))} different nodes",
                    "each node once: remember which nodes you have already reached (a set)")
    missing, extra = below - set(order), set(order) - below
    if missing: raise Wrong(f"{shown}: {len(missing)} of the {len(below)} nodes below the root are missing, e.g. {next(iter(missing))}",
                            "every node below the root, the leaves and the root itself included")
    if extra: raise Wrong(f"{shown}: {len(extra)} entries are not nodes below the root", "return the nodes themselves, and only those below root")
    position = {id(v): i for i, v in enumerate(order)}
    late = [(v, c) for v in order for c in v._prev if position[id(c)] > position[id(v)]]
    if late:
        v, c = late[0]
        hint = ("you emit a node before its children (pre-order): append it only once all of its children are done"
                if order[0] is root else
                "a node must wait for all of its children: go down one child at a time and append a node when none is left "
                "(pushing all children at once lets a node that is still waiting deeper on the stack be skipped)")
        raise Wrong(f"{shown}: {v} comes before its child {c}", hint)


@exercise('10.3', 'implement: a topological sort without recursion')
def check_topological_order(topological_order):
    for seed in range(8):
        root, below = random_graph(1000 + seed)
        check_order(topological_order(root), root, below, f"a random graph of {len(below)} nodes")
    root, below = sibling_trap()
    check_order(topological_order(root), root, below, "root -> (a, b), b -> a, a -> leaf")
    lone = GraphNode('lone')
    check_order(topological_order(lone), lone, {lone}, "a single node")
    chain = GraphNode('x0')
    nodes = {chain}
    for i in range(5000):
        chain = GraphNode(f'x{i + 1}', [chain])
        nodes.add(chain)
    limit = sys.getrecursionlimit()
    try: order = topological_order(chain)
    except RecursionError:
        raise Wrong("a chain 5,000 nodes deep: RecursionError", "keep your own stack (a list) instead of calling yourself") from None
    finally: sys.setrecursionlimit(limit)
    check_order(order, chain, nodes, "a chain 5,000 nodes deep")
    return "right on 8 random graphs with shared nodes, the shared-sibling case, a single node and a chain 5,000 deep"


# ---- 10.4: a power by a Value, as one node ----

@exercise('10.4', 'implement: a power by a Value, as one node')
def check_value_pow(value_pow, value_class=None):
    from exp.nb_10 import Value as exported
    Value = value_class if isinstance(value_class, type) else exported   # the notebook's own class, when it is given
    for seed in range(8):
        rng = random.Random(400 + seed)
        a, b = rng.uniform(0.3, 3.0), rng.uniform(-2.0, 2.0)
        A, B = Value(a), Value(b)
        out = value_pow(A, B)
        if out is None or out is Ellipsis: raise NotAttempted()
        shown = f"value_pow(Value({a:.4f}), Value({b:.4f}))"
        if not isinstance(out, Value): raise Wrong(f"{shown} came back a {type(out).__name__}; expected a Value",
                                                   "return Value(data, (a, b), '**', (slope_a, slope_b))")
        if not math.isclose(out.data, a ** b, rel_tol=1e-12):
            raise Wrong(f"{shown}.data is {out.data}; expected {a ** b:.6g}", "the value is a.data ** b.data")
        if len(out._prev) != 2 or {id(c) for c in out._prev} != {id(A), id(B)}:
            raise Wrong(f"{shown} is built from several nodes (its children: {len(out._prev)}); the exercise asks for one node",
                        "one node whose two children are a and b, with both local derivatives as numbers")
        loss = out * 1.7 + A            # A also reaches the loss directly: its gradient adds up
        loss.backward()
        ta, tb = t64(a), t64(b)
        (ta ** tb * 1.7 + ta).backward()
        got, want = (A.grad, B.grad), (ta.grad.item(), tb.grad.item())
        if not all(math.isclose(g, w, rel_tol=1e-9, abs_tol=1e-12) for g, w in zip(got, want)):
            slope_a, slope_b = (A.grad - 1.0) / 1.7, B.grad / 1.7      # what the learner's node stored
            true_a, true_b = b * a ** (b - 1), a ** b * math.log(a)
            if math.isclose(slope_a, true_b, rel_tol=1e-9) and math.isclose(slope_b, true_a, rel_tol=1e-9):
                hint = "the two slopes are in the wrong order: the first belongs to a, the second to b"
            elif not math.isclose(slope_b, true_b, rel_tol=1e-9):
                hint = "d(a^b)/db: here the base is fixed and b is the exponent; write a^b as e^(b ln a) and use the chain rule"
            else:
                hint = "d(a^b)/da: here the exponent is fixed and a is the base: the power rule"
            raise Wrong(f"loss = {shown} * 1.7 + a: gradients (a, b) {tuple(round(g, 6) for g in got)}; PyTorch gives "
                        f"{tuple(round(w, 6) for w in want)}", hint)
    x = rng.uniform(0.5, 2.0)
    X = Value(x)
    value_pow(X, X).backward()
    tx = t64(x)
    (tx ** tx).backward()
    if not math.isclose(X.grad, tx.grad.item(), rel_tol=1e-9):
        raise Wrong(f"value_pow(x, x) at x = {x:.4f}: x.grad {X.grad:.6g}, PyTorch {tx.grad.item():.6g}",
                    "with a and b the same node, both slopes must reach it: store them, and backward adds both")
    return "right on 8 random (a, b) against PyTorch, and on x ** x"


# ---- 10.5: the challenge ----

DEMO_SIZES, DEMO_PARAMETERS = [16, 16], 337
INIT_SEEDS, MOONS_SEED = (1, 2), 7


@exercise('10.5', 'challenge: a smaller network that still separates the moons', kind='challenge')
def check_smaller_network(hidden_sizes):
    from exp.nb_10 import ScalarMLP, demo_loss, make_moons, train_moons
    if not isinstance(hidden_sizes, (list, tuple)) or not hidden_sizes or \
            not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in hidden_sizes):
        raise Wrong(f"{hidden_sizes!r}: expected a list of hidden-layer widths, such as [16, 16]", "one positive int per hidden layer")
    if len(hidden_sizes) > 4: raise Wrong(f"{len(hidden_sizes)} hidden layers; at most 4 here", "fewer, narrower layers")
    sizes = [2, *hidden_sizes, 1]
    count = sum((n_in + 1) * n_out for n_in, n_out in zip(sizes, sizes[1:]))
    if count >= DEMO_PARAMETERS:
        raise Wrong(f"{list(hidden_sizes)}: {count} parameters, not fewer than the demo's {DEMO_PARAMETERS}",
                    "the point is a smaller network: fewer or narrower hidden layers")
    xs, ys = make_moons(100, noise=0.1, seed=MOONS_SEED)
    budget = f"train_moons (100 SGD steps, lr 1.0 down to 0.1) from init seeds {INIT_SEEDS}, on 100 fresh moon points"
    state = random.getstate()
    try:
        for seed in INIT_SEEDS:
            random.seed(seed)
            model = ScalarMLP(2, list(hidden_sizes) + [1])
            train_moons(model, xs, ys)
            accuracy = demo_loss(model, xs, ys)[1]
            if accuracy < 1.0:
                raise Wrong(f"{list(hidden_sizes)} ({count} parameters): training accuracy {accuracy:.0%} from init seed {seed}; "
                            f"it must reach 100% from each of the seeds {INIT_SEEDS}",
                            "a network this small cannot bend the boundary enough in 100 steps: widen it a little, or add a layer")
    finally: random.setstate(state)
    return (f"{list(hidden_sizes)}: {count} parameters reach 100% training accuracy from both seeds, beside the demo's "
            f"{DEMO_PARAMETERS}", count, DEMO_PARAMETERS, budget)
