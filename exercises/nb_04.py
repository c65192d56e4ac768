"""Checks for the exercises of 04_callbacks: which events a cancelled batch or epoch still fires (04.1, 04.2), and two
callbacks run in a tiny Learner on fresh random data: shorter training passes that keep validation whole (04.3), and
gradient accumulation, checked against the bigger batch it stands for (04.4)."""
import copy, functools

import torch
import torch.nn.functional as F
from torch import nn

from exercises import NotAttempted, Wrong, check_predictions, exercise

EVENTS = [f'{w}_{s}' for s in ('fit', 'epoch', 'batch') for w in ('before', 'after', 'after_cancel')] + \
         ['before_train', 'after_train', 'before_validate', 'after_validate',
          'after_predict', 'after_loss', 'after_backward', 'after_step']


def own_rng(check):
    "Run a check with torch's global random state saved and restored: it seeds its own runs, and must not reseed the notebook's."
    @functools.wraps(check)
    def wrapped(*args):
        with torch.random.fork_rng(devices=[]): return check(*args)
    return wrapped


def spy_class():
    "A callback that records every event, with (training, iter, epoch); it runs before any other, so it sees an event even when a callback after it raises there."
    from exp.nb_04 import Callback

    class Spy(Callback):
        order = -1000
        def __init__(self): self.events = []
        def __getattr__(self, name):
            if name not in EVENTS: raise AttributeError(name)
            def record():
                learn = self.learn
                self.events.append((name, learn.training, getattr(learn, 'iter', None), getattr(learn, 'epoch', None)))
            return record
        def count(self, name, training=None, epoch=None):
            return sum(1 for e, t, _, ep in self.events if e == name and (training is None or t == training)
                       and (epoch is None or ep == epoch))
        def names(self): return [e for e, *_ in self.events]
    return Spy


def tiny_dls(seed, n_train, n_valid, bs, shuffle=True, dtype=torch.float32, classes=3):
    "Fresh random data (4 features) as DataLoaders: training batches of `bs`, validation of 2 * bs."
    from exp.nb_04 import DataLoader, DataLoaders, Dataset
    g = torch.Generator().manual_seed(seed)
    train = Dataset(torch.randn(n_train, 4, generator=g, dtype=dtype), torch.randint(0, classes, (n_train,), generator=g))
    valid = Dataset(torch.randn(n_valid, 4, generator=g, dtype=dtype), torch.randint(0, classes, (n_valid,), generator=g))
    if shuffle: return DataLoaders.from_datasets(train, valid, bs)
    return DataLoaders(DataLoader(train, bs), DataLoader(valid, 2 * bs))   # fixed order, for comparing weights


def learner_for(cls):
    """The `Learner` of the namespace the callback class was written in, else exp.nb_04's. Notebook 04 defines its own
    Learner and cancel exceptions: exp.nb_04's Learner would not catch the notebook's CancelBatchException."""
    from exp.nb_04 import Learner
    for value in vars(cls).values():
        namespace = getattr(value, '__globals__', None)
        if namespace is not None:
            found = namespace.get('Learner')
            return found if isinstance(found, type) else Learner
    return Learner


def defines_events(cls):
    "The event methods a callback class (or instance) defines: none means the starter is untouched."
    return [e for e in EVENTS if callable(getattr(cls, e, None))]


def instance(cls, *args, **kwargs):
    """`cls(*args, **kwargs)`. The starter's `__init__` raises NotImplementedError (so an untouched starter reports "not
    attempted"); with event methods written and that line still there, say so."""
    try: return cls(*args, **kwargs)
    except NotImplementedError:
        if defines_events(cls):
            raise Wrong(f"{cls.__name__}(...) raised NotImplementedError, though your event methods are written",
                        "delete the starter's `raise NotImplementedError` line in __init__") from None
        raise


def as_events(value):
    return list(value) if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value) else None


def same_answer(value, truth):
    "A count is an int and a yes/no a bool (True is not taken for 1, nor 1 for True)."
    return type(value) is type(truth) and value == truth


def events_between(names, first, last):
    "The events from the first `first` to the first `last` after it, both included."
    i = names.index(first)
    return names[i:names.index(last, i) + 1]


# ---- 04.1: a CancelBatchException in after_loss ----

def batch_cancel_run(seed=0):
    "The scenario of 04.1 on fresh data: the events, and whether the weights moved."
    from exp.nb_04 import Callback, CancelBatchException, Learner

    class SkipTheStep(Callback):
        def after_loss(self):
            if self.learn.training: raise CancelBatchException()

    torch.manual_seed(seed)
    spy, model = spy_class()(), nn.Linear(4, 2)
    before = [p.detach().clone() for p in model.parameters()]
    Learner(model, tiny_dls(seed, 6, 4, 3, classes=2), cbs=[SkipTheStep(), spy]).fit(1)
    changed = any(not torch.equal(p.detach(), b) for p, b in zip(model.parameters(), before))
    return spy, changed


