#!/usr/bin/env python
"""Time one `step()` of each from-scratch optimiser (notebook 08) against its torch.optim twin.

    .venv/bin/python benchmarks/bench_optimizers.py [--repeat 7] [--number 20]

Both optimisers of a pair step the same model (two identical copies) with the same fixed
gradients, in the same run; each time is the median of `repeat` measurements of `number`
steps. Prints a markdown table: microseconds per step and the ratio ours / torch.optim.
"""
import os
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')   # as in the notebooks: robust on a shared CPU
import copy, sys
from functools import partial
from pathlib import Path

import fire
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from exp.nb_09 import *


def models():
    "The MLP of notebook 04 (few, large tensors) and the ResNet of notebook 09 (many small ones)."
    torch.manual_seed(0)
    return {'MLP 784-100-50-10': get_mlp(), 'ResNet 16-32-64-128': get_resnet()}


PAIRS = [
    ('SGD',                  partial(sgd, lr=0.1),                            partial(torch.optim.SGD, lr=0.1)),
    ('SGD momentum + L2 wd', partial(sgd_momentum, lr=0.1, mom=0.9, wd=1e-4), partial(torch.optim.SGD, lr=0.1, momentum=0.9, weight_decay=1e-4)),
    ('Adam',                 partial(adam, lr=1e-3),                          partial(torch.optim.Adam, lr=1e-3)),
    ('AdamW',                partial(adamw, lr=1e-3, wd=1e-2),                partial(torch.optim.AdamW, lr=1e-3, weight_decay=1e-2)),
]


def step_time(model, opt_func, repeat, number):
    "Median seconds per `opt.step()` on `model`, whose gradients are fixed random tensors."
    model = copy.deepcopy(model)
    g = torch.Generator().manual_seed(1)
    for p in model.parameters(): p.grad = torch.randn(p.shape, generator=g) * 1e-3
    opt = opt_func(model.parameters())
    for _ in range(3): opt.step()   # warm-up: creates the optimiser state
    return time_median(opt.step, repeat=repeat, number=number)


def main(repeat=7, number=20, threads=2):
    torch.set_num_threads(threads)
    print(f"torch {torch.__version__}, {threads} threads, median of {repeat} x {number} steps\n")
    print('| model | tensors | parameters | optimiser | ours (µs/step) | torch.optim (µs/step) | ours / torch |')
    print('|---|---|---|---|---|---|---|')
    for mname, model in models().items():
        n_tensors, n_params = len(list(model.parameters())), sum(p.numel() for p in model.parameters())
        for name, ours, theirs in PAIRS:
            t_ours = step_time(model, ours, repeat, number)
            t_torch = step_time(model, theirs, repeat, number)
            print(f'| {mname} | {n_tensors} | {n_params:,} | {name} | {t_ours * 1e6:,.0f} | {t_torch * 1e6:,.0f} | {t_ours / t_torch:.2f} |', flush=True)


if __name__ == '__main__': fire.Fire(main)
