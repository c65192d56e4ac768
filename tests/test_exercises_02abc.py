"""The exercises of 02a (why sqrt 5), 02b (initialising) and 02c (NumPy from scratch): each reference solution passes,
the usual mistake of every exercise fails with the hint aimed at it, and a hard-coded answer fails on fresh inputs.
(test_exercises.py covers the layout, the notebooks run with every solution, and the untouched starters.)"""
import math

import numpy as np
import pytest
import torch

from conftest import correct
from exercises import run_check
from exercises.nb_02c import log_softmax, student
from test_exercises import SOLUTIONS, failing, mutated, solved

A, B, C = '02a_why_sqrt5', '02b_initializing', '02c_numpy_from_scratch'
NUMPY_NAMES = dict(np=np, log_softmax=log_softmax)   # what 02c's solutions use from its notebook




def solved_c(*ids):
    return solved(C, *ids, **NUMPY_NAMES)


def mutated_c(id, name, old, new):
    "mutated() for 02c, whose solutions call NumPy and the notebook's log_softmax."
    code = SOLUTIONS[C][id]
    assert old in code, f"{old!r} not in the solution of {id}"
    ns = solved_c()
    exec(code.replace(old, new), ns)
    return ns[name]


# ---- 02a ----

def test_02a_solutions_pass():
    ns = solved(A, '02a.1', '02a.2', '02a.3', '02a.4')
    for id, name in [('02a.1', 'predictions'), ('02a.2', 'default_init_'), ('02a.3', 'block_std_factor'),
                     ('02a.4', 'init_for_activations_')]:
        correct(run_check(id, ns[name]))


def test_02a_1_wrong_numbers_get_the_hint_of_their_mistake():
    answer = dict(solved(A, '02a.1')['predictions'])
    r = failing(run_check('02a.1', answer | {'fan_in of nn.Conv2d(16, 32, 3).weight': 32 * 9}), 'not the output channels')
    assert '144' not in str(r)
    failing(run_check('02a.1', answer | {'std of the weights of a fresh nn.Linear(400, 10)': 0.05}), 'variance b^2 / 3')
    failing(run_check('02a.1', answer | {'std after a default-init layer + ReLU block, over the std before': 1 / 6}), 'square root')
    failing(run_check('02a.1', answer | {'Var(w) of Kaiming for ReLU, over Var(w) of the default': ...}), 'still to answer')


@pytest.mark.parametrize('old, new, hint', [
    ('bound = 1 / math.sqrt(fan_in(layer.weight))', 'bound = 1 / math.sqrt(layer.weight.shape[0])', 'fan_out'),
    ('bound = 1 / math.sqrt(fan_in(layer.weight))', 'bound = 1 / math.sqrt(layer.weight.shape[1])', 'includes the kernel'),
    ('bound = 1 / math.sqrt(fan_in(layer.weight))', 'bound = 1 / math.sqrt(3 * fan_in(layer.weight))', 'the std, not the bound'),
    ('kaiming_uniform_(layer.weight, a=math.sqrt(5))', 'kaiming_uniform_(layer.weight)', 'a = 0'),
    ('torch.nn.init.uniform_(layer.bias, -bound, bound)', 'layer.bias.uniform_(-bound, bound)', 'no_grad'),
    ('torch.nn.init.uniform_(layer.bias, -bound, bound)', 'torch.nn.init.zeros_(layer.bias)', 'does not zero the bias'),
    ('    if layer.bias is not None:\n', '    if True:\n', 'bias=False'),
])
def test_02a_2_each_usual_mistake_fails_with_its_hint(old, new, hint):
    failing(run_check('02a.2', mutated(A, '02a.2', 'default_init_', old, new)), hint)


def test_02a_2_bias_first_banned_calls_and_hard_coded_bounds_fail():
    def bias_first(layer):
        if layer.bias is not None: torch.nn.init.uniform_(layer.bias, -1 / math.sqrt(layer.weight[0].numel()), 1 / math.sqrt(layer.weight[0].numel()))
        torch.nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5))
    failing(run_check('02a.2', bias_first), 'draw the weight first')
    failing(run_check('02a.2', lambda layer: layer.reset_parameters()), 'reset_parameters')
    def notebook_bound(layer):   # the bound of the notebook's Linear(784, 50), whatever the layer
        torch.nn.init.uniform_(layer.weight, -1 / 28, 1 / 28)
        if layer.bias is not None: torch.nn.init.uniform_(layer.bias, -1 / 28, 1 / 28)
    failing(run_check('02a.2', notebook_bound), '1/sqrt(fan_in)')