BATCH_KEYS = ('events of one training batch, in order', "times 'after_batch' fires in the fit",
              "times 'after_cancel_batch' fires in the fit", 'the validation pass runs', 'the fit changes the weights')


@exercise('04.1', 'predict: a batch cancelled in after_loss', kind='predict')
@own_rng
def check_batch_cancel(answer):
    spy, changed = batch_cancel_run(seed=41)
    names = spy.names()
    truth = {BATCH_KEYS[0]: events_between(names, 'before_batch', 'after_batch'),
             BATCH_KEYS[1]: spy.count('after_batch'),
             BATCH_KEYS[2]: spy.count('after_cancel_batch'),
             BATCH_KEYS[3]: spy.count('before_validate') > 0,
             BATCH_KEYS[4]: changed}
    expected = {k: (lambda v, k=k: as_events(v) == truth[k] if k == BATCH_KEYS[0] else same_answer(v, truth[k])) for k in truth}
    trace = as_events(answer.get(BATCH_KEYS[0])) if isinstance(answer, dict) else None
    if trace is None: trace_hint = "write the events as a list of names, such as ['before_batch', ...]"
    elif {'after_backward', 'after_step'} & set(trace):
        trace_hint = "the raise leaves _do_batch at once: nothing after after_loss in it runs, not even the backward pass"
    elif 'after_batch' not in trace: trace_hint = "the batch stage catches its own exception, and then still calls its after_ event (read _stage)"
    elif 'after_cancel_batch' not in trace: trace_hint = "a caught cancel exception has an event of its own (see the table)"
    else: trace_hint = "from 'before_batch' on: what runs up to the raise, then what _stage calls once it catches the exception"
    hints = {BATCH_KEYS[0]: trace_hint,
             BATCH_KEYS[1]: "does a cancelled batch still reach after_batch? and how many batches has the validation pass?",
             BATCH_KEYS[2]: "the callback raises only while self.learn.training",
             BATCH_KEYS[3]: "a batch's exception ends that batch, nothing bigger",
             BATCH_KEYS[4]: "which step of a batch changes the weights, and is it reached?"}
    return check_predictions(answer, expected, hints, "what the learner does (checked by running it on fresh data)")


# ---- 04.2: a CancelEpochException in after_step ----

def epoch_cancel_run(seed=0):
    "The scenario of 04.2 on fresh data: the events it fires."
    from exp.nb_04 import Callback, CancelEpochException, Learner

    class OneStepEpochs(Callback):
        def after_step(self):
            if self.learn.iter == 0: raise CancelEpochException()

    torch.manual_seed(seed)
    spy = spy_class()()
    Learner(nn.Linear(4, 2), tiny_dls(seed, 6, 4, 3, classes=2), cbs=[OneStepEpochs(), spy]).fit(2)
    return spy


EPOCH_KEYS = ('events of the first epoch, in order', "times 'after_batch' fires in the fit",
              "times 'before_validate' fires in the fit", 'optimizer steps in the fit',
              'batches whose gradients the second step uses')


@exercise('04.2', 'predict: an epoch cancelled after its first step', kind='predict')
@own_rng
def check_epoch_cancel(answer):
    spy = epoch_cancel_run(seed=42)
    names = spy.names()
    truth = {EPOCH_KEYS[0]: events_between(names, 'before_epoch', 'after_epoch'),
             EPOCH_KEYS[1]: spy.count('after_batch'),
             EPOCH_KEYS[2]: spy.count('before_validate'),
             EPOCH_KEYS[3]: spy.count('after_step'),
             EPOCH_KEYS[4]: 2}   # zero_grad is skipped with the rest of the batch: tests/test_exercises_0405.py shows it
    expected = {k: (lambda v, k=k: as_events(v) == truth[k] if k == EPOCH_KEYS[0] else same_answer(v, truth[k])) for k in truth}
    trace = as_events(answer.get(EPOCH_KEYS[0])) if isinstance(answer, dict) else None
    if trace is None: trace_hint = "write the events as a list of names, from 'before_epoch' to 'after_epoch'"
    elif 'after_batch' in trace:
        trace_hint = "a CancelEpochException is not the batch stage's exception: it passes through that stage without its after_batch"
    elif {'after_train', 'before_validate', 'after_validate'} & set(trace):
        trace_hint = "the exception leaves the training pass at once: the rest of the epoch, validation included, is skipped"
    elif 'after_cancel_epoch' not in trace: trace_hint = "the epoch stage catches it: its cancel event, then its after_ event"
    else: trace_hint = "one batch runs as far as after_step; then which stage catches the exception, and what does that stage call?"
    hints = {EPOCH_KEYS[0]: trace_hint,
             EPOCH_KEYS[1]: "only the stage that catches an exception calls its after_ event: which stage catches CancelEpochException?",
             EPOCH_KEYS[2]: "the table above: what does a cancelled epoch skip?",
             EPOCH_KEYS[3]: "the callback raises after the step of each epoch's first batch",
             EPOCH_KEYS[4]: "read _do_batch: what comes after after_step, and does it run when after_step raises?"}
    return check_predictions(answer, expected, hints, "what the learner does (checked by running it on fresh data)")


