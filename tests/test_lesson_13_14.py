"""The claims the new lesson cells of 13_activations_batchnorm and 14_backprop_ninja rest on, beyond the notebook's
one case each: nn.Linear's default initialisation, dead ReLUs getting no gradient (and distinct contexts being
enough to find them), group norm as layer norm over groups and per-example normalisation against batch norm's
coupling (13); the BatchNorm backward on paper, step by step against autograd in both variances, and the one-line
formula it simplifies to (14). Each check is also shown to fail on a wrong answer."""
import inspect, math

import pytest, torch
import torch.nn.functional as F
from torch import nn

from exp.nb_14 import batchnorm_backward


# ---- 13: what nn.Linear does by default ----

def test_nn_linear_source_is_kaiming_uniform_with_sqrt5():
    "The line the notebook prints, so a change in PyTorch's default shows up here first."
    assert 'kaiming_uniform_(self.weight, a=math.sqrt(5))' in inspect.getsource(nn.Linear.reset_parameters)


@pytest.mark.parametrize('fan_in, fan_out', [(1, 500), (7, 3000), (30, 200), (513, 100)])
def test_nn_linear_default_is_uniform_on_one_over_sqrt_fan_in(fan_in, fan_out):
    "Draw for draw the same numbers as U(-1/sqrt(fan_in), 1/sqrt(fan_in)), weight and bias: std 1/sqrt(3 fan_in)."
    torch.manual_seed(fan_in)
    lin = nn.Linear(fan_in, fan_out)
    torch.manual_seed(fan_in)
    bound = 1 / math.sqrt(fan_in)
    w = torch.empty(fan_out, fan_in).uniform_(-bound, bound)
    b = torch.empty(fan_out).uniform_(-bound, bound)
    assert torch.equal(lin.weight.detach(), w) and torch.equal(lin.bias.detach(), b)
    assert abs(w.std().item() * math.sqrt(3 * fan_in) - 1) < 0.05
    assert not torch.equal(w, torch.empty(fan_out, fan_in).uniform_(-bound / 3 ** 0.5, bound / 3 ** 0.5))   # the bound is not the std


def test_the_default_gain_is_one_over_sqrt3():
    assert math.isclose(nn.init.calculate_gain('leaky_relu', math.sqrt(5)), 3 ** -0.5)
    assert not math.isclose(nn.init.calculate_gain('leaky_relu', math.sqrt(5)), 1.0)


# ---- 13: dead ReLUs ----

def relu_net(seed, n_hidden=20, dead=(3, 11)):
    "The MLP of notebook 12 with ReLU, random weights; the units in `dead` pushed far below zero."
    g = torch.Generator().manual_seed(seed)
    C, W1 = torch.randn(27, 10, generator=g), torch.randn(30, n_hidden, generator=g) / 30 ** 0.5
    b1, W2, b2 = torch.randn(n_hidden, generator=g) * 0.1, torch.randn(n_hidden, 27, generator=g) * 0.1, torch.zeros(27)
    b1[list(dead)] = -100.0
    return [t.requires_grad_() for t in (C, W1, b1, W2, b2)]


def never_active(params, X):
    C, W1, b1 = params[:3]
    with torch.no_grad(): return ((C[X].view(len(X), -1) @ W1 + b1) <= 0).all(0)


def test_a_dead_relu_unit_gets_exactly_zero_gradient_and_a_live_one_does_not():
    p = relu_net(0)
    X, Y = torch.randint(0, 27, (500, 3), generator=torch.Generator().manual_seed(1)), torch.randint(0, 27, (500,))
    dead = never_active(p, X)
    assert dead.nonzero().flatten().tolist() == [3, 11]
    F.cross_entropy(torch.relu(p[0][X].view(len(X), -1) @ p[1] + p[2]) @ p[3] + p[4], Y).backward()
    assert torch.equal(p[1].grad[:, dead], torch.zeros(30, 2)) and torch.equal(p[2].grad[dead], torch.zeros(2))
    assert (p[1].grad[:, ~dead].abs().sum(0) > 0).all()       # every live unit does get a gradient


def test_distinct_contexts_are_enough_to_find_dead_units():
    "The notebook counts on torch.unique(Xtr, dim=0): a unit is never active on the contexts iff on every example."
    g = torch.Generator().manual_seed(2)
    X = torch.randint(0, 5, (3000, 3), generator=g)            # many repeats, as in names.txt
    for seed in range(5):
        p = relu_net(seed, dead=(seed,))
        with torch.no_grad(): p[2] += torch.randn(20, generator=g) * 2   # some units borderline
        assert torch.equal(never_active(p, torch.unique(X, dim=0)), never_active(p, X))
    assert len(torch.unique(X, dim=0)) <= 125 < len(X)


# ---- 13: the alternatives to batch norm ----

