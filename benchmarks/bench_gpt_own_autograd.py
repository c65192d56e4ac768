#!/usr/bin/env python
"""Time one training step of notebook 16's GPT trained by notebook 16a's engine against torch.autograd.

    .venv/bin/python benchmarks/bench_gpt_own_autograd.py [--config cpu] [--rounds 41] [--number 3] [--top 12]

Three trainers, all from the same weights and on the same batches (each trainer draws its batches with
nb_16's `get_batch` from a generator seeded with the config's seed; the tokens are random, 65 symbols:
the shapes, not the values, set the cost): nb_16's `GPTTrainer` on the fused model (F.scaled_dot_product_attention,
nn.LayerNorm; torch.autograd: the baseline), the same `GPTTrainer` on the model with fused=False (16's own
attention and 07's LayerNorm: the same math as ours, on torch.autograd), and nb_16a's `TensorGPTTrainer` on a
`TensorGPT` (our engine, our AdamW and clipping). A step is `trainer.step()`: learning rate, batch, forward,
backward, clipping, AdamW. The trainers take turns (`time_rounds` from exp/nb_00.py), `rounds` rounds of
`number` steps each, once with the wall clock and once with this process's CPU time (the steadier measure on a
shared machine); the table reports the median over rounds of the time per step and the median of the per-round
ratios to the baseline. Then `op_times()` of nb_16a over `number` * 3 steps of our trainer: the ops that take the
most time, in ms per step and as a share of the step, and the share spent outside the ops (graph building, the
topological sort, accumulation, the optimizer). Torch's thread count is the course's (exp/nb_00.py: COURSE_THREADS,
default 1). Last, the page faults of one step of each trainer: our engine keeps every saved tensor until the backward
ends and frees them together, and glibc hands big freed blocks back to the kernel, which must zero them again on
the next step's first touch; `--keep_freed_memory` raises glibc's thresholds (mallopt) so that freed memory stays
in the process, to show how much of the gap that is.
"""
import argparse, ctypes, resource, statistics, sys, time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from exp.nb_00 import THREADS, median_ratio, set_seed, time_rounds   # first: it sets the thread settings torch reads
import torch
from exp.nb_16 import CONFIGS, GPT, GPTTrainer, count_params
from exp.nb_16a import TensorGPT, TensorGPTTrainer, op_times

BASELINE = 'fused'
LABELS = {'fused': '16, `GPTTrainer`, fused model (SDPA, `nn.LayerNorm`; torch.autograd): the baseline',
          'unfused': '16, `GPTTrainer`, fused=False (`causal_attention`, LayerNorm of 07; torch.autograd)',
          'ours': '16a, `TensorGPTTrainer` on `TensorGPT` (our engine)'}
CLOCKS = {'wall': time.perf_counter, 'cpu': time.process_time}
VOCAB = 65


def make_trainers(config):
    "The three trainers of the docstring, holding copies of the same weights and drawing the same batches."
    cfg, tc = CONFIGS[config]
    cfg = replace(cfg, vocab_size=VOCAB)
    set_seed()
    fused = GPT(replace(cfg, fused=True))
    unfused = GPT(replace(cfg, fused=False))
    unfused.load_state_dict(fused.state_dict())
    ours = TensorGPT.from_torch(fused)
    data = torch.randint(VOCAB, (100_000,), generator=torch.Generator().manual_seed(0))
    splits = {'train': data[:90_000], 'val': data[90_000:]}
    trainers = {'fused': GPTTrainer(fused.train(), tc, splits, cfg.block_size),
                'unfused': GPTTrainer(unfused.train(), tc, splits, cfg.block_size),
                'ours': TensorGPTTrainer(ours.train(), tc, splits, cfg.block_size)}
    return trainers, cfg, tc, count_params(fused)


def profile_ops(trainer, steps):
    "op_times() over `steps` steps: ({(op, pass): seconds per step}, wall seconds per step)."
    with op_times() as seconds:
        start = time.perf_counter()
        for _ in range(steps): trainer.step()
        total = time.perf_counter() - start
    return {key: s / steps for key, s in seconds.items()}, total / steps


