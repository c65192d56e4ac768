"""The exercises of 06_cnn_hooks_init and 08_optimizers: the usual mistake of each fails with its hint, a hard-coded
answer fails on fresh inputs, and the challenge's reference is what the notebook's six settings reach.
(tests/test_exercises.py covers the rest: layout, reference solutions passing in the notebooks, untouched starters.)"""
import math
from functools import partial

import pytest, torch
import torch.nn.functional as F

from exercises import run_check
from test_exercises import failing, mutated, solved

NB06, NB08 = '06_cnn_hooks_init', '08_optimizers'


# ---- 06 ----

def test_06_shape_predictions_fail_on_the_usual_slips_without_giving_the_answer():
    answer = dict(solved(NB06, '06.1')['predicted_shapes'])
    assert run_check('06.1', answer).state == 'correct'
    q = list(answer)
    r = failing(run_check('06.1', answer | {q[2]: (64, 32, 3, 3)}), 'rounds up')   # 7 -> 3: rounded down
    assert '(64, 32, 4, 4)' not in str(r)
    failing(run_check('06.1', answer | {q[1]: (64, 8, 14, 14)}), '28 - 5 + 1')      # as if it were padded
    failing(run_check('06.1', answer | {q[3]: (64, 10)}), 'Flatten')                # ten logits, whatever the input size
    failing(run_check('06.1', answer | {q[4]: 16 * 8 * 3 * 3}), 'bias')
    failing(run_check('06.1', answer | {q[0]: ...}), 'still to answer')


def test_06_relu_and_init_predictions_fail_on_the_usual_slips():
    values = dict(solved(NB06, '06.2')['predicted_values'])
    assert run_check('06.2', values).state == 'correct'
    q = list(values)
    failing(run_check('06.2', values | {q[0]: [-2.4, -0.2, 5.6]}), 'in that order')   # capped before sub
    failing(run_check('06.2', values | {q[1]: 1 / math.sqrt(2 * math.pi)}), 'leak')    # the plain ReLU's mean
    failing(run_check('06.2', values | {q[2]: math.sqrt(2 / 32)}), 'fan_in')          # fan_in without the kernel
    failing(run_check('06.2', values | {q[3]: math.sqrt(2 / 288)}), 'identity')       # the gain of a = 0
    failing(run_check('06.2', values | {q[4]: 1 / math.sqrt(288)}), 'sqrt(3)')        # the bound taken for the std


@pytest.mark.parametrize('old, new, hint', [
    ('dead_side = inp[0] <= 0', 'dead_side = outp == 0', 'sub'),                 # GeneralRelu's dead units sit at -sub
    ('dead_side = inp[0] <= 0', "dead_side = outp < -(getattr(mod, 'sub', None) or 0.)", '<='),   # a dead ReLU unit is exactly 0
    ('.all(1)', '.any(1)', 'all of them'),                                       # one unit at the floor is not a dead channel
    ('.all(1)', '.all(1).logical_not()', 'alive'),
    ('per_channel.float().mean().item()', 'dead_side.float().mean().item()', 'every example and every position'),
    ('per_channel.float().mean().item()', 'dead_side.all(0).float().mean().item()', 'height and width'),
    ('if not mod.training: return', 'pass', 'eval mode'),
    ("if not hasattr(hook, 'dead'): hook.dead = []", 'hook.dead = []', 'first call'),
    ('per_channel.float().mean().item()', 'per_channel.float()', 'single numbers'),
])
def test_06_dead_channel_hook_mistakes_fail_with_their_hint(old, new, hint):
    failing(run_check('06.3', mutated(NB06, '06.3', 'record_dead_channels', old, new)), hint)


def test_06_dead_channel_hook_right_hard_coded_or_never_set():
    assert run_check('06.3', solved(NB06, '06.3')['record_dead_channels']).state == 'correct'
    def constant(hook, mod, inp, outp):
        if mod.training: hook.dead = getattr(hook, 'dead', []) + [0.5]
    failing(run_check('06.3', constant))
    def silent(hook, mod, inp, outp): pass
    failing(run_check('06.3', silent), 'first call')


