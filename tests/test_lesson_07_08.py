"""Checks moved out of notebooks 07_batchnorm and 08_optimizers (each notebook keeps one representative check):
our BatchNorm against nn.BatchNorm1d/2d in more settings, LayerNorm in float64, and the StepperOptimizer's
bookkeeping (param groups, defaults, skipped parameters, p.grad left alone)."""
from functools import partial

import pytest
import torch
from torch import nn

from exp.nb_00 import near
from exp.nb_07 import BatchNorm, LayerNorm
from exp.nb_08 import StepperOptimizer, adam, adamw, l2_reg, momentum_step, sgd, sgd_momentum, sgd_step, weight_decay


def check_near(a, b, rtol, atol): assert near(a, b, rtol, atol), (a, b)


# ---- 07: BatchNorm against PyTorch, train then eval ----

def run_side_by_side(ours, theirs, x_shape, dtype=torch.float32, n_batches=5):
    "Five training batches then five eval batches through both layers; yields (ours, theirs) pairs to compare."
    ours, theirs = ours.to(dtype), theirs.to(dtype)
    nf, g = x_shape[1], torch.Generator().manual_seed(0)
    with torch.no_grad():
        w, b = torch.rand(nf, generator=g) + 0.5, torch.randn(nf, generator=g)
        for m in (ours, theirs): m.weight.copy_(w); m.bias.copy_(b)
    bshape = (1, nf) + (1,) * (len(x_shape) - 2)
    shift, scale = torch.randn(bshape, generator=g, dtype=dtype) * 3, torch.rand(bshape, generator=g, dtype=dtype) * 4 + 0.1
    for training in (True, False):
        ours.train(training); theirs.train(training)
        for _ in range(n_batches):
            x = (torch.randn(x_shape, generator=g, dtype=dtype) * scale + shift).requires_grad_()
            x2 = x.detach().clone().requires_grad_()
            w = torch.randn(x_shape, generator=g, dtype=dtype)
            y1, y2 = ours(x), theirs(x2)
            (w * y1).sum().backward(); (w * y2).sum().backward()
            yield from ((y1, y2), (x.grad, x2.grad), (ours.weight.grad, theirs.weight.grad), (ours.bias.grad, theirs.bias.grad),
                        (ours.running_mean, theirs.running_mean), (ours.running_var, theirs.running_var))
            for m in (ours, theirs): m.zero_grad()


BN_CASES = {
    'float32 2d': (lambda: (BatchNorm(6), nn.BatchNorm2d(6)), (16, 6, 5, 5), torch.float32, 1e-4, 1e-5),
    'float64 2d': (lambda: (BatchNorm(6), nn.BatchNorm2d(6)), (16, 6, 5, 5), torch.float64, 1e-10, 1e-10),
    'momentum 0.3, eps 1e-3': (lambda: (BatchNorm(6, momentum=0.3, eps=1e-3), nn.BatchNorm2d(6, momentum=0.3, eps=1e-3)),
                               (8, 6, 3, 3), torch.float32, 1e-4, 1e-5),
    '(N, C) inputs': (lambda: (BatchNorm(6), nn.BatchNorm1d(6)), (32, 6), torch.float32, 1e-4, 1e-5),
    '(N, C, L) inputs': (lambda: (BatchNorm(4), nn.BatchNorm1d(4)), (8, 4, 7), torch.float64, 1e-10, 1e-10),
}

@pytest.mark.parametrize('case', BN_CASES)
def test_batchnorm_matches_torch(case):
    make, shape, dtype, rtol, atol = BN_CASES[case]
    for a, b in run_side_by_side(*make(), shape, dtype): check_near(a, b, rtol, atol)


def test_batchnorm_comparison_can_fail():
    "The biased variance stored in running_var must be caught (in eval mode the outputs then differ)."
    class BiasedRunningVar(BatchNorm):
        def update_stats(self, x, dims):
            mean, var = x.mean(dims), x.var(dims, unbiased=False)
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum); self.running_var.lerp_(var, self.momentum)
            return mean, var
    pairs = list(run_side_by_side(BiasedRunningVar(6), nn.BatchNorm2d(6), (4, 6, 2, 2)))
    assert not all(near(a, b, 1e-4, 1e-5) for a, b in pairs)


def test_batchnorm_starts_like_torch():
    bn = BatchNorm(3)
    assert bn.running_mean.tolist() == [0.] * 3 and bn.running_var.tolist() == [1.] * 3
    assert bn.weight.tolist() == [1.] * 3 and bn.bias.tolist() == [0.] * 3
    assert sorted(dict(bn.named_buffers())) == ['running_mean', 'running_var']


