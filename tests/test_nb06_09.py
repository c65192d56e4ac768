"Fast checks of exp.nb_06 .. exp.nb_09 (the notebooks hold the full tests)."
import copy, subprocess, sys
from functools import partial
from pathlib import Path
import pytest, torch
from torch import nn
import torch.nn.functional as F

from exp.nb_00 import equals, near
from exp.nb_09 import (Hooks, append_stats, BatchNorm, LayerNorm, sgd_momentum, adam, adamw,
                       random_crop, ResBlock)
from exp.nb_08 import StepperOptimizer, l2_reg, sgd_step

ROOT = Path(__file__).resolve().parent.parent

def check_near(a, b, rtol=1e-3, atol=1e-5): assert near(a, b, rtol, atol), (a, b)
def check_eq(a, b): assert equals(a, b), (a, b)


# Every CUDA entry point raises in the probed process, so a module that asks about CUDA at import fails loudly.
CUDA_TRAP = """
import sys, torch
def trap(*a, **k): raise RuntimeError('CUDA touched')
for name in ('is_available', 'device_count', 'init', '_lazy_init', 'current_device'):
    setattr(torch.cuda, name, trap)
exec(sys.argv[1])
"""

def touches_cuda(code, cwd=None):
    "Does running `code` in a fresh Python process call any CUDA entry point?"
    res = subprocess.run([sys.executable, '-c', CUDA_TRAP, code], capture_output=True, text=True, cwd=cwd)
    if res.returncode == 0: return False
    if 'CUDA touched' in res.stderr: return True
    raise RuntimeError(f"probe failed for other reasons:\n{res.stderr[-2000:]}")


def test_importing_nb_06_does_not_touch_cuda():
    assert touches_cuda('import torch; torch.cuda.is_available()', cwd=ROOT)   # the probe works
    assert not touches_cuda('import exp.nb_06 as m; m.DeviceCB()', cwd=ROOT)


def test_hooks_are_removed():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    with Hooks(model, append_stats) as hooks:
        model(torch.randn(5, 3))
    assert len(hooks[1].stats[0]) == 1
    assert all(len(m._forward_hooks) == 0 for m in model)


@pytest.mark.parametrize('training', [True, False])
def test_batchnorm_matches_torch(training):
    torch.manual_seed(0)
    ours, theirs = BatchNorm(4), nn.BatchNorm2d(4)
    for _ in range(3):   # build up running statistics first
        x = torch.randn(8, 4, 3, 3) * 2 + 1
        ours(x); theirs(x)
    ours.train(training); theirs.train(training)
    x = (torch.randn(8, 4, 3, 3) * 3 - 1).requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    y1, y2 = ours(x), theirs(x2)
    w = torch.randn_like(y1)
    (w * y1).sum().backward(); (w * y2).sum().backward()
    check_near(y1, y2, rtol=1e-4, atol=1e-5)
    check_near(x.grad, x2.grad, rtol=1e-4, atol=1e-5)
    check_near(ours.running_mean, theirs.running_mean)
    check_near(ours.running_var, theirs.running_var)


def test_layernorm_matches_torch():
    x = torch.randn(4, 6, 5) * 3 + 2
    check_near(LayerNorm((6, 5))(x), nn.LayerNorm((6, 5))(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('ours,theirs', [
    (partial(sgd_momentum, lr=0.05, mom=0.9, wd=1e-2), partial(torch.optim.SGD, lr=0.05, momentum=0.9, weight_decay=1e-2)),
    (partial(adam, lr=1e-2, wd=1e-2), partial(torch.optim.Adam, lr=1e-2, weight_decay=1e-2)),
    (partial(adamw, lr=1e-2, wd=1e-1), partial(torch.optim.AdamW, lr=1e-2, weight_decay=1e-1)),
])
def test_optimizer_trajectories(ours, theirs):
    torch.manual_seed(0)
    m1 = nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 3))
    m2 = copy.deepcopy(m1)
    o1, o2 = ours(m1.parameters()), theirs(m2.parameters())
    for _ in range(20):
        x, y = torch.randn(16, 10), torch.randint(0, 3, (16,))
        for m, o in ((m1, o1), (m2, o2)):
            F.cross_entropy(m(x), y).backward(); o.step(); o.zero_grad()
    for p1, p2 in zip(m1.parameters(), m2.parameters()): check_near(p1, p2, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('ours,theirs', [
    (partial(StepperOptimizer, steppers=[l2_reg, sgd_step], lr=0.1, wd=0.1), partial(torch.optim.SGD, lr=0.1, weight_decay=0.1)),
    (partial(sgd_momentum, lr=0.1, mom=0.9, wd=0.1), partial(torch.optim.SGD, lr=0.1, momentum=0.9, weight_decay=0.1)),
    (partial(adam, lr=1e-2, wd=0.1), partial(torch.optim.Adam, lr=1e-2, weight_decay=0.1)),
    (partial(adamw, lr=1e-2, wd=0.1), partial(torch.optim.AdamW, lr=1e-2, weight_decay=0.1)),
])
def test_weight_decay_leaves_the_gradient_alone_like_torch_optim(ours, theirs):
    "Steps on one fixed gradient (no zero_grad): L2 must not add wd*p into p.grad, or the next step sees a different gradient."
    torch.manual_seed(0)
    p1 = nn.Parameter(torch.randn(4, 3)); p1.grad = torch.randn(4, 3)
    p2 = nn.Parameter(p1.detach().clone()); p2.grad = p1.grad.clone()
    g0 = p1.grad.clone()
    o1, o2 = ours([p1]), theirs([p2])
    for _ in range(3):
        o1.step(); o2.step()
        check_eq(p1.grad, g0); check_eq(p2.grad, g0)
        check_near(p1, p2, rtol=1e-6, atol=1e-7)


def test_random_crop_windows():
    x = torch.randn(5, 1, 4, 4)
    out = random_crop(x, pad=1, fill=9., generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    oy, ox = torch.randint(0, 3, (5,), generator=g), torch.randint(0, 3, (5,), generator=g)
    padded = F.pad(x, (1, 1, 1, 1), value=9.)
    for i in range(5): check_eq(out[i], padded[i, :, oy[i]:oy[i] + 4, ox[i]:ox[i] + 4])


def test_resblock_identity_when_conv_path_is_zero():
    block = ResBlock(8, 8)
    with torch.no_grad(): block.convs[1][1].weight.zero_(); block.convs[1][1].bias.zero_()
    x = torch.randn(2, 8, 5, 5)
    check_near(block(x), x.relu())
