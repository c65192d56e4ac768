"""The exercises of 04_callbacks and 05_anneal: each usual mistake fails with its hint, hard-coded answers fail on fresh
inputs, and the claims the checks rest on hold (test_exercises.py covers the layout, the reference solutions and the
untouched starters)."""
import copy

import pytest, torch
import torch.nn.functional as F
from torch import nn

from conftest import correct
from exercises import run_check
from exercises.nb_04 import tiny_dls
from test_exercises import SOLUTIONS, failing, mutated, solved




# ---- 04.1, 04.2: predicting the events ----

def test_04_1_wrong_predictions_fail_with_the_hint_for_that_mistake():
    right = solved('04_callbacks', '04.1')['batch_cancel']
    correct(run_check('04.1', right))
    key = 'events of one training batch, in order'
    r = failing(run_check('04.1', right | {key: ['before_batch', 'after_predict', 'after_loss', 'after_backward',
                                                 'after_cancel_batch', 'after_batch']}), 'not even the backward pass')
    assert str(right[key]) not in r.message + r.hint   # the answer is not given away
    failing(run_check('04.1', right | {key: ['before_batch', 'after_predict', 'after_loss', 'after_cancel_batch']}),
            'still calls its after_')
    failing(run_check('04.1', right | {"times 'after_batch' fires in the fit": 2}), 'validation pass')
    failing(run_check('04.1', right | {'the fit changes the weights': True}), 'changes the weights')
    failing(run_check('04.1', right | {'the validation pass runs': 1}))     # a yes/no is a bool
    failing(run_check('04.1', right | {'the validation pass runs': ...}), 'still to answer')


def test_04_2_wrong_predictions_fail_with_the_hint_for_that_mistake():
    right = solved('04_callbacks', '04.2')['epoch_cancel']
    correct(run_check('04.2', right))
    key = 'events of the first epoch, in order'
    with_after_batch = right[key][:7] + ['after_batch'] + right[key][7:]
    failing(run_check('04.2', right | {key: with_after_batch}), 'passes through that stage')
    failing(run_check('04.2', right | {key: right[key][:7] + ['after_train', 'after_cancel_epoch', 'after_epoch']}),
            'validation included')
    failing(run_check('04.2', right | {'batches whose gradients the second step uses': 1}), '_do_batch')
    failing(run_check('04.2', right | {"times 'before_validate' fires in the fit": 2}), 'cancelled epoch skip')


def test_04_2_the_second_step_adds_the_first_epochs_gradient():
    "The claim of 04.2's last answer: zero_grad is skipped with the rest of the batch, so the next step uses two gradients."
    from exp.nb_04 import Callback, CancelEpochException, Learner
    dls = tiny_dls(7, 6, 4, 3, shuffle=False, classes=2)
    model = nn.Linear(4, 2)
    start = copy.deepcopy(model)

    class OneStepEpochs(Callback):
        def after_step(self):
            if self.learn.iter == 0: raise CancelEpochException()

    class GradsAtStep(Callback):
        order = -1
        def __init__(self): self.grads = []
        def after_step(self): self.grads.append([p.grad.clone() for p in self.learn.model.parameters()])

    spy = GradsAtStep()
    Learner(model, dls, lr=0.1, cbs=[OneStepEpochs(), spy]).fit(2)
    xb, yb = next(iter(dls.train))                          # no shuffling: both epochs step on this batch
    first = torch.autograd.grad(F.cross_entropy(start(xb), yb), list(start.parameters()))
    with torch.no_grad():
        for p, g in zip(start.parameters(), first): p -= 0.1 * g
    own = torch.autograd.grad(F.cross_entropy(start(xb), yb), list(start.parameters()))
    for used, a, b in zip(spy.grads[1], first, own):
        assert torch.allclose(used, a + b) and not torch.allclose(used, b)


# ---- 04.3: ShortEpochsCB ----

@pytest.mark.parametrize('old, new, hint', [
    ('raise CancelBatchException()', 'raise CancelEpochException()', 'validation included'),
    ('self.learn.training and ', '', 'self.learn.training'),
    ('self.learn.iter >=', 'self.learn.train_iter >=', 'train_iter counts'),
    ('>= self.n_batches', '> self.n_batches', 'counts from 0'),
    ('def before_batch', 'def after_backward', 'gradient behind'),
    ('def before_batch', 'def after_predict', 'before its forward pass'),
    ('raise CancelBatchException()', 'raise CancelFitException()', 'all of training'),
])
def test_04_3_each_usual_mistake_fails_with_its_hint(old, new, hint):
    failing(run_check('04.3', mutated('04_callbacks', '04.3', 'ShortEpochsCB', old, new)), hint)


