"""Tests of the init helpers exported by nbs/02a_why_sqrt5 (exp/nb_02a.py) and nbs/02b_initializing (exp/nb_02b.py).

Our Kaiming-uniform weights must be bit-identical to torch.nn.init.kaiming_uniform_ from the same seed
(same arithmetic for the bound); our Xavier-uniform weights equal xavier_uniform_'s to rtol 1e-6 (the
bound is written sqrt(6)/sqrt(n_in+n_out) instead of sqrt(3)*sqrt(2/(n_in+n_out)), which can differ
in the last bit).
"""
import math

import torch
from torch import nn
from hypothesis import given, settings, strategies as st

from exp.nb_00 import set_seed
from exp.nb_02a import fan_in, leaky_gain, kaiming_uniform, kaiming_uniform_bound, stack_stats, std_ratios, geo_mean
from exp.nb_02b import fan_out, xavier_uniform, xavier_uniform_bound

dims = st.integers(1, 40)
shapes = st.one_of(st.tuples(dims, dims), st.tuples(dims, dims, st.integers(1, 5), st.integers(1, 5)))


@settings(max_examples=60, deadline=None)
@given(shapes, st.sampled_from([0., 0.01, 1., math.sqrt(5)]), st.integers(0, 2**31 - 1))
def test_kaiming_uniform_matches_torch(shape, a, seed):
    torch.manual_seed(seed); ours = kaiming_uniform(*shape, a=a)
    torch.manual_seed(seed); theirs = nn.init.kaiming_uniform_(torch.empty(*shape), a=a)
    assert torch.equal(ours, theirs)


@settings(max_examples=60, deadline=None)
@given(shapes, st.integers(0, 2**31 - 1))
def test_xavier_uniform_matches_torch(shape, seed):
    torch.manual_seed(seed); ours = xavier_uniform(*shape)
    torch.manual_seed(seed); theirs = nn.init.xavier_uniform_(torch.empty(*shape))
    assert torch.allclose(ours, theirs, rtol=1e-6, atol=0)


@given(shapes)
def test_fans_match_torch(shape):
    w = torch.empty(*shape)
    assert (fan_in(w), fan_out(w)) == nn.init._calculate_fan_in_and_fan_out(w)


def test_sqrt5_bound_is_one_over_sqrt_fan_in():
    for n in [1, 25, 144, 784, 4096]:
        assert math.isclose(kaiming_uniform_bound(n, math.sqrt(5)), 1 / math.sqrt(n), rel_tol=1e-12)
    assert math.isclose(leaky_gain(0.), math.sqrt(2)) and math.isclose(leaky_gain(1.), 1.)
    assert math.isclose(xavier_uniform_bound(100, 200), math.sqrt(6 / 300))


def test_default_layers_use_sqrt5():
    for make in [lambda: nn.Linear(300, 20), lambda: nn.Conv2d(3, 8, 5)]:
        set_seed(); layer = make()
        set_seed(); ours = kaiming_uniform(*layer.weight.shape, a=math.sqrt(5))
        assert torch.equal(layer.weight.detach(), ours)


def test_stack_stats_and_ratios():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(50, 7, generator=gen)
    s = stack_stats([lambda t: t * 3, lambda t: t - 1, nn.Identity()], x)
    assert s.shape == (3, 2) and s.dtype == torch.float64
    assert torch.allclose(s[:, 0], torch.stack([3 * x.mean(), 3 * x.mean() - 1, 3 * x.mean() - 1]).double(), atol=1e-5)
    assert torch.allclose(s[:, 1], (3 * x.std()).double().expand(3), rtol=1e-5)
    # a std far below float32's squared range is still measured
    tiny = stack_stats([lambda t: t * 1e-25], torch.randn(1000, 10, generator=gen))
    assert 0.9e-25 < tiny[0, 1] < 1.1e-25
    assert torch.allclose(std_ratios(torch.tensor([1., 0.5, 0.125])), torch.tensor([0.5, 0.25]))
    assert math.isclose(geo_mean(torch.tensor([0.5, 0.125])), 0.25, rel_tol=1e-6)