@pytest.mark.parametrize('n, c, groups', [(16, 200, 8), (3, 12, 4), (5, 6, 6), (4, 10, 1)])
def test_group_norm_is_layer_norm_over_groups_of_features(n, c, groups):
    x = torch.randn(n, c, generator=torch.Generator().manual_seed(c), dtype=torch.float64) * 3 + 1
    ln = nn.LayerNorm(c // groups, elementwise_affine=False).double()
    ours = ln(x.view(n, groups, c // groups)).view(n, c)
    assert torch.allclose(ours, F.group_norm(x, groups), atol=1e-10)
    if groups > 1: assert not torch.allclose(ours, F.layer_norm(x, (c,)), atol=1e-3)   # groups matter


def test_per_example_norms_ignore_the_batch_and_batch_norm_does_not():
    x = torch.randn(16, 40, generator=torch.Generator().manual_seed(3)) * 2 + 1
    for norm in (nn.LayerNorm(40), lambda t: F.group_norm(t, 5)):
        with torch.no_grad(): assert torch.allclose(norm(x)[:1], norm(x[:1]), atol=1e-6)
    bn = nn.BatchNorm1d(40)
    with torch.no_grad(): assert not torch.allclose(bn(x)[:2], bn(x[:2]), atol=1e-2)
    bn.eval()
    with torch.no_grad(): assert torch.allclose(bn(x)[:1], bn(x[:1]))   # in eval mode it is per example too


# ---- 14: the BatchNorm backward on paper ----

def paper_backward(x, gamma, dy, eps=1e-5, unbiased=True, slip=None):
    "The four steps of 14's whiteboard derivation; `slip` leaves out one term, as a wrong derivation would."
    n = x.shape[0]
    d = n - 1 if unbiased else n
    mu = x.mean(0, keepdim=True)
    var = ((x - mu) ** 2).sum(0, keepdim=True) / d
    s = (var + eps) ** -0.5
    dxhat = gamma * dy
    dvar = (dxhat * (x - mu) * -0.5 * (var + eps) ** -1.5).sum(0, keepdim=True)
    dmu = (dxhat * -s).sum(0, keepdim=True) + (0 if slip == 'mu via var' else dvar * -2 / d * (x - mu).sum(0, keepdim=True))
    dx = dxhat * s + (0 if slip == 'var' else dvar * 2 * (x - mu) / d) + (0 if slip == 'mu' else dmu / n)
    return dict(xhat=dxhat, var=dvar, mu=dmu, x=dx), ((x - mu) * s, s)


def autograd_nodes(x, gamma, dy, eps=1e-5, unbiased=True):
    x = x.clone().requires_grad_()
    n = x.shape[0]
    mu = x.mean(0, keepdim=True)
    var = ((x - mu) ** 2).sum(0, keepdim=True) / (n - 1 if unbiased else n)
    xhat = (x - mu) * (var + eps) ** -0.5
    for t in (mu, var, xhat): t.retain_grad()
    (gamma * xhat * dy).sum().backward()
    return dict(xhat=xhat.grad, var=var.grad, mu=mu.grad, x=x.grad)


def random_case(seed, n, c):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, generator=g, dtype=torch.float64) * (torch.rand(c, generator=g, dtype=torch.float64) * 3 + 0.1) + 2
    return x, torch.rand(1, c, generator=g, dtype=torch.float64) + 0.5, torch.randn(n, c, generator=g, dtype=torch.float64)


@pytest.mark.parametrize('n, c', [(32, 64), (2, 5), (7, 1), (100, 3)])
@pytest.mark.parametrize('unbiased', [True, False])
def test_each_step_on_paper_equals_autograd_and_the_one_line_formula(n, c, unbiased):
    x, gamma, dy = random_case(n * 100 + c, n, c)
    steps, (xhat, s) = paper_backward(x, gamma, dy, unbiased=unbiased)
    want = autograd_nodes(x, gamma, dy, unbiased=unbiased)
    for name in ('xhat', 'var', 'mu', 'x'):
        assert torch.allclose(steps[name], want[name], rtol=1e-9, atol=1e-12), name
    assert torch.allclose(batchnorm_backward(dy, gamma, s, xhat, unbiased=unbiased), steps['x'], rtol=1e-9, atol=1e-12)


def test_the_variance_path_into_the_mean_vanishes_and_each_other_term_is_needed():
    x, gamma, dy = random_case(0, 32, 8)
    want = autograd_nodes(x, gamma, dy)['x']
    right, _ = paper_backward(x, gamma, dy)
    without_var_into_mu, _ = paper_backward(x, gamma, dy, slip='mu via var')
    assert torch.allclose(without_var_into_mu['x'], right['x'], atol=1e-12)      # zero: mu is the mean of x
    for slip in ('var', 'mu'):
        wrong, _ = paper_backward(x, gamma, dy, slip=slip)
        assert not torch.allclose(wrong['x'], want, atol=1e-6), slip
    biased, _ = paper_backward(x, gamma, dy, unbiased=False)                     # the Bessel factor matters
    assert not torch.allclose(biased['x'], want, atol=1e-6)
