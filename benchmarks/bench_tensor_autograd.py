#!/usr/bin/env python
"""Time one SGD training step of the notebook-03 MLP with notebook 10a's engine and with torch.autograd.

    .venv/bin/python benchmarks/bench_tensor_autograd.py [--steps 100] [--repeats 15] [--threads 1]

A step is forward (784-50-10 ReLU MLP, cross-entropy) + backward + SGD update on a batch of 64.
All engines run in the same process and take turns (in a rotating order) so that they share the
machine's load; each repeat times `steps` consecutive steps, and the table reports the median
over repeats of the time per step, and its ratio to torch.autograd with F.cross_entropy.
Torch uses one thread by default: at these sizes a second thread helps little, and on a shared
2-core machine it makes timings erratic (--threads 0 keeps torch's default). Inputs are random
normal (the shapes, not the values, set the cost).
"""
import argparse, math, os, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import torch
import torch.nn.functional as F
from exp.nb_10a import Tensor, cross_entropy


def init_mlp(seed=42, n_in=784, n_hidden=50, n_out=10):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n_in, n_hidden, generator=g) * math.sqrt(2 / n_in), torch.zeros(n_hidden),
            torch.randn(n_hidden, n_out, generator=g) * math.sqrt(1 / n_hidden), torch.zeros(n_out)]


def mlp(x, w1, b1, w2, b2): return (x @ w1 + b1).relu() @ w2 + b2

ENGINES = {   # name: (make a parameter from a torch tensor, loss of (params, xb, yb))
    'ours (exp.nb_10a)': (lambda t: Tensor(t.clone(), requires_grad=True),
                          lambda ps, xb, yb: cross_entropy(mlp(Tensor(xb), *ps), yb)),
    'torch.autograd, same ops': (lambda t: t.clone().requires_grad_(),
                                 lambda ps, xb, yb: cross_entropy(mlp(xb, *ps), yb)),   # the same ops, on torch tensors
    'torch.autograd, F.cross_entropy': (lambda t: t.clone().requires_grad_(),
                                        lambda ps, xb, yb: F.cross_entropy(mlp(xb, *ps), yb)),
}
BASELINE = 'torch.autograd, F.cross_entropy'


def seconds_per_step(make_param, loss_fn, batches, lr=0.01):
    params = [make_param(t) for t in init_mlp()]
    start = time.perf_counter()
    for xb, yb in batches:
        loss = loss_fn(params, xb, yb)
        loss.backward()
        for p in params:
            p.data.add_(p.grad, alpha=-lr)
            p.grad = None
    return (time.perf_counter() - start) / len(batches)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--steps', type=int, default=100, help='steps per timed repeat')
    ap.add_argument('--repeats', type=int, default=15, help='timed repeats per engine')
    ap.add_argument('--bs', type=int, default=64)
    ap.add_argument('--threads', type=int, default=1, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads: torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batches = [(torch.randn(args.bs, 784), torch.randint(0, 10, (args.bs,))) for _ in range(args.steps)]
    for make_param, loss_fn in ENGINES.values(): seconds_per_step(make_param, loss_fn, batches[:10])  # warm-up
    times, names = {name: [] for name in ENGINES}, list(ENGINES)
    for r in range(args.repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            times[name].append(seconds_per_step(*ENGINES[name], batches))
    median = {name: sorted(ts)[len(ts) // 2] for name, ts in times.items()}
    print(f"One SGD step of the 784-50-10 MLP, batch {args.bs}: median of {args.repeats} repeats x {args.steps} steps, "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)\n")
    print(f"| engine | time per step | vs {BASELINE} |\n|---|---|---|")
    for name, t in median.items():
        print(f"| {name} | {t * 1e6:.0f} µs | {t / median[BASELINE]:.2f}x |")


if __name__ == '__main__': main()
