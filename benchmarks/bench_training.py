#!/usr/bin/env python
"""How much do the course's training tools cost? Two comparisons, each in one run:

1. The `Learner` (notebook 04) against a minimal hand-written PyTorch loop: same MLP
   (784-100-50-10), same data (Fashion-MNIST, 60,000 training and 10,000 test images), same
   batch size, same epochs, same DataLoader, SGD; one epoch = a training pass and a validation
   pass. The Learner runs with its default callbacks (it adds none by itself), then with the
   usual MetricsCB(accuracy) + Recorder.
2. The course `DataLoader` (notebook 03, indexes a whole batch at once) against
   `torch.utils.data.DataLoader` with its default settings (num_workers=0, item-by-item
   `__getitem__` then `default_collate`) over the same in-memory `TensorDataset`, one epoch.

Repeats are interleaved (A, B, C, then B, C, A, ...) so that load from other users of the machine
hits every variant alike. For each variant the table gives the median wall-clock time and the
median CPU time of this process (on a shared machine, CPU time is the steadier measure of the
work done), and the median over rounds of its ratio to the baseline timed in the same round.

    .venv/bin/python benchmarks/bench_training.py [--repeat 7] [--bs 64] [--threads 1]
"""
import argparse, os, statistics, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from exp.nb_05 import *                     # noqa: E402  (the whole course stack)
from torch.utils.data import DataLoader as TorchDataLoader, TensorDataset  # noqa: E402


def timed(f):
    "(wall-clock seconds, CPU seconds of this process) for one call of `f`."
    wall, cpu = time.perf_counter(), time.process_time()
    f()
    return time.perf_counter() - wall, time.process_time() - cpu


def interleaved(variants, repeat):
    """One warm-up round, then `repeat` rounds that run every variant once, in an order rotated each round.
    Returns {name: {'wall': [...], 'cpu': [...]}} with one entry per round."""
    for f in variants.values(): f()
    names = list(variants)
    times = {name: {'wall': [], 'cpu': []} for name in names}
    for r in range(repeat):
        for name in names[r % len(names):] + names[:r % len(names)]:
            wall, cpu = timed(variants[name])
            times[name]['wall'].append(wall); times[name]['cpu'].append(cpu)
    return times


def summary(times, baseline):
    """Per variant: median wall and CPU seconds, and the median over rounds of the ratio to `baseline` in the
    same round (pairing rounds cancels slow drifts in the machine's load)."""
    out = {}
    for name, t in times.items():
        row = {}
        for kind in ('wall', 'cpu'):
            row[kind] = statistics.median(t[kind])
            row[f'{kind}_ratio'] = statistics.median(a / b for a, b in zip(t[kind], times[baseline][kind]))
        out[name] = row
    return out


def hand_loop(model, dls, lr, n_epochs):
    "The minimal loop: what the Learner does, without callbacks."
    opt = torch.optim.SGD(model.parameters(), lr)
    for _ in range(n_epochs):
        model.train()
        for xb, yb in dls.train:
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            opt.zero_grad()
        model.eval()
        with torch.no_grad():
            for xb, yb in dls.valid: F.cross_entropy(model(xb), yb)


def fresh_mlp():
    torch.manual_seed(0)
    return get_mlp((784, 100, 50, 10))


class QuietMetricsCB(MetricsCB):
    "MetricsCB computing and logging everything as usual, without printing its per-epoch row."
    def print_row(self, row): pass


def bench_learner(dls, repeat, lr=0.05, n_epochs=1):
    variants = {
        'hand-written loop': lambda: hand_loop(fresh_mlp(), dls, lr, n_epochs),
        'Learner, default callbacks (none)': lambda: Learner(fresh_mlp(), dls, lr=lr).fit(n_epochs),
        'Learner + MetricsCB(accuracy) + Recorder': lambda: Learner(
            fresh_mlp(), dls, lr=lr, cbs=[QuietMetricsCB(accuracy=accuracy), Recorder()]).fit(n_epochs),
    }
    return summary(interleaved(variants, repeat), 'hand-written loop')


def bench_loaders(x, y, bs, repeat):
    def one_epoch(dl):
        def go():
            for _ in dl: pass
        return go
    variants = {
        'course DataLoader (batch at once)': one_epoch(DataLoader(Dataset(x, y), bs, shuffle=True)),
        'torch DataLoader (defaults)': one_epoch(TorchDataLoader(TensorDataset(x, y), batch_size=bs, shuffle=True)),
    }
    return summary(interleaved(variants, repeat), 'course DataLoader (batch at once)')


def table(title, rows, baseline, note):
    lines = [f'| {title} ({note}) | wall median | CPU median | wall ratio | CPU ratio |', '|---|---|---|---|---|']
    for name, r in rows.items():
        lines.append(f"| {name} | {r['wall']:.3f} s | {r['cpu']:.3f} s | {r['wall_ratio']:.3f}x | {r['cpu_ratio']:.3f}x |")
    return '\n'.join(lines) + f'\n\nratios: median over rounds of (variant / {baseline}) in the same round'


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--repeat', type=int, default=7)
    p.add_argument('--bs', type=int, default=64)
    p.add_argument('--epochs', type=int, default=1)
    p.add_argument('--threads', type=int, default=1, help='torch threads (1: small ops on a shared 2-core machine)')
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    dls = get_mnist_dls(args.bs)
    n_train, n_valid = len(dls.train.ds), len(dls.valid.ds)
    print(f'torch {torch.__version__}, {args.threads} thread(s), batch size {args.bs}, '
          f'{n_train:,} training + {n_valid:,} validation images, {args.repeat} interleaved repeats\n')

    learn_t = bench_learner(dls, args.repeat, n_epochs=args.epochs)
    print(table('training loop (MLP 784-100-50-10, SGD)', learn_t, 'hand-written loop',
                f'{args.epochs} epoch(s), train + valid'))
    print()
    load_t = bench_loaders(dls.train.ds.x, dls.train.ds.y, args.bs, args.repeat)
    print(table('data loader', load_t, 'course DataLoader (batch at once)', f'one epoch, {n_train:,} items, shuffled'))

    bare = learn_t['Learner, default callbacks (none)']
    usual = learn_t['Learner + MetricsCB(accuracy) + Recorder']
    speedup = load_t['torch DataLoader (defaults)']
    print(f"\nLearner (default callbacks) / hand loop: {bare['wall_ratio']:.3f}x wall, {bare['cpu_ratio']:.3f}x CPU (target <= 1.10x)")
    print(f"Learner + MetricsCB + Recorder / hand loop: {usual['wall_ratio']:.3f}x wall, {usual['cpu_ratio']:.3f}x CPU")
    print(f"torch DataLoader / course DataLoader: {speedup['wall_ratio']:.2f}x wall, {speedup['cpu_ratio']:.2f}x CPU (target >= 1x)")
    ok = min(bare['wall_ratio'], bare['cpu_ratio']) <= 1.10 and speedup['wall_ratio'] >= 1.0
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
