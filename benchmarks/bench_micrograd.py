#!/usr/bin/env python
"""Time one step of the micrograd demo: the course engine (exp/nb_10.py) against PyPI micrograd==0.1.0.

    .venv/bin/python benchmarks/bench_micrograd.py [--repeats 7]

A step is what a training step costs before the update: forward over the 100 two-moons points,
max-margin loss + 1e-4 L2, zero_grad, backward. Both engines get the same weights (copied from the
micrograd model), so they do the same arithmetic; the script checks that their losses and gradients
agree. Repeats are interleaved (one step of each engine per round) so that load on the machine hits
all of them alike; the median of the rounds is reported, and the ratios to micrograd, with the
garbage collector on (as it runs by default) and off.
"""
import argparse, gc, platform, random, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from exp.nb_10 import MLP, make_moons, demo_step, topo_sort, unfused_forward

from micrograd.engine import Value as MGValue
from micrograd.nn import MLP as MGMLP


def micrograd_step(model, xs, ys):
    "The step as micrograd's demo notebook writes it."
    inputs = [list(map(MGValue, x)) for x in xs]
    scores = list(map(model, inputs))
    losses = [(1 + -y * s).relu() for y, s in zip(ys, scores)]
    loss = sum(losses) * (1.0 / len(losses)) + 1e-4 * sum(p * p for p in model.parameters())
    model.zero_grad()
    loss.backward()
    return loss


def unfused_step(model, xs, ys):
    "The course engine, but with micrograd's sums of products (no fused dot/vsum nodes)."
    scores = [unfused_forward(model, x) for x in xs]
    loss = sum((1 - y * s).relu() for y, s in zip(ys, scores)) * (1.0 / len(xs)) + 1e-4 * sum(p * p for p in model.parameters())
    model.zero_grad()
    loss.backward()
    return loss


def course_step(model, xs, ys): return demo_step(model, xs, ys)[0]


def copy_weights(src, dst):
    for ls, ld in zip(src.layers, dst.layers):
        for ns, nd in zip(ls.neurons, ld.neurons):
            for ws, wd in zip(ns.w, nd.w): wd.data = float(ws.data)
            nd.b.data = float(ns.b.data)


def timed(fn, gc_on):
    "Seconds for one call of fn, with the collector in the given state (garbage from before collected first)."
    gc.collect()
    if not gc_on: gc.disable()
    try:
        t0 = time.perf_counter(); fn(); return time.perf_counter() - t0
    finally:
        gc.enable()


def median(xs): return sorted(xs)[len(xs) // 2]


def main(repeats=7):
    xs, ys = make_moons(100, noise=0.1, seed=0)
    random.seed(0)
    mg_model = MGMLP(2, [16, 16, 1])
    ours = MLP(2, [16, 16, 1])
    copy_weights(mg_model, ours)

    # same weights, same arithmetic: same loss and gradients
    mg_loss, our_loss = micrograd_step(mg_model, xs, ys), course_step(ours, xs, ys)
    assert abs(mg_loss.data - our_loss.data) < 1e-12, (mg_loss.data, our_loss.data)
    assert all(abs(p.grad - q.grad) < 1e-12 for p, q in zip(mg_model.parameters(), ours.parameters()))
    nodes = {'micrograd': len(topo_sort(mg_loss)), 'course, unfused': len(topo_sort(unfused_step(ours, xs, ys))),
             'course': len(topo_sort(our_loss))}
    del mg_loss, our_loss

    engines = [('micrograd', 'micrograd', lambda: micrograd_step(mg_model, xs, ys), True),
               ('micrograd, gc off', 'micrograd', lambda: micrograd_step(mg_model, xs, ys), False),
               ('course, unfused', 'course, unfused', lambda: unfused_step(ours, xs, ys), True),
               ('course, unfused, gc off', 'course, unfused', lambda: unfused_step(ours, xs, ys), False),
               ('course', 'course', lambda: course_step(ours, xs, ys), True),
               ('course, gc off', 'course', lambda: course_step(ours, xs, ys), False)]
    for _, _, fn, gc_on in engines: timed(fn, gc_on)          # warm-up
    times = {name: [] for name, *_ in engines}
    for _ in range(repeats):
        for name, _, fn, gc_on in engines: times[name].append(timed(fn, gc_on))
    med = {name: median(ts) for name, ts in times.items()}

    print(f'Python {platform.python_version()}, {repeats} interleaved repeats, median seconds per demo step '
          f'(forward over 100 points, zero_grad, backward); {len(gc.get_objects()):,} gc-tracked objects in the process')
    header = f"{'engine':26s} {'nodes':>7s} {'s/step':>8s} {'vs micrograd':>13s} {'vs micrograd gc off':>20s}"
    print(header); print('-' * len(header))
    for name, graph, *_ in engines:
        print(f"{name:26s} {nodes[graph]:7,d} {med[name]:8.4f} {med['micrograd'] / med[name]:12.1f}x "
              f"{med['micrograd, gc off'] / med[name]:19.1f}x")
    print()
    print('| engine | nodes per step | s/step (median) | speed-up vs micrograd | vs micrograd, gc off |')
    print('|---|---:|---:|---:|---:|')
    for name, graph, *_ in engines:
        print(f"| {name} | {nodes[graph]:,} | {med[name]:.4f} | {med['micrograd'] / med[name]:.1f}x | "
              f"{med['micrograd, gc off'] / med[name]:.1f}x |")
    return med


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=7)
    main(parser.parse_args().repeats)