# ---- 04.3: a shorter training pass that keeps validation whole ----

SHORT_CASES = ((2, 0), (1, 1), (5, 2), (8, 3), (3, 4))   # (n_batches, seed); 5 training batches an epoch, 3 validation batches


@exercise('04.3', 'ShortEpochsCB: train on the first n batches of each epoch, validate on all')
@own_rng
def check_short_epochs(ShortEpochsCB):
    if not defines_events(ShortEpochsCB): raise NotAttempted()
    Learner = learner_for(ShortEpochsCB)
    Spy = spy_class()
    n_epochs, n_train_batches, n_valid_batches = 2, 5, 3
    for n, seed in SHORT_CASES:
        torch.manual_seed(seed)
        dls, spy = tiny_dls(100 + seed, 15, 15, 3), Spy()
        Learner(nn.Linear(4, 3), dls, cbs=[instance(ShortEpochsCB, n), spy]).fit(n_epochs)
        want = min(n, n_train_batches)
        shown = f"ShortEpochsCB({n}), {n_train_batches} training and {n_valid_batches} validation batches an epoch, fit({n_epochs})"
        if spy.count('after_cancel_fit'):
            raise Wrong(f"{shown}: the fit was cancelled", "CancelFitException ends all of training; only the rest of each pass is to go")
        if spy.count('before_validate') < n_epochs:
            raise Wrong(f"{shown}: the validation pass ran {spy.count('before_validate')} times; expected once an epoch",
                        "CancelEpochException skips the rest of the epoch, validation included (see the table): stop the training pass some other way")
        valid = [spy.count('after_loss', training=False, epoch=e) for e in range(n_epochs)]
        if valid != [n_valid_batches] * n_epochs:
            raise Wrong(f"{shown}: validation batches with a loss, per epoch: {valid}; expected all {n_valid_batches} each time",
                        "your callback also cuts the validation pass: act only while self.learn.training")
        steps = [spy.count('after_step', epoch=e) for e in range(n_epochs)]
        if steps != [want] * n_epochs:
            if steps[0] == want and steps[1] != want:
                hint = "learn.train_iter counts the batches of the whole fit; learn.iter starts again at 0 each epoch"
            elif all(abs(s - want) == 1 for s in steps):
                hint = "learn.iter counts from 0: the first n batches are 0 to n - 1"
            else: hint = "count the batches of each epoch with learn.iter"
            raise Wrong(f"{shown}: optimizer steps per epoch {steps}; expected {want} each", hint)
        stepped = sorted({it for e, t, it, _ in spy.events if e == 'after_step'})
        if stepped != list(range(want)):
            raise Wrong(f"{shown}: the steps were on batches {stepped} of an epoch; expected the first {want}",
                        "train on the first n batches, 0 to n - 1, and skip the rest")
        backward = [spy.count('after_backward', epoch=e) for e in range(n_epochs)]
        if backward != steps:
            raise Wrong(f"{shown}: {backward} backward passes per epoch for {steps} steps",
                        "a batch cancelled after its backward pass leaves its gradient behind (zero_grad is skipped too), "
                        "and the next step adds it in: cancel before the forward pass")
        forward = [spy.count('after_predict', training=True, epoch=e) for e in range(n_epochs)]
        if forward != steps:
            raise Wrong(f"{shown}: the model ran on {forward} training batches per epoch to train on {steps}",
                        "cancel a skipped batch before its forward pass, or shorten the loader itself: "
                        "a skipped batch should cost nothing")
    return (f"right on {len(SHORT_CASES)} fresh problems, n from 1 to more than the batches there are: the training pass stops "
            "early and validation stays whole. (Schedules of notebook 05 read learn.n_train_iters, which still counts every batch.)")


# ---- 04.4: gradient accumulation ----

ACCUM_CASES = ((3, 2, 0), (2, 3, 1), (4, 1, 2), (2, 2, 3))   # (bs, n, seed); 12 training items: the batches divide evenly
ACCUM_LR, ACCUM_EPOCHS = 0.3, 2


