"Fast checks of the training stack of notebooks 03-05 (exp.nb_03 .. exp.nb_05), on synthetic data."
import copy, math
import pytest
import torch
from torch import nn
import torch.nn.functional as F

from exp.nb_05 import (accuracy, cross_entropy, log_softmax, logsumexp, nll, Dataset, Sampler, BatchSampler,
                       collate, DataLoader, get_dls, Optimizer, fit, DataLoaders, Learner, Callback, MetricsCB,
                       Recorder, RunningMean, CancelBatchException, CancelEpochException, CancelFitException,
                       sched_lin, sched_cos, sched_exp, sched_no, combine_scheds, one_cycle,
                       lr_find, EarlyStoppingCB)


def tiny_dls(n_train=12, n_valid=5, bs=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    mk = lambda n: Dataset(torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g))
    return DataLoaders.from_datasets(mk(n_train), mk(n_valid), bs)


# ---- 03: losses, metric, data, optimizer, fit

@pytest.mark.parametrize('scale', [1., 30., 100., 1000.])
def test_cross_entropy_matches_torch_on_extreme_logits(scale):
    torch.manual_seed(0)
    x, y = torch.randn(16, 10) * scale, torch.randint(0, 10, (16,))
    assert torch.isfinite(cross_entropy(x, y))
    torch.testing.assert_close(cross_entropy(x, y), F.cross_entropy(x, y), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(log_softmax(x), F.log_softmax(x, -1), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(logsumexp(x), x.logsumexp(-1, keepdim=True))


def test_nll_and_accuracy_exact():
    inp = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]))
    assert math.isclose(nll(inp, torch.tensor([0, 2])).item(), -(math.log(0.5) + math.log(0.8)) / 2, rel_tol=1e-6)
    assert accuracy(inp, torch.tensor([0, 1])).item() == 0.5


def test_dataloader_visits_every_item_once_and_matches_collate():
    ds = Dataset(torch.arange(10.).unsqueeze(1), torch.arange(10))
    ys = torch.cat([yb for _, yb in DataLoader(ds, 3, shuffle=True)])
    assert sorted(ys.tolist()) == list(range(10))
    assert [len(yb) for _, yb in DataLoader(ds, 3)] == [3, 3, 3, 1]
    assert [len(yb) for _, yb in DataLoader(ds, 3, drop_last=True)] == [3, 3, 3]
    assert len(DataLoader(ds, 3)) == 4 and len(DataLoader(ds, 3, drop_last=True)) == 3
    for (xa, ya), (xb, yb) in zip(DataLoader(ds, 4), DataLoader(ds, 4, collate_fn=collate)):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_sampler_reproducible_with_generator():
    ds = Dataset(torch.zeros(20), torch.zeros(20))
    a = list(Sampler(ds, shuffle=True, generator=torch.Generator().manual_seed(3)))
    b = list(Sampler(ds, shuffle=True, generator=torch.Generator().manual_seed(3)))
    assert a == b and sorted(a) == list(range(20)) and a != list(range(20))
    assert [t.tolist() for t in BatchSampler(Sampler(ds), 8)] == [list(range(8)), list(range(8, 16)), list(range(16, 20))]


def test_optimizer_equals_torch_sgd():
    torch.manual_seed(0)
    m1 = nn.Linear(4, 3); m2 = copy.deepcopy(m1)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    for m, opt in [(m1, Optimizer(m1.parameters(), 0.3)), (m2, torch.optim.SGD(m2.parameters(), 0.3))]:
        F.cross_entropy(m(x), y).backward(); opt.step(); opt.zero_grad()
    for p, q in zip(m1.parameters(), m2.parameters()): torch.testing.assert_close(p, q)


def test_fit_reduces_loss():
    torch.manual_seed(0)
    x = torch.randn(200, 4); y = (x[:, 0] > 0).long()
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    dls = get_dls(Dataset(x, y), Dataset(x, y), 20)
    loss, acc = fit(20, model, F.cross_entropy, Optimizer(model.parameters(), 0.2), *dls, log=None)
    assert acc > 0.9 and loss < 0.3


# ---- 04: Learner, callbacks, cancellation, metrics

class Trace(Callback):
    def __init__(self): self.events = []
    def __getattr__(self, name):
        if name.startswith(('before_', 'after_')): return lambda: self.events.append(name)
        raise AttributeError(name)


def test_event_sequence_and_before_epoch_once():
    trace = Trace()
    Learner(nn.Linear(4, 3), tiny_dls(8, 4, 4), cbs=[trace]).fit(2)
    tb = ['before_batch', 'after_predict', 'after_loss', 'after_backward', 'after_step', 'after_batch']
    vb = ['before_batch', 'after_predict', 'after_loss', 'after_batch']
    epoch = ['before_epoch', 'before_train', *tb, *tb, 'after_train', 'before_validate', *vb, 'after_validate', 'after_epoch']
    assert trace.events == ['before_fit', *epoch, *epoch, 'after_fit']


