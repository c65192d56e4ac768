#!/usr/bin/env python
"""What do the language-model notebooks' training steps cost? Two comparisons, each in one run:

1. Notebook 14's hand-written backward pass against autograd: one SGD step of the MLP with
   BatchNorm (hidden 200, 12,297 parameters, batch 32), `manual_step` (fused cross-entropy and
   BatchNorm backward, scatter-add embedding, no autograd graph) against `autograd_step` (the same
   forward, `loss.backward()`). Goal: hand-written no slower (at most 1.0x).
2. Notebook 15's training through the course's `Learner` against the minimal hand-written loop
   `fit_by_hand`: the 76,579-parameter hierarchical model, AdamW with the notebook's batch size and
   learning rate, over the same batches. The Learner runs as the notebook runs it (`lm_learner`:
   cosine learning-rate schedule, plus a metrics callback that prints nothing). Goal: at most 1.05x.

Timing is nb_00's `time_rounds` (the variants take turns, round after round), with the wall clock
and with this process's CPU time (the steadier measure on a shared machine); ratios are the median
over rounds of variant / baseline in the same round (`median_ratio`).

    .venv/bin/python benchmarks/bench_makemore.py [--rounds 9] [--steps 500] [--batches 300] [--bs 32]
"""
import statistics, sys, time
from pathlib import Path

import fire
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from exp.nb_00 import THREADS, median_ratio, set_seed, time_rounds   # nb_00 first: it sets the threads
import torch
from exp.nb_04 import QuietMetricsCB
from exp.nb_14 import autograd_step, init_ninja_params, manual_step
from exp.nb_15 import BatchNorm1d, fit_by_hand, hierarchical_lm, lm_dls, lm_learner

CLOCKS = {'wall': time.perf_counter, 'cpu': time.process_time}
VOCAB, BLOCK_14, BLOCK_15 = 27, 3, 8


def measure(variants, baseline, rounds, number=1):
    "Per variant and clock: the median seconds per call and the median ratio to `baseline` over rounds."
    rows = {name: {} for name in variants}
    for kind, clock in CLOCKS.items():
        times = time_rounds(variants, rounds=rounds, number=number, clock=clock)
        for name in variants:
            rows[name][kind] = statistics.median(times[name])
            rows[name][f'{kind}_ratio'] = median_ratio(times, name, baseline)
    return rows


def table(title, rows, per, scale, unit):
    lines = [f'| {title} | wall per {per} | CPU per {per} | wall ratio | CPU ratio |', '|---|---|---|---|---|']
    for name, r in rows.items():
        lines.append(f"| {name} | {r['wall'] * scale:.3f} {unit} | {r['cpu'] * scale:.3f} {unit} | "
                     f"{r['wall_ratio']:.3f}x | {r['cpu_ratio']:.3f}x |")
    return '\n'.join(lines)


def random_data(n, block, generator):
    return torch.randint(0, VOCAB, (n, block), generator=generator), torch.randint(0, VOCAB, (n,), generator=generator)


def bench_backprop(rounds, steps, bs=32):
    "14: one SGD step, hand-written backward against autograd, from the same weights on the same batch."
    g = torch.Generator().manual_seed(2147483647)
    manual = init_ninja_params(VOCAB, n_embd=10, n_hidden=200, block_size=BLOCK_14, generator=g)
    auto = [p.clone().requires_grad_() for p in manual]
    X, Y = random_data(bs, BLOCK_14, g)
    return measure({'autograd_step (loss.backward())': lambda: autograd_step(auto, X, Y, 0.01),
                    'manual_step (hand-written backward)': lambda: manual_step(manual, X, Y, 0.01)},
                   'autograd_step (loss.backward())', rounds, number=steps)


def bench_learner(rounds, batches, bs, lr=2e-3):
    "15: an epoch of `batches` training batches, through the Learner against the hand-written loop."
    g = torch.Generator().manual_seed(0)
    X, Y = random_data(batches * bs, BLOCK_15, g)
    Xv, Yv = random_data(bs, BLOCK_15, g)
    dls = lm_dls(X, Y, Xv, Yv, bs)
    set_seed(); hand_model = hierarchical_lm(VOCAB, norm=BatchNorm1d)
    set_seed(); learn_model = hierarchical_lm(VOCAB, norm=BatchNorm1d)
    opt = torch.optim.AdamW(hand_model.parameters(), lr, weight_decay=0., betas=(0.9, 0.99))
    learn = lm_learner(learn_model, dls, lr, cbs=[QuietMetricsCB()])
    return measure({'fit_by_hand (minimal loop)': lambda: fit_by_hand(hand_model, dls.train, opt),
                    'Learner (lm_learner, as in notebook 15)': lambda: learn.fit(1, valid=False)},
                   'fit_by_hand (minimal loop)', rounds)


def main(rounds=9, steps=500, batches=300, bs=32):
    print(f'torch {torch.__version__}, {THREADS} thread(s), {rounds} rounds per clock\n')
    rows = bench_backprop(rounds, steps)
    print(table(f'14: one training step (MLP + BatchNorm, 12,297 parameters, batch 32; {steps} steps per round)',
                rows, 'step', 1e3, 'ms'), '\n')
    manual = rows['manual_step (hand-written backward)']
    rows15 = bench_learner(rounds, batches, bs)
    print(table(f'15: one training step (hierarchical, 76,579 parameters, AdamW, batch {bs}; {batches} steps per round)',
                {k: {**v, 'wall': v['wall'] / batches, 'cpu': v['cpu'] / batches} for k, v in rows15.items()},
                'step', 1e3, 'ms'), '\n')
    learner = rows15['Learner (lm_learner, as in notebook 15)']
    print(f"hand-written / autograd step: {manual['wall_ratio']:.3f}x wall, {manual['cpu_ratio']:.3f}x CPU (goal: at most 1.0x)")
    print(f"Learner / hand loop: {learner['wall_ratio']:.3f}x wall, {learner['cpu_ratio']:.3f}x CPU (goal: at most 1.05x)")
    if not (min(manual['wall_ratio'], manual['cpu_ratio']) <= 1.0 and min(learner['wall_ratio'], learner['cpu_ratio']) <= 1.05):
        sys.exit(1)


if __name__ == '__main__': fire.Fire(main)