@pytest.mark.parametrize('old, new, hint', [
    ('return math.sqrt(fan_in(weight) * weight.pow(2).mean().item() * second_moment_kept)',
     'return fan_in(weight) * weight.pow(2).mean().item() * second_moment_kept', 'square root'),
    ('second_moment_kept = (1 + slope ** 2) / 2', 'second_moment_kept = 1', 'keeps only part'),
    ('second_moment_kept = (1 + slope ** 2) / 2', 'second_moment_kept = (1 + slope) / 2', 'slope^2'),
    ('second_moment_kept = (1 + slope ** 2) / 2', 'second_moment_kept = 2 / (1 + slope ** 2)', '*loses*'),
    ('math.sqrt(fan_in(weight)', 'math.sqrt(fan_out(weight)', 'fan_out'),
    ('math.sqrt(fan_in(weight)', 'math.sqrt(weight.shape[1]', 'kernel positions'),
])
def test_02a_3_each_usual_mistake_fails_with_its_hint(old, new, hint):
    r = failing(run_check('02a.3', mutated(A, '02a.3', 'block_std_factor', old, new)), hint)
    assert 'measured' in r.message


def test_02a_3_the_notebook_factor_hard_coded_fails():
    failing(run_check('02a.3', lambda weight, slope: 1 / math.sqrt(6)))


@pytest.mark.parametrize('old, new, hint', [
    ('else: a = 1.', 'else: a = 0.', 'gain of 1'),
    ('a = after.negative_slope', 'a = 0.', '(1 + slope^2) / 2'),
    ('        if layer.bias is not None: torch.nn.init.zeros_(layer.bias)\n', '', 'biases'),
    ('after = layers[i + 1] if i + 1 < len(layers) else None', 'after = layers[i - 1] if i > 0 else None', '*before*'),
])
def test_02a_4_each_usual_mistake_fails_with_its_hint(old, new, hint):
    failing(run_check('02a.4', mutated(A, '02a.4', 'init_for_activations_', old, new)), hint)


def test_02a_4_the_notebook_stacks_answer_fails_on_other_stacks():
    def relu_everywhere(layers):   # right for conv_stack and linear_stack, where a ReLU follows every layer
        for m in layers:
            if hasattr(m, 'weight'):
                torch.nn.init.kaiming_uniform_(m.weight, a=0.)
                if m.bias is not None: torch.nn.init.zeros_(m.bias)
    failing(run_check('02a.4', relu_everywhere))
    failing(run_check('02a.4', lambda layers: None), 'default init')


# ---- 02b ----

def test_02b_solutions_pass():
    ns = solved(B, '02b.1', '02b.2', '02b.3', '02b.4')
    for id, name in [('02b.1', 'predictions'), ('02b.2', 'relu_moments'), ('02b.3', 'kaiming_fan_out_'), ('02b.4', 'predicted_stds')]:
        correct(run_check(id, ns[name]))


def test_02b_1_wrong_numbers_get_the_hint_of_their_mistake():
    answer = dict(solved(B, '02b.1')['predictions'])
    failing(run_check('02b.1', answer | {'fan_out of nn.Linear(784, 256).weight': 784}), '(out_features, in_features)')
    failing(run_check('02b.1', answer | {'variance ratio of one layer: Xavier, nn.Linear(256, 64), no ReLU': 1}), 'only when n_in = n_out')
    failing(run_check('02b.1', answer | {'variance ratio per layer: Kaiming (Var(w) = 2/n_in), square layers, no ReLU': 1}),
            'nothing to make up for')


def test_02b_2_mistakes_and_a_hard_coded_answer():
    fold = mutated(B, '02b.2', 'relu_moments', 'mean = sigma / math.sqrt(2 * math.pi)', 'mean = sigma * math.sqrt(2 / math.pi)')
    failing(run_check('02b.2', fold), 'mean of |z|')
    no_mean = mutated(B, '02b.2', 'relu_moments', 'second - mean ** 2', 'second')
    failing(run_check('02b.2', no_mean), "a ReLU's mean is not 0")
    failing(run_check('02b.2', lambda sigma: (0.3989, 0.5, 0.3408)))   # sigma = 1's answer, for every sigma


@pytest.mark.parametrize('old, new, hint', [
    ('math.sqrt(2 / fan_out(w))', 'math.sqrt(2 / fan_in(w))', 'that is fan_in'),
    ('math.sqrt(2 / fan_out(w))', 'math.sqrt(1 / fan_out(w))', 'half of it'),
    ('math.sqrt(2 / fan_out(w))', '2 / fan_out(w)', 'square root of the variance'),
    ('math.sqrt(2 / fan_out(w))', 'math.sqrt(2 / w.shape[0])', 'includes the kernel'),
    ('return w.normal_(', 'return torch.empty_like(w).normal_(', 'in place'),
])
def test_02b_3_each_usual_mistake_fails_with_its_hint(old, new, hint):
    failing(run_check('02b.3', mutated(B, '02b.3', 'kaiming_fan_out_', old, new)), hint)


