"""The exercises of 16a_gpt_own_autograd: the reference passes, each usual mistake fails with its hint and not the answer,
and the predictions are what the notebook's ops do (test_exercises.py covers the layout, the reference solutions run in
the notebook and untouched starters)."""
import math

import pytest, torch
import torch.nn.functional as F

from conftest import correct
from exercises import run_check
from test_exercises import SOLUTIONS, failing, solved

STEM = '16a_gpt_own_autograd'
PAIRS = {'16a.2': ('gelu_forward', 'gelu_backward'), '16a.3': ('smoothed_ce_forward', 'smoothed_ce_backward'),
         '16a.4': ('rms_norm_forward', 'rms_norm_backward')}


def engine():
    from exp.nb_16a import Function, Tensor
    return Function, Tensor


def pair(id, old=None, new=None):
    "The reference (forward, backward) of `id`, or with `old` replaced by `new` (the usual mistake; the change must apply)."
    code = SOLUTIONS[STEM][id]
    if old is not None:
        assert old in code, f"{old!r} not in the solution of {id}"
        code = code.replace(old, new)
    ns = solved(STEM)
    exec(code, ns)
    return tuple(ns[name] for name in PAIRS[id])


def check(id, *change):
    return run_check(id, pair(id, *change), *engine())


# ---- 16a.1: predictions ----

def test_16a_1_each_wrong_prediction_fails_with_its_hint_and_not_the_answer():
    right = solved(STEM, '16a.1')['predictions']
    correct(run_check('16a.1', right))
    correct(run_check('16a.1', right | {k: torch.tensor(float(v)) for k, v in right.items()}))   # tensors of one number too
    q = list(right)
    for key, wrong, hint in [(q[0], 1, 'each use'), (q[0], 2, 'each use'), (q[1], 1, 'no index picks'),
                             (q[2], 1, 'add up to the same number'), (q[3], 0.25, 'exp(-inf)'), (q[4], 0.1, 'nothing through'),
                             (q[5], -1, 'same probability'), (q[5], -0.8, 'same probability'), (q[6], 0.2, 'not row 0'),
                             (q[7], 1, '1/(1-p)'), (q[7], 0.8, '1/(1-p)')]:
        r = failing(run_check('16a.1', right | {key: wrong}), hint)
        assert f"{right[key]}" not in r.hint
    failing(run_check('16a.1', right | {q[0]: True}))   # a yes/no is not a number
    failing(run_check('16a.1', right | {q[6]: ...}), 'still to answer')
    failing(run_check('16a.1', {'a': 1}), 'keys')


def test_16a_1_the_answers_are_what_the_ops_compute():
    "Independent of the check's own code: the same lines with torch.autograd on the same arithmetic."
    w = torch.randn(6, 3, requires_grad=True)
    F.embedding(torch.tensor([[0, 2, 2], [5, 2, 0]]), w).sum().backward()
    assert w.grad[2, 0] == 3 and w.grad[1, 0] == 0
    s = torch.randn(5, dtype=torch.float64, requires_grad=True)
    s.softmax(0).sum().backward()
    assert s.grad.abs().max() < 1e-15
    z = torch.zeros(4, 5, requires_grad=True)
    F.cross_entropy(z, torch.tensor([3, 0, 4, 1])).backward()
    assert math.isclose(z.grad[0, 3], -0.2, rel_tol=1e-6) and math.isclose(z.grad[0, 1], 0.05, rel_tol=1e-6)


# ---- 16a.2-16a.4: the ops ----

def test_the_references_pass_and_untouched_starters_are_not_attempted():
    for id, (fw, bw) in PAIRS.items():
        correct(check(id))
        def stub(ctx, *args): raise NotImplementedError
        assert run_check(id, (stub, stub), *engine()).state == 'not attempted'


@pytest.mark.parametrize('old, new, hint', [
    ('return (grad * (cdf + a * pdf),)', 'return (cdf + a * pdf,)', 'chain rule'),
    ('return (grad * (cdf + a * pdf),)', 'return (grad * cdf,)', 'product rule'),
    ('return (grad * (cdf + a * pdf),)', 'return (grad * pdf,)', 'φ is the derivative of Φ'),
    ('return (grad * (cdf + a * pdf),)', 'return grad * (cdf + a * pdf)', 'in a tuple'),
    ('return (grad * (cdf + a * pdf),)', 'grad.mul_(cdf + a * pdf); return (grad,)', 'in place'),
    ('cdf = (1 + torch.erf(a / math.sqrt(2))) / 2',
     'cdf = (1 + torch.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a ** 3))) / 2', 'erf'),
    ('return a * cdf', 'return cdf', 'x Φ(x)'),
])
def test_16a_2_each_usual_mistake_fails_with_its_hint(old, new, hint):
    failing(check('16a.2', old, new), hint)


