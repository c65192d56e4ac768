"""Checks for the exercises of 05_anneal: one-cycle and the positions a scheduler sees, by hand (05.1), a warm-up-then-
cosine schedule (05.2), a callback that cuts the learning rate on a plateau (05.3), and a training challenge (05.4)."""
import math, random

import torch
from torch import nn

from exercises import NotAttempted, Wrong, check_predictions, exercise
from exercises.nb_04 import defines_events, instance, learner_for, own_rng, tiny_dls

# ---- 05.1: one-cycle and the positions the callbacks see ----

ONE_CYCLE_KEYS = ('lr at p = 0', 'lr at p = 0.15', 'lr at p = 0.3', 'lr at p = 0.65', 'lr at p = 1', 'momentum at p = 0.3',
                  'p of the last training batch (8 batches an epoch, 3 epochs)',
                  'LR finder: lr when learn.train_iter is 100 (defaults: 1e-6 to 10 over 200 batches)')


def close_to(value, truth, rel=0.02):
    "A number within 2% of the truth (so 0.05 is right for 0.050005): rounded answers count."
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isclose(value, truth, rel_tol=rel)


@exercise('05.1', 'predict: one-cycle by hand', kind='predict')
def check_one_cycle(answer):
    from exp.nb_05 import LRFinderCB, _exp, one_cycle
    lr, mom = (scheduler.sched_func for scheduler in one_cycle(0.1))
    finder = LRFinderCB()
    truth = dict(zip(ONE_CYCLE_KEYS, (lr(0.), lr(0.15), lr(0.3), lr(0.65), lr(1.), mom(0.3),
                                      (8 * 3 - 1) / (8 * 3),   # ParamScheduler's p = train_iter / n_train_iters
                                      _exp(finder.start_lr, finder.end_lr, 100 / finder.n_iters))))
    expected = {k: (lambda v, t=t: close_to(v, t)) for k, t in truth.items()}
    given = answer if isinstance(answer, dict) else {}
    last = given.get(ONE_CYCLE_KEYS[6])
    hints = {ONE_CYCLE_KEYS[0]: "the warm-up starts at lr_max / div" if given.get(ONE_CYCLE_KEYS[0]) == 0
             else "the first cosine runs from lr_max / div to lr_max",
             ONE_CYCLE_KEYS[1]: "0.15 is halfway through the warm-up, and halfway along, a cosine schedule is halfway between its ends",
             ONE_CYCLE_KEYS[2]: "pct_start is where the two phases meet",
             ONE_CYCLE_KEYS[3]: "each phase sees its own progress from 0 to 1: how far into the second phase, from 0.3 to 1, is 0.65?",
             ONE_CYCLE_KEYS[4]: "it anneals to lr_max / div_final, not to 0" if given.get(ONE_CYCLE_KEYS[4]) == 0
             else "the second cosine ends at lr_max / div_final",
             ONE_CYCLE_KEYS[5]: "momentum moves against the learning rate: lowest where the learning rate peaks",
             ONE_CYCLE_KEYS[6]: "p is computed before each batch from the batches already done, so the first batch has p = 0 and no batch has p = 1"
             if close_to(last, 1.) else "p = learn.train_iter / learn.n_train_iters, and train_iter counts from 0",
             ONE_CYCLE_KEYS[7]: "the finder raises the lr exponentially in p = train_iter / n_iters: equal steps in p multiply it by equal factors"}
    return check_predictions(answer, expected, hints, "within 2% of what the schedule gives")


# ---- 05.2: linear warm-up, then cosine ----

def warmup_cos(lr_max, pct_warmup, lr_end, p):
    "The reference: linear 0 -> lr_max on [0, pct_warmup), cosine lr_max -> lr_end on [pct_warmup, 1]."
    if p < pct_warmup: return lr_max * p / pct_warmup
    q = (p - pct_warmup) / (1 - pct_warmup)
    return lr_end + (lr_max - lr_end) * (1 + math.cos(math.pi * q)) / 2