@pytest.mark.parametrize('old, new, hint', [
    ('.sum(0).view_as(weight)', '[0].view_as(weight)', 'add the batch'),          # only the first example's contribution
    ('g.sum((0, 2))', 'g.sum(2)', 'sum the upstream gradient'),                   # not summed over the batch
    ('g.sum((0, 2))', 'g.sum((0, 2)) / g.shape[2]', 'sum the upstream gradient'), # a mean over positions
    ('(kh, kw), padding=padding, stride=stride)   # columns', '(kh, kw), stride=stride)   # columns', 'F.fold'),   # no padding
    ('weight.view(co, -1).t() @ g', 'weight.view(co, -1).t() @ g * 2', 'W^T'),
    ('return grad_x, grad_weight, grad_bias', 'return grad_weight, grad_x, grad_bias', 'shape'),
])
def test_06_conv_backward_mistakes_fail_with_their_hint(old, new, hint):
    assert run_check('06.4', solved(NB06, '06.4')['conv2d_backward']).state == 'correct'
    failing(run_check('06.4', mutated(NB06, '06.4', 'conv2d_backward', old, new)), hint)


def test_06_conv_backward_refuses_autograd_and_a_hard_coded_answer():
    def uses_autograd(x, weight, grad_out, stride=1, padding=0):
        x, weight = x.requires_grad_(), weight.requires_grad_()
        bias = torch.zeros(weight.shape[0], dtype=x.dtype, requires_grad=True)
        return torch.autograd.grad(F.conv2d(x, weight, bias, stride=stride, padding=padding), (x, weight, bias), grad_out)
    failing(run_check('06.4', uses_autograd), 'uses `')
    first = tuple(torch.zeros(s, dtype=torch.float64) for s in ((1, 1, 5, 5), (1, 1, 3, 3), (1,)))
    def hard_coded(x, weight, grad_out, stride=1, padding=0): return first
    failing(run_check('06.4', hard_coded))
    assert run_check('06.4', ...).state == run_check('06.3', ...).state == 'not attempted'


# ---- 08 ----

def test_08_step_size_predictions_fail_on_the_usual_slips_without_giving_the_answer():
    steps = dict(solved(NB08, '08.1')['predicted_steps'])
    assert run_check('08.1', steps).state == 'correct'
    q = list(steps)
    failing(run_check('08.1', steps | {q[0]: 0.1}), 'geometric')            # momentum adds nothing
    r = failing(run_check('08.1', steps | {q[1]: 21}), '0.9^t')
    assert '22' not in str(r)
    failing(run_check('08.1', steps | {q[2]: 1.0}), 'g itself')             # damped taken for torch's
    failing(run_check('08.1', steps | {q[3]: 0.1}), 'exactly g')            # Adam taken for momentum
    failing(run_check('08.1', steps | {q[4]: 1e-5}), 'about lr')            # L2 taken for decoupled decay
    failing(run_check('08.1', steps | {q[5]: 1e-3}), 'multiplies p')        # and the other way round


def test_08_nesterov_mistakes_fail_with_their_hint():
    assert run_check('08.2', solved(NB08, '08.2')['nesterov_step']).state == 'correct'
    failing(run_check('08.2', solved(NB08)['momentum_step']), 'plain momentum')
    def old_buffer(p, state, grad, lr, mom, **hypers):   # the look-ahead with the buffer before its update
        b = state.get('mom_buf')
        p.add_(grad if b is None else grad + mom * b, alpha=-lr)
        state['mom_buf'] = grad.clone() if b is None else b.mul_(mom).add_(grad)
    failing(run_check('08.2', old_buffer), 'already updated')
    failing(run_check('08.2', mutated(NB08, '08.2', 'nesterov_step', 'grad.add(state', 'grad.add_(state')), 'never change')
    r = failing(run_check('08.2', mutated(NB08, '08.2', 'nesterov_step', "= grad.clone()", "= grad")), 'clone')
    assert 'fresh gradient' in r.message
    def damped(p, state, grad, lr, mom, **hypers):   # the 2019 notebook's buffer, from zero
        b = state.setdefault('mom_buf', torch.zeros_like(p)).lerp_(grad, 1 - mom)
        p.add_(grad + mom * b, alpha=-lr)
    failing(run_check('08.2', damped), 'not damped')