def test_return_values_are_ignored():
    class Falsy(Callback):
        def before_batch(self): return False
        def before_epoch(self): return True
    trace = Trace()
    Learner(nn.Linear(4, 3), tiny_dls(), cbs=[Falsy(), trace]).fit(2)
    assert trace.events.count('after_step') == 2 * 3


@pytest.mark.parametrize('exc, where, expect', [
    (CancelBatchException, 'after_backward', {'after_step': 0, 'after_cancel_batch': 6, 'after_batch': 6 + 2}),
    (CancelEpochException, 'after_step', {'after_step': 2, 'after_cancel_epoch': 2, 'after_epoch': 2, 'before_validate': 0}),
    (CancelFitException, 'after_step', {'after_step': 1, 'after_cancel_fit': 1, 'after_fit': 1, 'before_epoch': 1}),
])
def test_cancel_exceptions(exc, where, expect):
    class Raiser(Callback):
        order = 1
    def raise_(self):
        if self.learn.training: raise exc()
    setattr(Raiser, where, raise_)
    trace = Trace()
    Learner(nn.Linear(4, 3), tiny_dls(), cbs=[trace, Raiser()]).fit(2)
    for event, n in expect.items(): assert trace.events.count(event) == n, (event, trace.events.count(event), n)


def test_metrics_weighted_by_batch_size():
    rm = RunningMean(); rm.add(1., 3); rm.add(0., 1)
    assert rm.value == 0.75
    dls = tiny_dls(12, 5, 4)   # valid: one batch of 5 (bs * 2 = 8)
    m = MetricsCB(accuracy)
    m.write = lambda row: None
    learn = Learner(nn.Linear(4, 3), dls, lr=0., cbs=[m]).fit(1)
    x, y = dls.train.ds[:]
    with torch.no_grad(): expect = F.cross_entropy(learn.model(x), y).item()
    assert math.isclose(m.latest('train_loss'), expect, rel_tol=1e-5)


def test_fit_cbs_are_temporary_and_lr_override():
    rec = Recorder('lr')
    learn = Learner(nn.Linear(4, 3), tiny_dls(), lr=0.1)
    learn.fit(1, cbs=[rec], lr=0.02)
    assert rec not in learn.cbs and set(rec.params['lr']) == {0.02}


# ---- 05: schedules, scheduler, LR finder, early stopping

def test_schedules():
    assert sched_lin(0., 2.)(0.25) == 0.5 and sched_no(3.)(0.9) == 3.
    assert math.isclose(sched_cos(0., 2.)(0.5), 1.) and math.isclose(sched_exp(1., 100.)(0.5), 10.)
    f = combine_scheds([0.25, 0.75], [sched_lin(0., 1.), sched_lin(1., 0.)])
    assert [round(f(p), 6) for p in (0., 0.125, 0.25, 0.625, 1.)] == [0., 0.5, 1., 0.5, 0.]


def test_param_scheduler_and_one_cycle():
    rec = Recorder('lr', 'momentum')
    learn = Learner(nn.Linear(4, 3), tiny_dls(40, 5, 4), opt_func=lambda p, lr: torch.optim.SGD(p, lr, momentum=0.9))
    learn.fit(2, cbs=one_cycle(0.5, pct_start=0.25) + [rec])
    lrs, moms = rec.params['lr'], rec.params['momentum']
    assert len(lrs) == 20 and math.isclose(lrs[0], 0.5 / 25) and math.isclose(lrs[5], 0.5)
    assert lrs[-1] < 0.05 and math.isclose(moms[5], 0.85)
    assert max(lrs) == lrs[5]


def test_lr_find_restores_weights_and_grows_geometrically():
    learn = Learner(nn.Linear(4, 3), tiny_dls(40, 5, 4))
    before = copy.deepcopy(learn.model.state_dict())
    finder = lr_find(learn, start_lr=1e-4, end_lr=1e2, n_iters=30)
    for k, v in learn.model.state_dict().items(): assert torch.equal(v, before[k])
    ratios = [b / a for a, b in zip(finder.lrs, finder.lrs[1:])]
    assert all(math.isclose(r, 1e6 ** (1 / 30), rel_tol=1e-9) for r in ratios)
    assert len(finder.lrs) <= 30 and finder.suggestions()[0] > 0


def test_early_stopping_stops_after_patience():
    class FakeMetrics(Callback):
        "Reports a scripted validation loss per epoch."
        values = [3., 2., 1., 1.5, 1.2, 1.1, 0.5]
        def before_fit(self): self.learn.metrics, self.log = self, []
        def after_epoch(self): self.log.append({'valid_loss': self.values[self.learn.epoch]})
        def latest(self, key): return self.log[-1][key]
    stop = EarlyStoppingCB('valid_loss', patience=2)
    learn = Learner(nn.Linear(4, 3), tiny_dls(), cbs=[FakeMetrics(), stop]).fit(7)
    assert (stop.best, stop.best_epoch, stop.stopped_epoch) == (1., 2, 4)
    assert learn.epoch == 4