def warmup_settings(seed):
    "A fresh (lr_max, pct_warmup, lr_end); the first cases are the edges: no warm-up, and a long one."
    rng = random.Random(seed)
    lr_max = round(10 ** rng.uniform(-4, 0), 6)
    pct = {0: 0., 1: 0.5}.get(seed, round(rng.uniform(0.02, 0.4), 3))
    return lr_max, pct, round(lr_max * 10 ** rng.uniform(-4, -1), 9)


def positions(pct, rng):
    "The ends, the join and just before it, the middle of each phase, and random points."
    ps = {0., 1., pct, 0.5 * pct, pct + 0.5 * (1 - pct), max(pct - 1e-9, 0.)} | {rng.random() for _ in range(40)}
    return sorted(ps)


@exercise('05.2', 'sched_warmup_cos: linear warm-up, then cosine')
def check_warmup_cos(sched_warmup_cos):
    for case in range(8):
        lr_max, pct, lr_end = warmup_settings(case)
        shown = f"sched_warmup_cos({lr_max}, {pct}, {lr_end})"
        try: f = sched_warmup_cos(lr_max, pct, lr_end)
        except ZeroDivisionError:
            raise Wrong(f"{shown} raised ZeroDivisionError", "pct_warmup = 0 means no warm-up: the cosine then covers all of training") from None
        if f is Ellipsis or f is None: raise NotAttempted()
        if not callable(f): raise Wrong(f"{shown} returned a {type(f).__name__}; expected a function of p, as sched_cos(...) returns")
        for p in positions(pct, random.Random(case)):
            try: got = f(p)
            except ZeroDivisionError:
                raise Wrong(f"{shown} at p = {p:.4g} raised ZeroDivisionError",
                            "pct_warmup = 0 means no warm-up: the cosine then covers all of training") from None
            want = warmup_cos(lr_max, pct, lr_end, p)
            try: got = float(got)
            except (TypeError, ValueError): raise Wrong(f"{shown} at p = {p:.4g} gave a {type(got).__name__}; expected a number") from None
            if math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-12): continue
            where = f"{shown} at p = {p:.4g} ({'warm-up' if p < pct else 'cosine phase'}): {got:.6g}, expected {want:.6g}"
            if p < pct:
                if math.isclose(got, lr_max / 25 + (lr_max - lr_max / 25) * p / pct, rel_tol=1e-6) or math.isclose(f(0.), lr_max / 25, rel_tol=1e-6):
                    hint = "this warm-up starts from 0, not from lr_max / div as one-cycle's does"
                elif math.isclose(got, lr_max * (1 - math.cos(math.pi * p / pct)) / 2, rel_tol=1e-6):
                    hint = "the warm-up is linear, not a cosine"
                else: hint = "in the warm-up, the learning rate is lr_max times the fraction of the warm-up done"
            elif math.isclose(got, lr_end + (lr_max - lr_end) * (1 + math.cos(math.pi * p)) / 2, rel_tol=1e-6):
                hint = "each phase sees its own progress from 0 to 1: how far into the cosine phase, from pct_warmup to 1, is p?"
            elif math.isclose(got, lr_max + lr_end - want, rel_tol=1e-6, abs_tol=1e-12):
                hint = "the cosine phase falls, from lr_max at the join to lr_end at p = 1"
            else: hint = "after the warm-up: a cosine from lr_max at p = pct_warmup down to lr_end at p = 1 (sched_cos shows the shape)"
            raise Wrong(where, hint)
    return ("right at the ends, the join and 40 random positions, for 8 random settings, no warm-up included; "
            "ParamScheduler('lr', sched_warmup_cos(...)) puts it to work")


# ---- 05.3: reduce the learning rate on a plateau ----

PLATEAU_CASES = (  # (monitor, patience, factor, the monitored value after each epoch)
    ('valid_loss', 1, 10., [1.0, 0.8, 0.9, 0.85, 0.7, 0.75, 0.72, 0.71, 0.6]),
    ('valid_loss', 2, 2., [1.0, 1.1, 1.05, 1.2, 0.9, 0.95, 0.97, 0.99, 0.98, 0.5]),
)


def plateau_cases():
    "The two designed cases, then two fresh ones (a random walk, another monitor name)."
    cases = list(PLATEAU_CASES)
    for seed in (5, 6):
        rng = random.Random(seed)
        values = [1.0]
        for _ in range(rng.randint(8, 11)): values.append(round(values[-1] * rng.uniform(0.88, 1.1), 4))
        cases.append((['valid_loss', 'valid_error'][seed % 2], rng.randint(1, 3), rng.choice([2., 3., 10.]), values))
    return cases