@pytest.mark.parametrize('shape,x_shape', [(10, (4, 7, 10)), ((6, 5, 5), (8, 6, 5, 5)), ((3, 4), (2, 3, 4))])
def test_layernorm_matches_torch_in_float64(shape, x_shape):
    ours, theirs = LayerNorm(shape).double(), nn.LayerNorm(shape).double()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        w, b = torch.rand(theirs.weight.shape, generator=g) + 0.5, torch.randn(theirs.bias.shape, generator=g)
        for m in (ours, theirs): m.weight.copy_(w); m.bias.copy_(b)
    x = (torch.randn(x_shape, generator=g, dtype=torch.float64) * 3 + 2).requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    gy = torch.randn(x_shape, generator=g, dtype=torch.float64)
    y1, y2 = ours(x), theirs(x2)
    (gy * y1).sum().backward(); (gy * y2).sum().backward()
    for a, b in ((y1, y2), (x.grad, x2.grad), (ours.weight.grad, theirs.weight.grad), (ours.bias.grad, theirs.bias.grad)):
        check_near(a, b, 1e-10, 1e-10)


# ---- 08: the StepperOptimizer's bookkeeping ----

def params_with_grads(seed=0, n=3):
    g = torch.Generator().manual_seed(seed)
    ps = [nn.Parameter(torch.randn(4, generator=g)) for _ in range(n)]
    for p in ps: p.grad = torch.randn(4, generator=g)
    return ps


def test_stepper_defaults_and_overrides():
    opt = sgd_momentum(params_with_grads(), lr=0.1)
    assert opt.param_groups[0]['mom'] == 0.9 and opt.param_groups[0]['wd'] == 0.
    assert sgd_momentum(params_with_grads(), lr=0.1, mom=0.5).param_groups[0]['mom'] == 0.5
    assert adamw(params_with_grads()).param_groups[0]['wd'] == 1e-2
    assert {k: v for k, v in adam(params_with_grads()).param_groups[0].items() if k != 'params'} == \
        dict(beta1=0.9, beta2=0.999, eps=1e-8, wd=0., lr=1e-3)


def test_param_groups_use_their_own_settings():
    a, b = params_with_grads(1, 2)
    a0, b0 = a.detach().clone(), b.detach().clone()
    StepperOptimizer([{'params': [a]}, {'params': [b], 'lr': 0.5}], [sgd_step], lr=0.1).step()
    check_near(a, a0 - 0.1 * a.grad, 0, 1e-7)
    check_near(b, b0 - 0.5 * b.grad, 0, 1e-7)


def test_parameters_without_gradient_are_skipped_and_zero_grad_sets_none():
    ps = params_with_grads(2)
    ps[1].grad = None
    before = ps[1].detach().clone()
    opt = sgd_momentum(ps, lr=0.1, wd=0.1)
    opt.step()
    assert torch.equal(ps[1].detach(), before) and ps[1] not in opt.state
    opt.zero_grad()
    assert all(p.grad is None for p in ps)


@pytest.mark.parametrize('make', [partial(sgd_momentum, lr=0.1, wd=0.1), partial(adam, lr=1e-2, wd=0.1), partial(adamw, lr=1e-2)])
def test_p_grad_is_never_changed(make):
    ps = params_with_grads(3)
    grads = [p.grad.clone() for p in ps]
    opt = make(ps)
    opt.step(); opt.step()
    assert all(torch.equal(p.grad, g) for p, g in zip(ps, grads))


def test_two_steps_on_one_gradient_match_torch():
    "A second step on the same gradient: the L2 term must not have been added to p.grad by the first."
    ours, theirs = params_with_grads(4), params_with_grads(4)
    o1 = sgd_momentum(ours, lr=0.1, mom=0.9, wd=0.5)
    o2 = torch.optim.SGD(theirs, lr=0.1, momentum=0.9, weight_decay=0.5)
    for _ in range(3):
        o1.step(); o2.step()
        for p1, p2 in zip(ours, theirs): check_near(p1, p2, 1e-6, 1e-7)


def test_decoupled_decay_equals_l2_for_plain_sgd_only():
    def run(steppers, **hypers):
        p = params_with_grads(5, 1)[0]
        opt = StepperOptimizer([p], steppers, lr=0.1, wd=0.01, **hypers)
        for _ in range(3): opt.step()
        return p.detach()
    check_near(run([l2_reg, sgd_step]), run([weight_decay, sgd_step]), 1e-6, 1e-7)
    assert not near(run([l2_reg, momentum_step], mom=0.9), run([weight_decay, momentum_step], mom=0.9), 1e-6, 1e-7)


def test_sgd_is_exact():
    p = nn.Parameter(torch.tensor([1., -2.])); p.grad = torch.tensor([0.5, 4.])
    sgd([p], lr=0.25).step()
    assert p.tolist() == [0.875, -3.0]
