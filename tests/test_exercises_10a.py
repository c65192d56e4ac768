"""The exercises of 10a_tensor_autograd: the reference passes, each usual mistake fails with its hint, a hard-coded or
borrowed answer fails, and the checks work on the notebook's own Function and Tensor as on exp.nb_10a's.
(tests/test_exercises.py covers the rest: layout, reference solutions passing in the notebook, untouched starters.)"""
import nbformat, pytest, torch

from conftest import ROOT, correct
from exercises import run_check
from test_exercises import SOLUTIONS, failing, solved

STEM = '10a_tensor_autograd'


def variant(id, old, new, *names):
    "The reference solution of `id` with `old` replaced by `new` (the usual mistake), and the functions `names` it defines."
    code = SOLUTIONS[STEM][id]
    assert old in code, f"{old!r} not in the solution of {id}"
    ns = solved(STEM)
    exec(code.replace(old, new), ns)
    return tuple(ns[n] for n in names) if len(names) > 1 else ns[names[0]]


def pair(id, old=None, new=None):
    names = {'10a.3': ('tanh_forward', 'tanh_backward'), '10a.4': ('pow_forward', 'pow_backward')}[id]
    if old is None: return tuple(solved(STEM, id)[n] for n in names)
    return variant(id, old, new, *names)


# ---- 10a.1: gradients under broadcasting ----

def test_10a_1_each_wrong_prediction_fails_with_its_hint_and_not_the_answer():
    right = solved(STEM, '10a.1')['predictions']
    correct(run_check('10a.1', right))
    q = list(right)
    correct(run_check('10a.1', right | {q[0]: [3, 1], q[1]: torch.Size([4]), q[4]: 0.0833, q[5]: torch.tensor(8.)}))
    r = failing(run_check('10a.1', right | {q[0]: (3, 4)}), 'its own tensor')        # the broadcast shape
    assert '(3, 1)' not in r.hint and r.message.count('(3, 1)') == 1   # the question names it; nothing else does
    failing(run_check('10a.1', right | {q[1]: (3, 4)}), 'sums that dimension away')
    failing(run_check('10a.1', right | {q[2]: 1.0}), 'add them up')                  # one use only
    failing(run_check('10a.1', right | {q[3]: 1.0}), 'each use contributes 1')
    failing(run_check('10a.1', right | {q[4]: 1.0}), 'divides')
    failing(run_check('10a.1', right | {q[5]: 1.0}), 'sum over the rows')
    failing(run_check('10a.1', right | {q[2]: True}))                                 # a yes/no is not a number
    failing(run_check('10a.1', right | {q[0]: ...}), 'still to answer')


# ---- 10a.2: unbroadcast ----

def test_10a_2_reference_passes_and_each_usual_mistake_fails_with_its_hint():
    correct(run_check('10a.2', solved(STEM, '10a.2')['my_unbroadcast']))
    mistakes = [
        ('keepdim=True', 'keepdim=False', 'keepdim'),                                       # the size-1 dims dropped
        ('if lead: grad = grad.sum(tuple(range(lead)))', 'lead = 0', 'on the left'),         # added dims left alone
        ('return grad.sum(stretched, keepdim=True) if stretched else grad', 'return grad', 'stretched'),
        ('.sum(', '.mean(', 'do not average'),
    ]
    for old, new, hint in mistakes:
        failing(run_check('10a.2', variant('10a.2', old, new, 'my_unbroadcast')), hint)


def test_10a_2_borrowed_and_hard_coded_answers_fail():
    from exp.nb_10a import unbroadcast
    def borrowed(grad, shape): return unbroadcast(grad, shape)
    def one_call(grad, shape): return grad.sum_to_size(shape)
    def first_dim_only(grad, shape): return grad.sum(0)
    def zeros(grad, shape): return torch.zeros(shape, dtype=grad.dtype)
    failing(run_check('10a.2', borrowed), 'yourself')
    failing(run_check('10a.2', one_call), 'sum_to_size')
    failing(run_check('10a.2', first_dim_only))
    failing(run_check('10a.2', zeros), 'sum over every dimension')
    assert run_check('10a.2', lambda grad, shape: ...).state == 'not attempted'


# ---- 10a.3: Tanh ----