def test_02b_3_banned_call_and_hard_coded_std_fail():
    failing(run_check('02b.3', lambda w: torch.nn.init.kaiming_normal_(w, mode='fan_out')), 'kaiming_')
    failing(run_check('02b.3', lambda w: w.normal_(0., math.sqrt(2 / 256))))   # the notebook's width, for any weight


@pytest.mark.parametrize('old, new, hint', [
    ('var_z / 2 if relu else var_z', 'var_z', 'half the second moment'),
    ('var_z / 2 if relu else var_z', 'var_z * (0.5 - 0.5 / math.pi) if relu else var_z', 'mean included'),
    ('stds.append(math.sqrt(var_z))', 'stds.append(var_z)', 'return stds'),
    ("'xavier': lambda n_in, n_out: 2 / (n_in + n_out)", "'xavier': lambda n_in, n_out: 1 / n_in", "Xavier's 2/(n_in + n_out)"),
    ("'default': lambda n_in, n_out: 1 / (3 * n_in)", "'default': lambda n_in, n_out: 1 / (3 * n_out)", 'inputs of the layer'),
    ('second_moment, stds = x_std ** 2, []', 'second_moment, stds = x_std ** 2 / (2 if relu else 1), []', 'first ReLU comes after'),
])
def test_02b_4_each_usual_mistake_fails_with_its_hint(old, new, hint):
    r = failing(run_check('02b.4', mutated(B, '02b.4', 'predicted_stds', old, new)), hint)
    assert 'built and run' in r.message


def test_02b_4_the_notebook_curve_hard_coded_fails():
    notebook = solved(B, '02b.4')['predicted_stds']([784, 256, 256, 256, 256], 'default')
    failing(run_check('02b.4', lambda widths, init, relu=True, x_std=1.: notebook))


# ---- 02c ----

def test_02c_solutions_pass():
    ns = solved_c('02c.1', '02c.2', '02c.3')
    for id, name in [('02c.1', 'predictions'), ('02c.2', 'loss_and_grads_bias'), ('02c.3', 'agrees_with_teacher')]:
        correct(run_check(id, ns[name]))


def test_02c_1_wrong_predictions_get_the_hint_of_their_mistake():
    answer = dict(solved_c('02c.1')['predictions'])
    key = 'dz[0] for a batch of 4 whose row 0 has softmax [0.7, 0.2, 0.1] and label 0'
    r = failing(run_check('02c.1', answer | {key: [-0.3, 0.2, 0.1]}), 'divide by N')
    assert '0.075' not in str(r)
    failing(run_check('02c.1', answer | {'how many times too large each step is with stale_bs = 4 and batches of 64': 32}), "notebook's 32")
    failing(run_check('02c.1', answer | {'np.max(h, 0).shape, for h of shape (128, 64)': (128, 64)}), 'an axis')


@pytest.mark.parametrize('old, new, hint', [
    ('dh.sum(0), r.T @ dz, dz.sum(0)', 'dh.mean(0), r.T @ dz, dz.mean(0)', '*sums*'),
    ('dh = (dz @ w2.T) * (h > 0)', 'dh = dz @ w2.T', 'mask'),
    ('dz = (np.exp(lsm) - onehot) / n', 'dz = np.exp(lsm) - onehot', 'a mean over the N examples'),
    ('dh.sum(0), r.T @ dz, dz.sum(0)', 'dh, r.T @ dz, dz', 'sum over the batch axis'),
    ('return loss, x.T @ dh', 'return loss, (x.T @ dh).T', 'only one product'),
])
def test_02c_2_each_usual_mistake_fails_with_its_hint(old, new, hint):
    failing(run_check('02c.2', mutated_c('02c.2', 'loss_and_grads_bias', old, new)), hint)


def test_02c_2_torch_and_hard_coded_answers_fail():
    fixed = (2.3, np.zeros((20, 10)), np.zeros(10), np.zeros((10, 5)), np.zeros(5))
    failing(run_check('02c.2', lambda x, y, w1, b1, w2, b2: fixed))
    def in_torch(x, y, w1, b1, w2, b2):
        return tuple(torch.tensor(v) for v in solved_c('02c.2')['loss_and_grads_bias'](x, y, w1, b1, w2, b2))
    failing(run_check('02c.2', in_torch), 'NumPy only')


