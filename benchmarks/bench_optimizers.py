#!/usr/bin/env python
"""Time one `step()` of each from-scratch optimiser (notebook 08) against its torch.optim twin.

    .venv/bin/python benchmarks/bench_optimizers.py [--rounds 7] [--number 20]

Both optimisers of a pair step the same model (two identical copies) with the same fixed
gradients, taking turns in `rounds` rounds of `number` steps each (nb_00's `time_rounds`).
Neither may change the gradients (torch.optim does not), so every step of both sees the same ones; after
the timing the two copies must still agree, which checks that both did the same work.
Prints a markdown table: median microseconds per step and the median over rounds of the ratio
ours / torch.optim.
"""
import copy, statistics, sys
from functools import partial
from pathlib import Path

import fire
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from exp.nb_00 import THREADS, median_ratio, set_seed, time_rounds   # nb_00 first: it sets the threads
import torch
from exp.nb_04 import get_mlp
from exp.nb_08 import adam, adamw, sgd, sgd_momentum
from exp.nb_09 import get_resnet


def models():
    "The MLP of notebook 04 (few, large tensors) and the ResNet of notebook 09 (many small ones)."
    set_seed()
    return {'MLP 784-100-50-10': get_mlp(), 'ResNet 16-32-64-128': get_resnet()}


PAIRS = [
    ('SGD',                  partial(sgd, lr=0.1),                            partial(torch.optim.SGD, lr=0.1)),
    ('SGD momentum + L2 wd', partial(sgd_momentum, lr=0.1, mom=0.9, wd=1e-4), partial(torch.optim.SGD, lr=0.1, momentum=0.9, weight_decay=1e-4)),
    ('Adam',                 partial(adam, lr=1e-3),                          partial(torch.optim.Adam, lr=1e-3)),
    ('AdamW',                partial(adamw, lr=1e-3, wd=1e-2),                partial(torch.optim.AdamW, lr=1e-3, weight_decay=1e-2)),
]


def stepper(model, opt_func):
    "(`opt.step`, the copy it steps) for a fresh copy of `model`, whose gradients are fixed random tensors."
    model = copy.deepcopy(model)
    g = torch.Generator().manual_seed(1)
    for p in model.parameters(): p.grad = torch.randn(p.shape, generator=g) * 1e-3
    return opt_func(model.parameters()).step, model


def check_same_work(name, ours, theirs, rtol=1e-4, atol=1e-6):
    "After the same number of steps on the same gradients, the two copies' parameters and gradients must agree."
    for (pname, p1), p2 in zip(ours.named_parameters(), theirs.parameters()):
        if not torch.equal(p1.grad, p2.grad): raise AssertionError(f"{name}: {pname}.grad was changed by a step")
        if not torch.allclose(p1, p2, rtol, atol):
            raise AssertionError(f"{name}: {pname} differs from torch.optim's by {(p1 - p2).abs().max().item():.2e}")


def main(rounds=7, number=20):
    print(f"torch {torch.__version__}, {THREADS} thread(s), {rounds} rounds of {number} steps\n")
    print('| model | tensors | parameters | optimiser | ours (µs/step) | torch.optim (µs/step) | ours / torch |')
    print('|---|---|---|---|---|---|---|')
    for mname, model in models().items():
        n_tensors, n_params = len(list(model.parameters())), sum(p.numel() for p in model.parameters())
        for name, ours, theirs in PAIRS:
            (step_ours, m_ours), (step_torch, m_torch) = stepper(model, ours), stepper(model, theirs)
            times = time_rounds({'ours': step_ours, 'torch': step_torch},
                                rounds=rounds, number=number, warmup=3)   # warm-up creates the optimiser state
            check_same_work(f'{mname}, {name}', m_ours, m_torch)
            t_ours, t_torch = statistics.median(times['ours']), statistics.median(times['torch'])
            print(f'| {mname} | {n_tensors} | {n_params:,} | {name} | {t_ours * 1e6:,.0f} | {t_torch * 1e6:,.0f} | '
                  f'{median_ratio(times, "ours", "torch"):.2f} |', flush=True)


if __name__ == '__main__': fire.Fire(main)