def test_10a_3_reference_passes_on_exp_nb_10a_and_on_a_fresh_copy_of_the_notebooks_classes():
    correct(run_check('10a.3', pair('10a.3')))
    from exp.nb_10a import Function, Tensor
    correct(run_check('10a.3', pair('10a.3'), Function, Tensor))
    ns = notebook_engine()
    correct(run_check('10a.3', pair('10a.3'), ns['Function'], ns['Tensor']))


@pytest.mark.parametrize('old, new, hint', [
    ('return (grad * (1 - out ** 2),)', 'return ((1 - out ** 2),)', 'chain rule'),
    ('ctx.save_for_backward(out)', 'ctx.save_for_backward(a)', '*output*'),
    ('return (grad * (1 - out ** 2),)', 'return grad * (1 - out ** 2)', 'in a tuple'),
    ('(1 - out ** 2)', '(1 - out)', 'square the output'),
    ('(1 - out ** 2)', '(1 + out ** 2)', 'sign'),
    ('return (grad * (1 - out ** 2),)', 'return (grad.mul_(1 - out ** 2),)', 'in place'),
    ('out = a.tanh()', 'out = a.sigmoid()', 'tanh of its input'),
    ('return (grad * (1 - out ** 2),)', 'return (grad * (1 - out ** 2), None)', 'one gradient per input'),
])
def test_10a_3_each_usual_mistake_fails_with_its_hint(old, new, hint):
    failing(run_check('10a.3', pair('10a.3', old, new)), hint)


def test_10a_3_autograd_in_backward_and_a_lone_function_are_refused():
    forward, _ = pair('10a.3')
    def backward_by_autograd(ctx, grad):
        out, = ctx.saved
        x = out.atanh().requires_grad_()
        return torch.autograd.grad(x.tanh(), x, grad)
    failing(run_check('10a.3', (forward, backward_by_autograd)), 'autograd')
    failing(run_check('10a.3', forward), 'pair')


# ---- 10a.4: a tensor exponent ----

def test_10a_4_reference_passes_on_exp_nb_10a_and_on_a_fresh_copy_of_the_notebooks_classes():
    correct(run_check('10a.4', pair('10a.4')))
    ns = notebook_engine()
    correct(run_check('10a.4', pair('10a.4'), ns['Function'], ns['Tensor']))


@pytest.mark.parametrize('old, new, hint', [
    ('return ctx.reduce_to_inputs(', 'return (', 'reduce_to_inputs'),                            # no unbroadcast
    ('grad * b * a ** (b - 1) if need_a else None,\n                                grad * out * a.log() if need_b else None',
     'grad * out * a.log() if need_b else None,\n                                grad * b * a ** (b - 1) if need_a else None',
     'swapped'),
    ('a ** (b - 1)', 'a ** b', 'drops by one'),
    ('grad * b * a ** (b - 1)', 'b * a ** (b - 1)', 'chain rule'),
    ('a.log()', 'b.log()', 'log of the base'),
    ('grad * out * a.log()', 'grad * b * a ** (b - 1) * a.log()', 'does not come down'),
    ('grad * b * a ** (b - 1) if need_a else None', 'None', 'needs a gradient'),
    ('out = a ** b', 'out = b ** a', 'forward returns a ** b'),
])
def test_10a_4_each_usual_mistake_fails_with_its_hint(old, new, hint):
    failing(run_check('10a.4', pair('10a.4', old, new)), hint)


def test_10a_4_ignoring_needs_input_grad_is_fine_but_not_summing_back_is_not():
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a ** b
    def backward_always_both(ctx, grad):
        a, b = ctx.saved
        return ctx.reduce_to_inputs(grad * b * a ** (b - 1), grad * a ** b * a.log())
    correct(run_check('10a.4', (forward, backward_always_both)))   # reduce_to_inputs drops what is not needed
    def backward_sums_everything(ctx, grad):
        a, b = ctx.saved
        return (grad * b * a ** (b - 1)).sum().expand(a.shape), (grad * a ** b * a.log()).sum().expand(b.shape)
    failing(run_check('10a.4', (forward, backward_sums_everything)))


# ---- the notebook's own classes ----

def notebook_engine():
    "The notebook's export cells run in a fresh namespace: a Function and a Tensor other than exp.nb_10a's."
    nb = nbformat.read(ROOT / 'nbs' / f'{STEM}.ipynb', as_version=4)
    ns = {}
    for cell in nb.cells:
        if cell.cell_type == 'code' and cell.source.startswith('#export'): exec(cell.source, ns)
    import exp.nb_10a
    assert ns['Tensor'] is not exp.nb_10a.Tensor
    return ns
