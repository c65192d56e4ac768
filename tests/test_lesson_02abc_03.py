"""Checks moved out of the lessons 02c and 03 (each lesson keeps one representative check in place):
03's validation split, sampler, batch sampler and data loader on small exact cases; 02c's two-step
log-softmax backward against autograd on fresh data."""
import numpy as np
import pytest
import torch

from exp.nb_00 import test_fail as fails   # renamed: pytest would collect a test_ name
from exp.nb_03 import BatchSampler, DataLoader, Dataset, Sampler, collate, split_valid


# ---- 03: split_valid ----

def test_split_valid_sizes_and_every_example_once():
    x, y = torch.arange(100.).view(50, 2), torch.arange(50)
    xt, yt, xv, yv = split_valid(x, y, 10, seed=1)
    assert (len(xt), len(xv)) == (40, 10)
    assert torch.equal(torch.cat([yt, yv]).sort().values, y)        # no example lost or repeated
    assert torch.equal(xt[:, 0], 2. * yt) and torch.equal(xv[:, 0], 2. * yv)   # inputs stay with their targets
    assert torch.equal(split_valid(x, y, 10, seed=1)[3], yv)         # the same seed, the same split
    assert not torch.equal(split_valid(x, y, 10, seed=2)[3], yv)


@pytest.mark.parametrize('n_valid', [0, 50, -3])
def test_split_valid_refuses_an_empty_or_whole_split(n_valid):
    fails(lambda: split_valid(torch.zeros(50, 2), torch.zeros(50), n_valid), contains=f'n_valid={n_valid}')


# ---- 03: Sampler and BatchSampler ----

def test_batch_sampler_lengths():
    small = Dataset(torch.arange(10.), torch.arange(10))
    assert len(BatchSampler(Sampler(small), 4)) == 3 and len(BatchSampler(Sampler(small), 4, drop_last=True)) == 2
    assert len(BatchSampler(Sampler(small), 5)) == 2 == len(BatchSampler(Sampler(small), 5, drop_last=True))
    assert [len(b) for b in BatchSampler(Sampler(small), 3)] == [3, 3, 3, 1]


def test_shuffled_sampler_is_a_fresh_permutation_each_pass_and_reproducible():
    small = Dataset(torch.arange(10.), torch.arange(10))
    first = list(Sampler(small, shuffle=True, generator=torch.Generator().manual_seed(0)))
    again = list(Sampler(small, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert first == again and sorted(first) == list(range(10)) and first != list(range(10))
    assert list(Sampler(small)) == list(range(10))


def test_dataset_refuses_mismatched_lengths():
    fails(lambda: Dataset(torch.zeros(5), torch.zeros(4)), contains='targets')


# ---- 03: DataLoader ----

def test_data_loader_length_and_the_item_by_item_path():
    x, y = torch.arange(70.).view(35, 2), torch.arange(35)
    ds = Dataset(x, y)
    assert len(DataLoader(ds, 8)) == 5 and len(DataLoader(ds, 8, drop_last=True)) == 4
    whole = [(xb, yb) for xb, yb in DataLoader(ds, 8)]
    by_item = [(xb, yb) for xb, yb in DataLoader(ds, 8, collate_fn=collate)]
    assert len(whole) == len(by_item) == 5
    for (a, b), (c, d) in zip(whole, by_item): assert torch.equal(a, c) and torch.equal(b, d)
    assert torch.equal(torch.cat([yb for _, yb in whole]), y)


# ---- 02c: log-softmax's backward in two steps ----

def two_step_backward(z, y):
    "02c's derivation: dlsm = -onehot / N, then dz = dlsm - softmax * dlsm.sum(1)."
    zs = z - z.max(1, keepdims=True)
    lsm = zs - np.log(np.exp(zs).sum(1, keepdims=True))
    onehot = np.eye(z.shape[1])[y]
    dlsm = -onehot / len(z)
    return dlsm, dlsm - np.exp(lsm) * dlsm.sum(1, keepdims=True), (np.exp(lsm) - onehot) / len(z)


@pytest.mark.parametrize('n, c, scale', [(1, 3, 1.), (7, 10, 1.), (32, 10, 30.)])
def test_log_softmax_backward_steps_match_autograd(n, c, scale):
    g = np.random.default_rng(n)
    z, y = g.standard_normal((n, c)) * scale, g.integers(0, c, n)
    tz = torch.tensor(z, requires_grad=True)
    tlsm = torch.log_softmax(tz, 1)
    tlsm.retain_grad()
    torch.nn.functional.nll_loss(tlsm, torch.tensor(y)).backward()
    dlsm, dz, dz_classic = two_step_backward(z, y)
    np.testing.assert_array_equal(dlsm, tlsm.grad.numpy())
    np.testing.assert_allclose(dz, tz.grad.numpy(), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(dz_classic, dz, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(dz.sum(1), 0, atol=1e-15)     # a softmax's gradient sums to zero over the classes