def test_08_rmsprop_mistakes_fail_with_their_hint():
    assert run_check('08.3', solved(NB08, '08.3')['rmsprop_step']).state == 'correct'
    failing(run_check('08.3', mutated(NB08, '08.3', 'rmsprop_step', 'v.sqrt().add_(eps)', '(v + eps).sqrt()')), 'under it')
    failing(run_check('08.3', mutated(NB08, '08.3', 'rmsprop_step', '.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)',
                                      '.mul_(1 - alpha).addcmul_(grad, grad, value=alpha)')), 'old average keeps')
    def bias_corrected(p, state, grad, lr, alpha, eps, **hypers):
        state['t'] = state.get('t', 0) + 1
        v = state.setdefault('v', torch.zeros_like(p)).mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
        p.addcdiv_(grad, (v / (1 - alpha ** state['t'])).sqrt() + eps, value=-lr)
    failing(run_check('08.3', bias_corrected), 'no bias correction')


def test_08_hard_coded_steppers_fail():
    def fixed_step(p, state, grad, lr, **hypers): p.sub_(lr * 0.1)
    failing(run_check('08.2', fixed_step))
    failing(run_check('08.3', fixed_step))
    assert run_check('08.2', ...).state == run_check('08.3', ...).state == 'not attempted'


@pytest.fixture(scope='module')
def train_data():
    from exp.nb_08 import get_data, normalize
    x_train, y_train, _, _ = get_data()
    return normalize(x_train, x_train.mean(), x_train.std()), y_train


def test_08_challenge_reports_the_learners_number_and_the_notebooks(train_data):
    from exp.nb_08 import adam, sgd
    x, y = train_data
    r = run_check('08.4', solved(NB08, '08.4')['my_opt_func'], x, y)
    assert r.state == 'correct' and r.number < r.reference == 0.5698 and '100 steps' in r.budget, str(r)
    r = failing(run_check('08.4', partial(adam), x, y), '0.5698', 'short run')   # Adam's default lr: too cautious here
    assert r.number is None
    failing(run_check('08.4', partial(sgd, lr=100.), x, y), 'diverged')
    failing(run_check('08.4', lambda ps: torch.optim.Adam(ps, lr=3e-3), x, y), 'StepperOptimizer')
    failing(run_check('08.4', partial(adam, lr=3e-3), x * 0.3 + 0.3, y), 'normalised')


def test_08_challenge_reference_is_the_best_of_the_notebooks_six_settings(train_data):
    from exercises.nb_08 import NOTEBOOK_BEST, hundred_steps
    from exp.nb_08 import StepperOptimizer, adam, adamw, l2_reg, sgd, sgd_momentum, sgd_step
    six = [partial(sgd, lr=0.1), partial(StepperOptimizer, steppers=[l2_reg, sgd_step], lr=0.1, wd=1e-2),
           partial(sgd_momentum, lr=0.05, mom=0.9, wd=1e-2), partial(adam, lr=1e-3), partial(adam, lr=1e-3, wd=1e-2),
           partial(adamw, lr=1e-3, wd=1e-1, beta1=0.85, beta2=0.99, eps=1e-6)]
    losses = [hundred_steps(f, *train_data)[0] for f in six]
    assert abs(min(losses) - NOTEBOOK_BEST) < 5e-4 and losses.index(min(losses)) == 0, losses