def test_02c_3_checks_that_miss_a_bug_or_fail_the_right_answer():
    no_loss = mutated_c('02c.3', 'agrees_with_teacher', 'if not np.isclose(loss, t_loss.item(), rtol=1e-5, atol=1e-7): return False', 'pass')
    failing(run_check('02c.3', no_loss), 'compare the loss value too')
    default_tolerance = mutated_c('02c.3', 'agrees_with_teacher', 'np.allclose(ours, theirs, rtol=1e-4, atol=slack)', 'np.allclose(ours, theirs)')
    failing(run_check('02c.3', default_tolerance), "the notebook's own loss_and_grads", 'float32')
    fixed_slack = mutated_c('02c.3', 'agrees_with_teacher', 'np.allclose(ours, theirs, rtol=1e-4, atol=slack)', 'np.allclose(ours, theirs, rtol=0, atol=1e-2)')
    failing(run_check('02c.3', fixed_slack), 'of order 1e-4')
    no_shapes = mutated_c('02c.3', 'agrees_with_teacher', '        if np.shape(ours) != theirs.shape: return False\n', '')
    failing(run_check('02c.3', no_shapes), 'raised', 'not crash')
    failing(run_check('02c.3', lambda grads, x, y, w1, w2: True), 'judged a bug right')
    failing(run_check('02c.3', lambda grads, x, y, w1, w2: False), "the notebook's own")


def test_02c_3_the_candidates_are_what_they_claim():
    "The right student agrees with autograd in float64; each bug does not (on the check's raw-pixel data)."
    from exercises.nb_02c import TEACHER_CASES, data
    x, y, w1, w2 = data(TEACHER_CASES[0], 330)
    ts = [torch.tensor(w.astype(np.float64), requires_grad=True) for w in (w1, w2)]
    loss = torch.nn.functional.cross_entropy((torch.tensor(x.astype(np.float64)) @ ts[0]).relu() @ ts[1], torch.tensor(y))
    loss.backward()
    got = student(x.astype(np.float64), y, w1.astype(np.float64), w2.astype(np.float64))
    assert np.isclose(got[0], loss.item()) and np.allclose(got[1], ts[0].grad.numpy()) and np.allclose(got[2], ts[1].grad.numpy())
    for bug in ('summed loss', 'class mean', 'stale batch size', 'no relu mask', 'transposed'):
        b = student(x, y, w1, w2, bug)
        assert not (np.isclose(b[0], got[0], rtol=1e-3) and np.shape(b[1]) == got[1].shape and np.allclose(b[1], got[1], rtol=1e-2)
                    and np.allclose(b[2], got[2], rtol=1e-2)), bug


def synthetic_test_set(n=500):
    "Images whose label is the largest of their first 10 pixels: w1 passing those through and w2 picking them classify it exactly."
    g = np.random.default_rng(0)
    x = g.uniform(0, 255, (n, 784)).astype(np.float32)
    w1 = np.zeros((784, 128), np.float32); w1[:128, :128] = np.eye(128)
    w2 = np.zeros((128, 10), np.float32); w2[:10, :10] = np.eye(10)
    return x, x[:, :10].argmax(1), w1, w2


def test_02c_4_the_challenge_is_judged_on_validation_and_reports_test_once():
    x, y, w1, w2 = synthetic_test_set()
    xt, yt = x[::-1].copy(), y[::-1].copy()                   # a "test set" the net also classifies exactly
    net = {'w1': w1, 'w2': w2, 'shift': 0., 'scale': 1.}
    r = correct(run_check('02c.4', net, x, y, 0.6886, xt, yt, 0.8276))
    assert r.number == 1.0 and r.reference == 0.6886 and 'NumPy only' in r.budget and 'validation split' in r.budget
    assert 'validation accuracy 1.0000' in r.message and 'test set, once: 1.0000' in r.message and '0.8276' in r.message
    # the test set never decides: a net perfect on test but not above the recipe on validation fails
    half = x.copy(); half[:, :10] = half[:, :10][:, ::-1]      # on these the largest pixel is mirrored: mostly wrong
    r = failing(run_check('02c.4', net, half, y, 0.6886, xt, yt, 0.8276), 'validation accuracy', '0.6886')
    assert r.number is None and 'test' not in r.message
    g = np.random.default_rng(1)
    random_net = {'w1': g.standard_normal((784, 128)).astype(np.float32), 'w2': g.standard_normal((128, 10)).astype(np.float32),
                  'shift': 0., 'scale': 255.}
    failing(run_check('02c.4', random_net, x, y, 0.6886, xt, yt, 0.8276), 'raw pixels', '0.6886')
    failing(run_check('02c.4', random_net | {'w1': np.zeros((784, 256), np.float32)}, x, y, 0.6886, xt, yt, 0.8276), 'budget')
    failing(run_check('02c.4', random_net | {'w1': torch.zeros(784, 128)}, x, y, 0.6886, xt, yt, 0.8276), 'NumPy')
    failing(run_check('02c.4', random_net | {'scale': 0.}, x, y, 0.6886, xt, yt, 0.8276), 'positive')
    failing(run_check('02c.4', (w1, w2), x, y, 0.6886, xt, yt, 0.8276), "keys 'w1'")
    failing(run_check('02c.4', net, None, None, None, None, None, None), 'x_valid')
