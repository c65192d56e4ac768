"""The event traces of 04_callbacks that the lesson keeps one of: which events fire, in which order and how often,
for several epochs, each cancel exception, ignored return values, `order`, and a real error passing through; and
05_anneal's scheduler positions. Every trace is compared exactly."""
import copy

import pytest, torch
import torch.nn.functional as F
from torch import nn

from exp.nb_04 import (Callback, CancelBatchException, CancelEpochException, CancelFitException, DataLoader, DataLoaders,
                       Dataset, Learner)
import exp.nb_00 as course

ALL_EVENTS = [f'{w}_{s}' for s in ('fit', 'epoch', 'batch') for w in ('before', 'after', 'after_cancel')] + \
             ['before_train', 'after_train', 'before_validate', 'after_validate',
              'after_predict', 'after_loss', 'after_backward', 'after_step']
TRAIN_BATCH = ['before_batch', 'after_predict', 'after_loss', 'after_backward', 'after_step', 'after_batch']
VALID_BATCH = ['before_batch', 'after_predict', 'after_loss', 'after_batch']


class TraceCB(Callback):
    "Records every event it sees."
    def __init__(self): self.events = []
    def __getattr__(self, name):
        if name not in ALL_EVENTS: raise AttributeError(name)
        return lambda: self.events.append(name)


def problem(n_train, seed=0):
    "Random 4-feature, 2-class data: `n_train` training items in batches of 3, 4 validation items (one batch of 6)."
    g = torch.Generator().manual_seed(seed)
    return DataLoaders.from_datasets(Dataset(torch.randn(n_train, 4, generator=g), torch.randint(0, 2, (n_train,), generator=g)),
                                     Dataset(torch.randn(4, 4, generator=g), torch.randint(0, 2, (4,), generator=g)), bs=3)


def run(n_train, n_epochs, *cbs, **fit_kwargs):
    torch.manual_seed(0)
    trace = TraceCB()
    learn = Learner(nn.Linear(4, 2), problem(n_train), cbs=[trace, *cbs]).fit(n_epochs, **fit_kwargs)
    return trace.events, learn


def epoch(n_train_batches):
    return ['before_epoch', 'before_train', *TRAIN_BATCH * n_train_batches, 'after_train',
            'before_validate', *VALID_BATCH, 'after_validate', 'after_epoch']


def test_one_epoch_is_exactly_the_diagram():
    events, _ = run(6, 1)
    assert events == ['before_fit', *epoch(2), 'after_fit']


def test_three_epochs_fire_each_epoch_event_once_per_epoch():
    events, learn = run(6, 3)
    assert events == ['before_fit', *epoch(2) * 3, 'after_fit']
    assert (learn.train_iter, learn.n_train_iters) == (6, 6)


def test_validation_alone_and_training_alone():
    events, _ = run(6, 1, train=False)
    assert events == ['before_fit', 'before_epoch', 'before_validate', *VALID_BATCH, 'after_validate', 'after_epoch', 'after_fit']
    events, _ = run(6, 1, valid=False)
    assert events == ['before_fit', 'before_epoch', 'before_train', *TRAIN_BATCH * 2, 'after_train', 'after_epoch', 'after_fit']


def test_return_values_are_ignored():
    class ReturnsFalse(Callback):
        def before_batch(self): return False
        def after_loss(self): return True
    events, _ = run(6, 1, ReturnsFalse())
    assert events == ['before_fit', *epoch(2), 'after_fit']


def test_order_decides_who_runs_first_and_equal_orders_keep_the_list_order():
    said = []

    class Says(Callback):
        def __init__(self, word, order): self.word, self.order = word, order
        def before_fit(self): said.append(self.word)
    run(6, 1, Says('third', 5), Says('first', -1), Says('second', 0), Says('second too', 0), train=False)
    assert said == ['first', 'second', 'second too', 'third']


def test_cancel_batch_skips_the_step_and_zero_grad_and_still_calls_after_batch():
    class SkipOddSteps(Callback):
        def after_backward(self):
            if self.learn.iter % 2 == 1: raise CancelBatchException()
    events, _ = run(12, 1, SkipOddSteps())
    skipped = ['before_batch', 'after_predict', 'after_loss', 'after_backward', 'after_cancel_batch', 'after_batch']
    assert events == ['before_fit', 'before_epoch', 'before_train', *(TRAIN_BATCH + skipped) * 2, 'after_train',
                      'before_validate', *VALID_BATCH, 'after_validate', 'after_epoch', 'after_fit']