def plateau_lrs(values, lr, patience, factor, compare_best=True, reset=True, patience_shift=0, lag=0):
    "The learning rate each epoch trains with, by the rule (and, with the keyword arguments, by its usual mistakes)."
    lrs, best, prev, wait = [], math.inf, math.inf, 0
    for e in range(len(values)):
        lrs.append(lr)
        if e - lag < 0: continue
        v = values[e - lag]
        if v < (best if compare_best else prev): best, wait = v, 0
        else:
            wait += 1
            if wait >= patience + patience_shift:
                lr /= factor
                if reset: wait = 0
        best, prev = min(best, v), v
    return lrs


def plateau_helpers(monitor, values):
    "A stand-in for MetricsCB that writes scripted rows (and notes a read of a row not written yet), and a recorder of the lrs."
    from exp.nb_05 import Callback, MetricsCB

    class ScriptedMetrics(Callback):
        order = MetricsCB.order
        def __init__(self): self._log, self.stale, self.phase = [], False, None
        def before_fit(self): self.learn.metrics, self._log = self, []
        def after_epoch(self):
            self._log.append({'epoch': self.learn.epoch, monitor: values[self.learn.epoch], 'time': '00:00'})
        def note(self):
            if self.phase == 'after_epoch' and len(self._log) <= self.learn.epoch: self.stale = True
        @property
        def log(self): self.note(); return self._log
        def latest(self, key): self.note(); return self._log[-1][key] if self._log else None

    class Lrs(Callback):
        order = -1000
        def __init__(self, metrics): self.metrics, self.per_epoch = metrics, []
        def before_epoch(self): self.metrics.phase = 'before_epoch'; self.per_epoch.append([])
        def after_epoch(self): self.metrics.phase = 'after_epoch'
        def after_step(self): self.per_epoch[-1].append([g['lr'] for g in self.learn.opt.param_groups])

    metrics = ScriptedMetrics()
    return metrics, Lrs(metrics)


def two_groups(params, lr):
    "SGD with one parameter group per tensor: a callback must change every group."
    return torch.optim.SGD([{'params': [p]} for p in params], lr=lr)


