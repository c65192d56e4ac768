# Reference solutions for the exercises of nbs/05_anneal.ipynb.
# Each `# %% exercise ID` section replaces that exercise's starter cell (`run_notebook.py --solutions`).
# Try the exercise first: the check under it tells you what is wrong without giving the answer away.

# %% exercise 05.1
one_cycle_by_hand = {
    'lr at p = 0': 0.004,           # lr_max / div = 0.1 / 25
    'lr at p = 0.15': 0.052,        # halfway through the warm-up: halfway from 0.004 to 0.1
    'lr at p = 0.3': 0.1,           # the top, where the phases meet
    'lr at p = 0.65': 0.05,         # halfway through the second phase: halfway from 0.1 to 1e-5
    'lr at p = 1': 1e-5,            # lr_max / div_final
    'momentum at p = 0.3': 0.85,    # lowest where the learning rate is highest
    'p of the last training batch (8 batches an epoch, 3 epochs)': 23 / 24,   # p = train_iter / n_train_iters, before the batch
    'LR finder: lr when learn.train_iter is 100 (defaults: 1e-6 to 10 over 200 batches)': 1e-6 * 1e7 ** 0.5,   # halfway in log space
}

# %% exercise 05.2
def sched_warmup_cos(lr_max, pct_warmup, lr_end):
    "A schedule, a function of p: linear from 0 to `lr_max` over the first `pct_warmup` of training, then a cosine down to `lr_end`."
    # combine_scheds gives each phase its own progress from 0 to 1, and copes with a phase of width 0 (no warm-up)
    return combine_scheds([pct_warmup, 1 - pct_warmup], [sched_lin(0., lr_max), sched_cos(lr_max, lr_end)])

# %% exercise 05.3
class ReduceLROnPlateauCB(Callback):
    "Divide the learning rate by `factor` when `monitor` has not improved for `patience` epochs in a row."
    order = MetricsCB.order + 5   # after MetricsCB has written this epoch's row, as EarlyStoppingCB

    def __init__(self, monitor='valid_loss', patience=1, factor=10.):
        self.monitor, self.patience, self.factor = monitor, patience, factor

    def before_fit(self): self.best, self.wait = math.inf, 0

    def after_epoch(self):
        value = self.learn.metrics.latest(self.monitor)
        if value < self.best:
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            # the optimizer was built from learn.lr when fit started: change its groups, every one of them
            for group in self.learn.opt.param_groups: group['lr'] /= self.factor
            self.wait = 0

# %% exercise 05.4
set_seed()
my_learn = Learner(get_mlp(), dls, lr=0.05, opt_func=partial(torch.optim.SGD, momentum=0.9),
                   cbs=[MetricsCB(accuracy=accuracy)])
# one-cycle with lr_max between the finder's suggestions and the point where the loss blows up; it anneals to
# almost nothing by the end, which is what the constant rate of 04 never did
my_learn.fit(pick(3, QUICK_EPOCHS), cbs=one_cycle(0.05))