@pytest.mark.parametrize('old, new, hint', [
    ('return -(target * logp).sum(-1).mean()', 'return -(target * logp).sum(-1).sum()', 'mean over the N rows'),
    ('target = torch.full_like(logp, smoothing / c)', 'target = torch.full_like(logp, smoothing / (c - 1))\n'
     '    target[torch.arange(n), targets] = 0', 'ε / C each'),
    ('target[torch.arange(n), targets] += 1 - smoothing', 'target[torch.arange(n), targets] += 1', 'not 1'),
    ('return (logp.exp() - target) * (grad / len(logp)), None, None', 'return (logp.exp() - target) / len(logp), None, None', 'chain rule'),
    ('return (logp.exp() - target) * (grad / len(logp)), None, None', 'return (logp.exp() - target) * grad, None, None', 'mean over the N rows'),
    ('return (logp.exp() - target) * (grad / len(logp)), None, None', 'return (logp.exp() - target) * (grad / len(logp)),', 'one gradient per argument'),
    ('return (logp.exp() - target) * (grad / len(logp)), None, None',
     'return (logp.exp() - target) * (grad / len(logp)), None, torch.zeros(())', 'get None'),
])
def test_16a_3_each_usual_mistake_fails_with_its_hint(old, new, hint):
    failing(check('16a.3', old, new), hint)


def test_16a_3_a_backward_that_ignores_the_smoothing_fails():
    "Its forward is right and ε = 0 passes alone: only the smoothed cases catch it."
    fw, _ = pair('16a.3')
    def backward(ctx, grad):
        logp, target = ctx.saved
        onehot = (target == target.max(-1, keepdim=True).values).to(logp.dtype)
        return (logp.exp() - onehot) * (grad / len(logp)), None, None
    failing(run_check('16a.3', (fw, backward), *engine()), 'smoothed target')


@pytest.mark.parametrize('old, new, hint', [
    ('gx = rstd * (ghat - xhat * (ghat * xhat).mean(-1, keepdim=True))', 'gx = rstd * ghat', 'depends on x too'),
    ('ghat = grad * weight', 'ghat = grad', 'through the weight first'),
    ('gx = rstd * (ghat - xhat * (ghat * xhat).mean(-1, keepdim=True))',
     'gx = rstd * (ghat - ghat.mean(-1, keepdim=True) - xhat * (ghat * xhat).mean(-1, keepdim=True))', 'no mean term'),
    ('gw = (grad * xhat).reshape(-1, xhat.shape[-1]).sum(0)', 'gw = (grad * xhat).sum(0)', 'all dimensions but the last'),
    ('gw = (grad * xhat).reshape(-1, xhat.shape[-1]).sum(0)', 'gw = (grad * xhat * rstd.reciprocal()).reshape(-1, xhat.shape[-1]).sum(0)',
     'normalised'),
    ('rstd = (x.square().mean(-1, keepdim=True) + eps).rsqrt()', 'rstd = 1 / (x.square().mean(-1, keepdim=True).sqrt() + eps)',
     'inside the square root'),
    ('rstd = (x.square().mean(-1, keepdim=True) + eps).rsqrt()\n    xhat = x * rstd',
     'x = x - x.mean(-1, keepdim=True)\n    rstd = (x.square().mean(-1, keepdim=True) + eps).rsqrt()\n    xhat = x * rstd',
     'does not subtract the mean'),
])
def test_16a_4_each_usual_mistake_fails_with_its_hint(old, new, hint):
    failing(check('16a.4', old, new), hint)


def test_16a_4_a_backward_right_for_one_use_only_fails_inside_graphs():
    "A backward reading a global instead of ctx passes the one-use checks and fails when the op is used twice."
    fw, bw = pair('16a.4')
    kept = {}
    def forward(ctx, x, weight, eps):
        out = fw(ctx, x, weight, eps)
        kept.setdefault('saved', ctx.saved)   # the first use's, for ever
        return out
    def backward(ctx, grad):
        ctx.saved = kept.pop('saved', ctx.saved)
        return bw(ctx, grad)
    failing(run_check('16a.4', (forward, backward), *engine()))


def test_the_ops_must_not_borrow_autograd():
    fw, _ = pair('16a.2')
    def backward(ctx, grad):
        a, _ = ctx.saved
        a = a.detach().requires_grad_()
        return (torch.autograd.grad(F.gelu(a), a, grad)[0],)
    failing(run_check('16a.2', (fw, backward), *engine()), 'autograd')
