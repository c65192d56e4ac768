#!/usr/bin/env python
"""How much do the course's training tools cost? Two comparisons, each in one run:

1. The `Learner` (notebook 04) against the minimal hand-written loop `hand_loop` (also exported
   from 04): same MLP (784-100-50-10), same data (Fashion-MNIST: 55,000 training and 5,000
   validation images), same batch size, one epoch = a training pass and a validation pass, SGD.
   The Learner runs with no callbacks (it adds none by itself), then with MetricsCB + Recorder.
2. The course `DataLoader` (notebook 03, indexes a whole batch at once) against
   `torch.utils.data.DataLoader` with its default settings over the same in-memory tensors.

Timing is nb_00's `time_rounds` (the variants take turns, round after round), once with the
wall clock and once with this process's CPU time (the steadier measure on a shared machine);
ratios are the median over rounds of variant / baseline in the same round (`median_ratio`).

    .venv/bin/python benchmarks/bench_training.py [--rounds 7] [--bs 64]
"""
import statistics, sys, time
from pathlib import Path

import fire
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from exp.nb_00 import THREADS, median_ratio, set_seed, time_rounds   # nb_00 first: it sets the threads
import torch
from torch.utils.data import DataLoader as TorchDataLoader, TensorDataset
from exp.nb_03 import DataLoader, Dataset, accuracy
from exp.nb_04 import Recorder, QuietMetricsCB, get_mlp, get_mnist_dls, hand_loop, learner_fit

CLOCKS = {'wall': time.perf_counter, 'cpu': time.process_time}


def fresh_mlp():
    set_seed()
    return get_mlp((784, 100, 50, 10))


def measure(variants, baseline, rounds):
    "Per variant and clock: the median seconds and the median ratio to `baseline` over rounds."
    rows = {name: {} for name in variants}
    for kind, clock in CLOCKS.items():
        times = time_rounds(variants, rounds=rounds, clock=clock)
        for name in variants:
            rows[name][kind] = statistics.median(times[name])
            rows[name][f'{kind}_ratio'] = median_ratio(times, name, baseline)
    return rows


def table(title, rows, note):
    lines = [f'| {title} ({note}) | wall median | CPU median | wall ratio | CPU ratio |', '|---|---|---|---|---|']
    for name, r in rows.items():
        lines.append(f"| {name} | {r['wall']:.3f} s | {r['cpu']:.3f} s | {r['wall_ratio']:.3f}x | {r['cpu_ratio']:.3f}x |")
    return '\n'.join(lines)


def main(rounds=7, bs=64, lr=0.05):
    dls = get_mnist_dls(bs)
    n_train, n_valid = len(dls.train.ds), len(dls.valid.ds)
    print(f'torch {torch.__version__}, {THREADS} thread(s), batch size {bs}, {n_train:,} training + '
          f'{n_valid:,} validation images, {rounds} rounds per clock\n')
    learn_rows = measure({
        'hand-written loop': lambda: hand_loop(fresh_mlp(), dls, lr),
        'Learner, no callbacks': lambda: learner_fit(fresh_mlp(), dls, lr),
        'Learner + MetricsCB(accuracy) + Recorder': lambda: learner_fit(fresh_mlp(), dls, lr, [QuietMetricsCB(accuracy=accuracy), Recorder()]),
    }, 'hand-written loop', rounds)
    print(table('training loop (MLP 784-100-50-10, SGD)', learn_rows, 'one epoch, train + valid'), '\n')
    x, y = dls.train.ds.x, dls.train.ds.y
    loaders = {'course DataLoader (batch at once)': DataLoader(Dataset(x, y), bs, shuffle=True),
               'torch DataLoader (defaults)': TorchDataLoader(TensorDataset(x, y), batch_size=bs, shuffle=True)}
    load_rows = measure({name: lambda dl=dl: [None for _ in dl] for name, dl in loaders.items()},
                        'course DataLoader (batch at once)', rounds)
    print(table('data loader', load_rows, f'one epoch, {n_train:,} items, shuffled'))
    bare, torch_dl = learn_rows['Learner, no callbacks'], load_rows['torch DataLoader (defaults)']
    print(f"\nLearner / hand loop: {bare['wall_ratio']:.3f}x wall, {bare['cpu_ratio']:.3f}x CPU (goal: at most 1.10x)")
    print(f"torch DataLoader / course DataLoader: {torch_dl['wall_ratio']:.2f}x wall (goal: at least 1x)")
    if not (min(bare['wall_ratio'], bare['cpu_ratio']) <= 1.10 and torch_dl['wall_ratio'] >= 1.0): sys.exit(1)


if __name__ == '__main__': fire.Fire(main)