def simulate(model, dls, n, lr, epochs, step_at, scale):
    "Plain SGD over `dls.train` in order, stepping after batch t when step_at(t), with the summed gradients times `scale`."
    model = copy.deepcopy(model)
    t = 0
    for _ in range(epochs):
        for xb, yb in dls.train:
            F.cross_entropy(model(xb), yb).backward()
            if step_at(t, n):
                with torch.no_grad():
                    for p in model.parameters(): p -= lr * scale * p.grad
                model.zero_grad()
            t += 1
    return [p.detach() for p in model.parameters()]


def losses_class():
    "A callback that keeps, per training batch, (the loss the learner reports, the batch's own loss), as MetricsCB would read it."
    from exp.nb_04 import Callback

    class Losses(Callback):
        order = 1000
        def __init__(self): self.pairs = []
        def after_batch(self):
            learn = self.learn
            if learn.training and learn.loss is not None:
                self.pairs.append((learn.loss.item(), F.cross_entropy(learn.preds, learn.batch[1]).item()))
    return Losses


@exercise('04.4', 'GradAccumCB: one step every n batches, as one batch n times bigger')
@own_rng
def check_grad_accum(GradAccumCB):
    if not defines_events(GradAccumCB): raise NotAttempted()
    Learner = learner_for(GradAccumCB)
    Spy, LossesCB = spy_class(), losses_class()
    for bs, n, seed in ACCUM_CASES:
        torch.manual_seed(seed)
        dls, spy = tiny_dls(200 + seed, 12, 6, bs, shuffle=False, dtype=torch.float64), Spy()
        model = nn.Linear(4, 3).double()
        start = copy.deepcopy(model)
        losses = LossesCB()
        Learner(model, dls, lr=ACCUM_LR, cbs=[instance(GradAccumCB, n), spy, losses]).fit(ACCUM_EPOCHS)
        batches = ACCUM_EPOCHS * len(dls.train)
        shown = f"GradAccumCB({n}) on batches of {bs}, {len(dls.train)} an epoch, fit({ACCUM_EPOCHS})"
        if spy.count('after_backward') < batches:
            raise Wrong(f"{shown}: {spy.count('after_backward')} backward passes for {batches} training batches",
                        "every batch must be backpropagated for its gradient to add up: cancel after the backward pass, not before it")
        if spy.count('after_step') != batches // n:
            raise Wrong(f"{shown}: {spy.count('after_step')} optimizer steps; expected one every {n} batches, {batches // n}",
                        "skip the step (and with it zero_grad) on every batch but the n-th, by raising the batch's cancel exception")
        got = [p.detach() for p in model.parameters()]
        same = lambda ws: all(torch.allclose(a, b, rtol=1e-9, atol=1e-12) for a, b in zip(got, ws))
        right = lambda t, n: (t + 1) % n == 0
        if not same(simulate(start, dls, n, ACCUM_LR, ACCUM_EPOCHS, right, 1 / n)):
            if n > 1 and same(simulate(start, dls, n, ACCUM_LR, ACCUM_EPOCHS, right, 1.)):
                raise Wrong(f"{shown}: the final weights are those of steps with {n} times the mean gradient",
                            f"the {n} gradients add up; a batch {n} times bigger averages them (each loss is already a mean over its batch)")
            early = lambda t, n: t % n == 0
            if n > 1 and any(same(simulate(start, dls, n, ACCUM_LR, ACCUM_EPOCHS, early, s)) for s in (1 / n, 1.)):
                raise Wrong(f"{shown}: the steps came after batches 0, n, 2n, ..., the first with one batch's gradient alone",
                            "the first step comes after n batches, not after the first one (learn.iter counts from 0)")
            raise Wrong(f"{shown}: the final weights are not those of plain SGD on batches of {bs * n}",
                        "keep every batch's gradient (no step, no zero_grad) until the n-th, then step once with their mean")
        scaled = [(got_loss, own) for got_loss, own in losses.pairs if abs(got_loss - own) > 1e-9 * max(1., abs(own))]
        if scaled:
            raise Wrong(f"{shown}: a batch reported the loss {scaled[0][0]:.4f}; its own loss is {scaled[0][1]:.4f}",
                        "MetricsCB and Recorder read learn.loss: leave it as it is and scale the gradients instead (in after_backward)")
    return (f"the same weights as plain SGD on batches n times bigger, on {len(ACCUM_CASES)} fresh problems (n = 1, 2, 3): "
            "a big batch's gradient at the memory of a small one. (With BatchNorm the two would differ: it normalises each small batch.)")
