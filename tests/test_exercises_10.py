"""The exercises of 10_micrograd: the references pass, each usual mistake fails with its hint, hard-coded answers fail on
fresh inputs (test_exercises.py covers the layout, the reference solutions in the notebook and the untouched starters)."""
import math

import pytest

import exp.nb_10
from conftest import correct
from exercises import run_check
from exercises.nb_10 import LectureNode
from test_exercises import failing, mutated, solved
from test_lesson_10 import lecture_namespace

STEM = '10_micrograd'


@pytest.fixture(scope='module')
def Node(): return lecture_namespace()['Node']


def with_globals(fn, **names):
    "A solution function whose free names (Node, Value) are the notebook's: solved() runs it in another namespace."
    fn.__globals__.update(names)
    return fn


# ---- 10.1: predict ----

def test_10_1_reference_and_the_usual_mistakes():
    right = solved(STEM, '10.1')['backward_predictions']
    correct(run_check('10.1', right))
    r = failing(run_check('10.1', right | {'a.grad': 9.0}), 'two paths')      # the first attempt's answer
    assert '6.0' not in r.message + r.hint                                     # the answer is not given away
    failing(run_check('10.1', right | {'a.grad': -3.0}), 'two paths')          # only the path straight into d
    failing(run_check('10.1', right | {'b.grad': -4.0}), 'two paths')
    failing(run_check('10.1', right | {'b.grad': 12.0}), 'differentiate in b')
    failing(run_check('10.1', right | {"a.grad with '=' instead of '+='": 6.0}), 'overwrites')
    failing(run_check('10.1', right | {"b.grad with '=' instead of '+='": -4.0}), "c's")
    failing(run_check('10.1', right | {'L.data': -12.0}), 'forward pass')
    failing(run_check('10.1', right | {'L.data': ...}), 'still to answer')
    assert run_check('10.1', {k: ... for k in right}).state == 'not attempted'


# ---- 10.2: relu for the lecture's engine ----

RELU = 'relu'


def relu_variant(Node, old=None, new=None):
    fn = mutated(STEM, '10.2', RELU, old, new) if old else solved(STEM, '10.2')[RELU]
    return with_globals(fn, Node=Node)


def test_10_2_reference_passes_on_the_notebooks_engine_and_on_the_checks_own(Node):
    correct(run_check('10.2', relu_variant(Node), Node))
    correct(run_check('10.2', relu_variant(LectureNode), None))


@pytest.mark.parametrize('old, new, hint', [
    ('self.grad += (out.data > 0) * out.grad', 'self.grad = (out.data > 0) * out.grad', '+='),
    ('self.grad += (out.data > 0) * out.grad', 'self.grad += out.grad', 'flat'),
    ('(out.data > 0)', '(self.data >= 0)', '> 0'),
    ('    out._backward = _backward\n', '', '_backward'),
    ('max(self.data, 0.0)', 'self.data', 'max(x, 0)'),
    ("(self,), 'ReLU'", "(), 'ReLU'", 'child'),
])
def test_10_2_usual_mistakes_fail_with_their_hint(Node, old, new, hint):
    failing(run_check('10.2', relu_variant(Node, old, new), Node), hint)


def test_10_2_a_number_instead_of_a_node_fails(Node):
    failing(run_check('10.2', lambda self: max(self.data, 0.0), Node), 'new Node')


# ---- 10.3: topological sort ----

def sort_variant(old=None, new=None):
    return mutated(STEM, '10.3', 'topological_order', old, new) if old else solved(STEM, '10.3')['topological_order']


def test_10_3_reference_and_the_usual_mistakes():
    correct(run_check('10.3', sort_variant()))
    def recursive(root):
        order, seen = [], set()
        def visit(v):
            if v not in seen:
                seen.add(v)
                for c in v._prev: visit(c)
                order.append(v)
        visit(root)
        return order
    failing(run_check('10.3', recursive), 'own stack')
    def pre_order(root):
        order, seen, stack = [], {root}, [root]
        while stack:
            v = stack.pop(); order.append(v)
            for c in v._prev:
                if c not in seen: seen.add(c); stack.append(c)
        return order
    failing(run_check('10.3', pre_order), 'pre-order')
    def all_children_at_once(root):
        order, seen, expanded, stack = [], {root}, set(), [root]
        while stack:
            v = stack[-1]
            if v in expanded: stack.pop(); order.append(v); continue
            expanded.add(v)
            for c in v._prev:
                if c not in seen: seen.add(c); stack.append(c)
        return order
    failing(run_check('10.3', all_children_at_once), 'one child at a time')
    failing(run_check('10.3', sort_variant('if child not in seen:', 'if True:')), 'each node once')
    failing(run_check('10.3', lambda root: [v for v in sort_variant()(root) if v._prev]), 'leaves')
    failing(run_check('10.3', lambda root: sort_variant()(root)[::-1]), 'pre-order')


# ---- 10.4: a power by a Value ----

def pow_variant(old=None, new=None):
    fn = mutated(STEM, '10.4', 'value_pow', old, new) if old else solved(STEM, '10.4')['value_pow']
    return with_globals(fn, Value=exp.nb_10.Value, math=math)


@pytest.mark.parametrize('old, new, hint', [
    ('out * math.log(a.data)', 'out', 'e^(b ln a)'),
    ('b.data * a.data ** (b.data - 1)', 'b.data * out', 'power rule'),
    ('(b.data * a.data ** (b.data - 1), out * math.log(a.data))', '(out * math.log(a.data), b.data * a.data ** (b.data - 1))',
     'wrong order'),
])
def test_10_4_usual_mistakes_fail_with_their_hint(old, new, hint):
    correct(run_check('10.4', pow_variant(), exp.nb_10.Value))
    failing(run_check('10.4', pow_variant(old, new), exp.nb_10.Value), hint)


def test_10_4_several_nodes_and_hard_coded_answers_fail():
    V = exp.nb_10.Value
    failing(run_check('10.4', lambda a, b: (b * a.log()).exp(), V), 'one node')          # right gradients, three nodes
    failing(run_check('10.4', lambda a, b: V(2.0, (a, b), '**', (1.0, 1.0)), V), 'a.data ** b.data')
    failing(run_check('10.4', lambda a, b: a.data ** b.data, V), 'expected a Value')


# ---- 10.5: the challenge ----

def test_10_5_reference_beats_the_demo_and_wrong_answers_fail():
    r = correct(run_check('10.5', solved(STEM, '10.5')['my_hidden_sizes']))
    assert r.number == 149 < r.reference == 337 and 'seeds' in r.budget
    failing(run_check('10.5', [16, 16]), 'smaller network')
    failing(run_check('10.5', [2]), 'widen')
    failing(run_check('10.5', 16), 'list of hidden-layer widths')
    failing(run_check('10.5', [8, 0]), 'positive int')
    assert run_check('10.5', ...).state == 'not attempted'