def test_04_3_a_hard_coded_n_fails_and_a_shortened_loader_passes():
    failing(run_check('04.3', mutated('04_callbacks', '04.3', 'ShortEpochsCB', '>= self.n_batches', '>= 2')))
    from exp.nb_04 import Callback

    class ShortLoader(Callback):   # the other way: cut the training loader itself, as ProgressCB wraps it
        def __init__(self, n_batches): self.n_batches = n_batches
        def before_train(self): self.learn.dl = [b for _, b in zip(range(self.n_batches), self.learn.dl)]
    correct(run_check('04.3', ShortLoader))

    class Untouched(Callback):
        def __init__(self, n_batches): self.n_batches = n_batches
    assert run_check('04.3', Untouched).state == 'not attempted'


# ---- 04.4: GradAccumCB ----

@pytest.mark.parametrize('old, new, hint', [
    ('p.grad /= self.n', 'pass', 'averages them'),
    ('(self.learn.iter + 1) % self.n', 'self.learn.iter % self.n', 'after n batches'),
    ('def after_backward', 'def after_loss', 'not before it'),
    ('raise CancelBatchException()', 'pass', 'on every batch but the n-th'),
])
def test_04_4_each_usual_mistake_fails_with_its_hint(old, new, hint):
    failing(run_check('04.4', mutated('04_callbacks', '04.4', 'GradAccumCB', old, new)), hint)


def test_04_4_a_scaled_loss_and_a_hard_coded_n_fail():
    from exp.nb_04 import Callback, CancelBatchException

    class ScalesTheLoss(Callback):   # right weights, but MetricsCB would report a loss n times too small
        def __init__(self, n): self.n = n
        def after_loss(self):
            if self.learn.training: self.learn.loss = self.learn.loss / self.n
        def after_backward(self):
            if (self.learn.iter + 1) % self.n: raise CancelBatchException()
    failing(run_check('04.4', ScalesTheLoss), 'learn.loss')
    failing(run_check('04.4', mutated('04_callbacks', '04.4', 'GradAccumCB', '% self.n', '% 2')))


# ---- 05.1: one-cycle by hand ----

def test_05_1_wrong_predictions_fail_with_the_hint_for_that_mistake():
    right = solved('05_anneal', '05.1')['one_cycle_by_hand']
    correct(run_check('05.1', right))
    correct(run_check('05.1', right | {'lr at p = 0.15': 0.0515}))   # rounded within 2%
    failing(run_check('05.1', right | {'p of the last training batch (8 batches an epoch, 3 epochs)': 1}), 'no batch has p = 1')
    failing(run_check('05.1', right | {'lr at p = 0.65': 0.0273}), 'its own progress')            # the cosine over all of p
    failing(run_check('05.1', right | {'lr at p = 1': 0}), 'not to 0')
    failing(run_check('05.1', right | {'lr at p = 0': 0}), 'lr_max / div')
    failing(run_check('05.1', right | {'LR finder: lr when learn.train_iter is 100 (defaults: 1e-6 to 10 over 200 batches)':
                                       1e-6 * 1e7 ** (99 / 200)}), 'exponential')
    failing(run_check('05.1', right | {'momentum at p = 0.3': 0.95}), 'against the learning rate')


# ---- 05.2: sched_warmup_cos ----

def test_05_2_each_usual_mistake_fails_with_its_hint():
    import math
    ns = solved('05_anneal', '05.2')
    correct(run_check('05.2', ns['sched_warmup_cos']))

    def global_p(lr_max, pct, lr_end):
        return lambda p: lr_max * p / pct if p < pct else lr_end + (lr_max - lr_end) * (1 + math.cos(math.pi * p)) / 2
    failing(run_check('05.2', global_p), 'its own progress')
    one_cycle_start = mutated('05_anneal', '05.2', 'sched_warmup_cos', 'sched_lin(0., lr_max)', 'sched_lin(lr_max / 25, lr_max)')
    failing(run_check('05.2', one_cycle_start), 'starts from 0')
    cos_warmup = mutated('05_anneal', '05.2', 'sched_warmup_cos', 'sched_lin(0., lr_max)', 'sched_cos(0., lr_max)')
    failing(run_check('05.2', cos_warmup), 'linear')
    rising = mutated('05_anneal', '05.2', 'sched_warmup_cos', 'sched_cos(lr_max, lr_end)', 'sched_cos(lr_end, lr_max)')
    failing(run_check('05.2', rising))

    def by_hand(lr_max, pct, lr_end):   # right, except for pct_warmup = 0
        return lambda p: lr_max * p / pct if p <= pct else lr_end + (lr_max - lr_end) * (1 + math.cos(math.pi * (p - pct) / (1 - pct))) / 2
    failing(run_check('05.2', by_hand), 'no warm-up')
    fixed = ns['sched_warmup_cos'](0.01, 0.1, 1e-5)
    failing(run_check('05.2', lambda lr_max, pct, lr_end: fixed))   # one schedule for every setting


# ---- 05.3: ReduceLROnPlateauCB ----