@exercise('05.3', 'ReduceLROnPlateauCB: divide the learning rate when the loss stalls')
@own_rng
def check_plateau(ReduceLROnPlateauCB):
    if not defines_events(ReduceLROnPlateauCB): raise NotAttempted()
    Learner = learner_for(ReduceLROnPlateauCB)
    lr = 0.1
    for case, (monitor, patience, factor, values) in enumerate(plateau_cases()):
        torch.manual_seed(case)
        metrics, rec = plateau_helpers(monitor, values)
        learn = Learner(nn.Linear(4, 3), tiny_dls(300 + case, 6, 4, 3), lr=lr, opt_func=two_groups)
        cb = instance(ReduceLROnPlateauCB, monitor=monitor, patience=patience, factor=factor)
        shown = (f"ReduceLROnPlateauCB(monitor={monitor!r}, patience={patience}, factor={factor:g}), lr {lr}, "
                 f"the {monitor} of each epoch {values}")
        try: learn.fit(len(values), cbs=[cb, metrics, rec])   # yours first: an equal order would run it before the metrics
        except Exception as e:
            if metrics.stale:
                raise Wrong(f"{shown}: your callback read the metrics of an epoch before they were written, and raised "
                            f"{type(e).__name__}", "it runs before MetricsCB: give it a higher order, as EarlyStoppingCB has") from None
            if isinstance(e, KeyError) and monitor not in str(e):
                raise Wrong(f"{shown}: KeyError {e}", "read the value named by self.monitor") from None
            raise
        if any(len(set(map(tuple, batches))) > 1 for batches in rec.per_epoch):
            raise Wrong(f"{shown}: the learning rate changed within an epoch", "change it once per epoch, after the epoch's metrics are in")
        got = [batches[0] for batches in rec.per_epoch]
        if any(len(set(groups)) > 1 for groups in got):
            raise Wrong(f"{shown}: the parameter groups ended with different learning rates {got[-1]}",
                        "change the lr of every group in learn.opt.param_groups, not only the first")
        got = [groups[0] for groups in got]
        want = plateau_lrs(values, lr, patience, factor)
        if all(math.isclose(g, w, rel_tol=1e-9) for g, w in zip(got, want)): continue
        rounded = [float(f'{g:.3g}') for g in got]
        where = f"{shown}: the epochs trained with lr {rounded}"
        same = lambda **kw: all(math.isclose(g, w, rel_tol=1e-9) for g, w in zip(got, plateau_lrs(values, lr, patience, factor, **kw)))
        if metrics.stale or same(lag=1):
            hint = "your callback runs before MetricsCB has written this epoch's row, and reads the last one: give it a higher order"
        elif len(set(got)) == 1 and getattr(learn, 'lr', lr) != lr:
            hint = "learn.lr is only read when fit builds the optimizer: change the optimizer's param_groups"
        elif len(set(got)) == 1: hint = "after each epoch, read the monitored value and, on a plateau, divide the lr of every param group"
        elif any(b > a for a, b in zip(got, got[1:])): hint = "divide the learning rate by factor: it should only go down"
        elif same(compare_best=False): hint = "compare with the best value so far, not with the last epoch's"
        elif same(reset=False): hint = "after a reduction, count the patience again from zero"
        elif same(patience_shift=1) or same(patience_shift=-1):
            hint = "off by one in the patience: with patience 1, the first epoch without improvement already reduces it"
        else: hint = "an epoch improves when its value is below the best so far; patience epochs in a row without it: divide, and count again"
        raise Wrong(where + f"; expected {[float(f'{w:.3g}') for w in want]}", hint)
    return (f"right on {len(plateau_cases())} scripted runs (two of them fresh, with patience 1 to 3), every parameter group "
            "included; torch.optim.lr_scheduler.ReduceLROnPlateau is the library's version")


# ---- 05.4: the challenge ----

CONSTANT_6_EPOCHS = 0.8672    # 04: validation accuracy after 6 epochs at a constant lr 0.02 (momentum 0.9)
ONE_CYCLE_6_EPOCHS = 0.8908   # 05: one-cycle with lr_max 0.1, 6 epochs
MLP_PARAMETERS = 89_610       # get_mlp(): 784-100-50-10
EPOCH_BUDGET = 3


@exercise('05.4', 'challenge: six constant-rate epochs in three', kind='challenge')
def check_three_epochs(learn, dls):
    from exp.nb_04 import eval_accuracy
    model = getattr(learn, 'model', learn)
    if not isinstance(model, nn.Module): raise Wrong(f"came back a {type(learn).__name__}; expected your trained Learner")
    count = sum(p.numel() for p in model.parameters())
    budget = f"the {MLP_PARAMETERS:,}-parameter MLP of get_mlp(), {EPOCH_BUDGET} epochs of the training images"
    if count > MLP_PARAMETERS:
        raise Wrong(f"{count:,} parameters, over the budget of {MLP_PARAMETERS:,}", "keep the MLP of get_mlp(): the schedule is the point")
    epochs = getattr(learn, 'n_epochs', None)
    if isinstance(epochs, int) and epochs > EPOCH_BUDGET:
        raise Wrong(f"your last fit ran {epochs} epochs, over the budget of {EPOCH_BUDGET}", "fit once, for 3 epochs, with your schedule")
    acc = eval_accuracy(model, dls.valid)
    if acc <= CONSTANT_6_EPOCHS:
        raise Wrong(f"validation accuracy {acc:.4f}; 04's constant rate reached {CONSTANT_6_EPOCHS} in 6 epochs",
                    "anneal: a schedule that ends near zero settles the weights; the LR finder says where lr_max can sit")
    return (f"validation accuracy {acc:.4f} in at most {EPOCH_BUDGET} epochs, beside {CONSTANT_6_EPOCHS} after 6 epochs at a "
            f"constant rate in 04 (one-cycle above: {ONE_CYCLE_6_EPOCHS} in 6)", acc, CONSTANT_6_EPOCHS, budget)