def test_a_skipped_zero_grad_adds_the_batch_gradient_to_the_next():
    "The step after a batch cancelled in after_backward uses the sum of both batches' gradients."
    grads = []

    class SkipFirst(Callback):
        def after_backward(self):
            if self.learn.iter == 0: raise CancelBatchException()

    class Grads(Callback):
        def after_step(self): grads.append([p.grad.clone() for p in self.learn.model.parameters()])
    shuffled = problem(6)
    dls = DataLoaders(DataLoader(shuffled.train.ds, 3), DataLoader(shuffled.valid.ds, 6))   # a fixed order
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    start = copy.deepcopy(model)
    Learner(model, dls, cbs=[SkipFirst(), Grads()]).fit(1, valid=False)
    assert len(grads) == 1
    # both batches' gradients at the starting weights: the first batch took no step
    per_batch = [torch.autograd.grad(F.cross_entropy(start(xb), yb), list(start.parameters())) for xb, yb in dls.train]
    for used, g0, g1 in zip(grads[0], *per_batch):
        assert torch.allclose(used, g0 + g1, atol=1e-7) and not torch.allclose(used, g1, atol=1e-7)


def test_cancel_epoch_skips_the_rest_of_the_epoch_validation_included():
    class TwoBatchEpochs(Callback):
        def after_batch(self):
            if self.learn.training and self.learn.iter == 1: raise CancelEpochException()
    events, _ = run(12, 2, TwoBatchEpochs())
    # the raise is in after_batch, so the second batch has its after_batch; the pass has no after_train
    cut = ['before_epoch', 'before_train', *TRAIN_BATCH * 2, 'after_cancel_epoch', 'after_epoch']
    assert events == ['before_fit', *cut * 2, 'after_fit']


def test_cancel_fit_ends_the_running_epoch_without_its_after_epoch():
    class StopAfter(Callback):
        def after_step(self):
            if self.learn.train_iter + 1 == 5: raise CancelFitException()
    events, learn = run(12, 10, StopAfter())
    assert learn.epoch == 1
    assert events == ['before_fit', *epoch(4), 'before_epoch', 'before_train',
                      'before_batch', 'after_predict', 'after_loss', 'after_backward', 'after_step',
                      'after_cancel_fit', 'after_fit']


def test_a_real_error_passes_through_every_stage_unchanged():
    class Broken(Callback):
        def after_loss(self): raise ValueError('a real bug')
    course.test_fail(lambda: run(6, 1, Broken()), contains="a real bug", exc=ValueError)
    with pytest.raises(ValueError, match='a real bug'): run(6, 1, Broken())


def test_fit_callbacks_are_removed_afterwards_even_after_an_error():
    class Broken(Callback):
        def before_fit(self): raise ValueError('no')
    learn = Learner(nn.Linear(4, 2), problem(6))
    with pytest.raises(ValueError): learn.fit(1, cbs=[Broken()])
    assert learn.cbs == []


# ---- 05: what the schedulers see ----

def test_param_scheduler_sets_each_training_batch_from_its_position():
    from exp.nb_05 import ParamScheduler, Recorder, sched_lin
    rec = Recorder('lr')
    torch.manual_seed(0)
    Learner(nn.Linear(4, 2), problem(6), cbs=[ParamScheduler('lr', sched_lin(0.6, 0.)), rec]).fit(3)
    assert rec.params['lr'] == pytest.approx([0.6 * (1 - i / 6) for i in range(6)], rel=1e-12)


def test_one_cycle_values_at_the_ends_and_the_peak():
    from exp.nb_05 import one_cycle
    lr, mom = (s.sched_func for s in one_cycle(0.1))
    assert [lr(0.), lr(0.3), lr(1.)] == pytest.approx([0.004, 0.1, 1e-5], rel=1e-12)
    assert [mom(0.), mom(0.3), mom(1.)] == pytest.approx([0.95, 0.85, 0.95], rel=1e-12)