@pytest.mark.parametrize('old, new, hint', [
    ('order = MetricsCB.order + 5', 'order = 0', 'higher order'),
    ("group['lr'] /= self.factor\n            self.wait = 0", "group['lr'] /= self.factor", 'count the patience again'),
    ("group['lr'] /= self.factor", "group['lr'] *= self.factor", 'only go down'),
    ('self.wait >= self.patience', 'self.wait > self.patience', 'off by one'),
    ('in self.learn.opt.param_groups:', 'in self.learn.opt.param_groups[:1]:', 'every group'),
    ("for group in self.learn.opt.param_groups: group['lr'] /= self.factor", 'self.learn.lr /= self.factor', 'param_groups'),
    ('latest(self.monitor)', "latest('valid_loss')", 'self.monitor'),
    ('value = self.learn.metrics.latest(self.monitor)',                  # compared with the last epoch's value
     'value = self.learn.metrics.latest(self.monitor); self.best, self.last = getattr(self, "last", math.inf), value',
     'best value so far'),
])
def test_05_3_each_usual_mistake_fails_with_its_hint(old, new, hint):
    failing(run_check('05.3', mutated('05_anneal', '05.3', 'ReduceLROnPlateauCB', old, new)), hint)


# ---- 05.4: the challenge ----

def test_05_4_refuses_over_budget_and_reports_numbers_and_a_fast_correct_case():
    from exp.nb_04 import DataLoaders, Dataset, DataLoader, Learner, get_mlp
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 784, generator=g)
    dls = DataLoaders(DataLoader(Dataset(x, x[:, :10].argmax(1)), 64), DataLoader(Dataset(x, x[:, :10].argmax(1)), 64))
    failing(run_check('05.4', Learner(get_mlp((784, 200, 10)), dls), dls), 'over the budget')
    over = Learner(get_mlp(), dls)
    over.n_epochs = 6
    failing(run_check('05.4', over, dls), 'over the budget of 3')
    r = failing(run_check('05.4', Learner(get_mlp(), dls), dls), '0.8672')
    assert r.number is None
    failing(run_check('05.4', [1, 2], dls), 'trained Learner')
    reads_the_first_ten = nn.Linear(784, 10)                 # a model that is right by construction on this data
    with torch.no_grad():
        reads_the_first_ten.weight.zero_(); reads_the_first_ten.bias.zero_()
        reads_the_first_ten.weight[:, :10] = torch.eye(10)
    r = correct(run_check('05.4', reads_the_first_ten, dls))
    assert (r.number, r.reference) == (1.0, 0.8672) and '3 epochs' in r.budget


def test_04_callbacks_written_in_the_notebook_run_in_the_notebooks_own_learner():
    "Notebook 04 defines its own Learner and cancel exceptions; the checks must use them, not exp.nb_04's (which would not catch them)."
    import nbformat
    from conftest import ROOT
    import exp.nb_04
    nb = nbformat.read(ROOT / 'nbs/04_callbacks.ipynb', as_version=4)
    ns = solved('04_callbacks')
    for marker in ('class CancelFitException', 'class Learner:'):
        exec(next(c.source for c in nb.cells if c.cell_type == 'code' and marker in c.source), ns)
    assert ns['CancelBatchException'] is not exp.nb_04.CancelBatchException
    for id, name in (('04.3', 'ShortEpochsCB'), ('04.4', 'GradAccumCB')):
        exec(SOLUTIONS['04_callbacks'][id], ns)
        correct(run_check(id, ns[name]))


def test_the_checks_leave_the_notebooks_random_state_alone():
    "The checks seed their own runs; the notebook's next random numbers must be the ones it would have drawn anyway."
    ns = solved('04_callbacks', '04.3') | solved('05_anneal', '05.3')
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    correct(run_check('04.3', ns['ShortEpochsCB']))
    correct(run_check('05.3', ns['ReduceLROnPlateauCB']))
    assert torch.equal(torch.rand(3), expected)


def test_a_starter_with_events_written_but_its_raise_left_in_says_so():
    "The class starters raise NotImplementedError in __init__ (untouched: 'not attempted'); with events written, the check names the line."
    for id, stem, name in (('04.3', '04_callbacks', 'ShortEpochsCB'), ('04.4', '04_callbacks', 'GradAccumCB'),
                           ('05.3', '05_anneal', 'ReduceLROnPlateauCB')):
        cls = solved(stem, id)[name]
        init = cls.__init__
        def still_raising(self, *args, init=init, **kwargs):
            init(self, *args, **kwargs)
            raise NotImplementedError
        left_in = type(name, (cls,), {'__init__': still_raising})
        failing(run_check(id, left_in), 'delete the starter')
        untouched = type(name, (cls.__mro__[1],), {'__init__': still_raising})   # no event methods: the starter as given
        assert run_check(id, untouched).state == 'not attempted'