def keep_freed_memory():
    "Ask glibc to keep freed memory (no mmap for big blocks, no trimming) instead of returning it to the kernel."
    libc = ctypes.CDLL('libc.so.6')
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3   # from malloc.h
    if not (libc.mallopt(M_MMAP_THRESHOLD, 1 << 30) and libc.mallopt(M_TRIM_THRESHOLD, (1 << 31) - 1)):
        sys.exit("--keep_freed_memory: mallopt refused (not glibc?)")


def page_faults_per_step(trainer, steps):
    "Minor page faults (first touches of memory the kernel must hand out and zero) per step."
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps): trainer.step()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / steps


def main(config='cpu', rounds=41, number=3, top=12, keep_memory=False):
    if keep_memory: keep_freed_memory()
    trainers, cfg, tc, n_params = make_trainers(config)
    steps = {name: t.step for name, t in trainers.items()}
    times = {clock: time_rounds(steps, rounds=rounds, number=number, warmup=2, clock=CLOCKS[clock]) for clock in CLOCKS}
    per_op, step_time = profile_ops(trainers['ours'], 3 * number)

    faults = {name: page_faults_per_step(t, 3 * number) for name, t in trainers.items()}
    command = (f'.venv/bin/python benchmarks/bench_gpt_own_autograd.py --config {config} --rounds {rounds} --number {number}'
               + (' --keep_freed_memory' if keep_memory else ''))
    print(f"<!-- {command} -->")
    print(f"`{command}`: config {config!r}, {n_params:,} parameters, batch {tc.batch_size} x block {cfg.block_size}, "
          f"grad_clip {tc.grad_clip}; torch {torch.__version__}, {THREADS} thread(s); {rounds} rounds of {number} steps "
          f"per trainer and clock; medians\n")
    print("| trainer | ms per step (wall) | (CPU) | vs the baseline (wall) | (CPU) | page faults per step |\n|---|---:|---:|---:|---:|---:|")
    for name in trainers:
        per_step = {clock: statistics.median(t[name]) * 1e3 for clock, t in times.items()}
        ratio = {clock: median_ratio(t, name, BASELINE) for clock, t in times.items()}
        print(f"| {LABELS[name]} | {per_step['wall']:.1f} | {per_step['cpu']:.1f} | {ratio['wall']:.2f}x | {ratio['cpu']:.2f}x | {faults[name]:,.0f} |")

    ours = median_ratio(times['cpu'], 'ours', BASELINE)
    print(f"\ngoal (notebook 16a): our engine's step at most 1.5x torch.autograd's on 16's fused model: "
          f"{'met' if ours <= 1.5 else 'NOT met'} ({ours:.2f}x, CPU time)")

    in_ops = sum(per_op.values())
    print(f"\nWhere our step goes: `op_times()` over {3 * number} steps, {step_time * 1e3:.1f} ms per step (wall, "
          f"timers included); the top {top} of {len(per_op)} (op, pass)\n")
    print("| op | pass | ms per step | share of the step |\n|---|---|---:|---:|")
    for (op, kind), s in sorted(per_op.items(), key=lambda kv: -kv[1])[:top]:
        print(f"| `{op}` | {kind} | {s * 1e3:.2f} | {s / step_time:.1%} |")
    rest = sum(sorted(per_op.values(), reverse=True)[top:])
    if rest: print(f"| the other {len(per_op) - top} | | {rest * 1e3:.2f} | {rest / step_time:.1%} |")
    print(f"| outside the ops (graph, sort, accumulation, clipping, AdamW, batch) | | {(step_time - in_ops) * 1e3:.2f} | "
          f"{(step_time - in_ops) / step_time:.1%} |")
    return times, per_op


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default='cpu', choices=list(CONFIGS), help="nb_16's configuration")
    parser.add_argument('--rounds', type=int, default=41, help="timed rounds per clock (the defaults take about 60 s)")
    parser.add_argument('--number', type=int, default=3, help='consecutive steps per trainer in each round')
    parser.add_argument('--top', type=int, default=12, help='op_times entries to list')
    parser.add_argument('--keep_freed_memory', action='store_true', help="keep freed memory in the process (glibc mallopt)")
    args = parser.parse_args()
    main(args.config, args.rounds, args.number, args.top, args.keep_freed_memory)
