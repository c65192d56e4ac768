#!/usr/bin/env python
"""Does data parallelism pay on this machine? Notebook 17's `bench_distributed`, in one process and in two.

The same `Learner` + `DistributedCB` training steps (global batch 256 by default, so each of two ranks does half
the work; one thread per process), timed from the start of one step to the next, median over --steps after
--warmup, each time the slowest rank's. One process runs in this one (as the notebook does), two are launched by
torchrun (the notebook's `run_script`). Prints a markdown table like README's scaling table, then the goal:

    Goal: the ResNet at least 1.5x the steps/s on 2 processes as on 1.

A measurement, not a test: the script exits 0 whether or not the goal holds (a busy machine misses it: say so
next to the numbers). Notebook 17 reports these speed-ups without checking them.

    .venv/bin/python benchmarks/bench_distributed.py [--models=mlp,resnet] [--bs=256] [--steps=20] [--warmup=3]
"""
import json, sys, tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from exp.nb_00 import THREADS   # noqa: F401 (nb_00 first: it sets one thread per process, inherited by torchrun's)
from fastcore.script import anno_parser
import torch
from exp.nb_17 import bench_distributed, run_script

GOAL_MODEL, GOAL_SPEEDUP = 'resnet', 1.5


def scaling_table(one, two, bs):
    "README's scaling table from the results of 1 and 2 processes (model -> seconds per step, and so on)."
    rows = ['| model | parameters | 1 process, steps/s | 2 processes, steps/s | speed-up | efficiency | '
            '2 processes: compute, ms | exposed all-reduce, ms | all-reduce alone, ms |', '|---|---|---|---|---|---|---|---|---|']
    for name in one:
        a, b = one[name], two[name]
        speedup = a['step'] / b['step']
        rows.append(f"| {name} (global batch {bs}) | {a['params']:,} | {1 / a['step']:.2f} | {1 / b['step']:.2f} | "
                    f"{speedup:.2f}x | {speedup / 2:.0%} | {b['compute'] * 1e3:.1f} | "
                    f"{max(b['step'] - b['compute'], 0) * 1e3:.1f} | {b['allreduce'] * 1e3:.2f} |")
    return '\n'.join(rows)


def goal_line(one, two):
    "Whether the goal holds, in words (or why it was not measured)."
    if GOAL_MODEL not in one: return f"Goal ({GOAL_MODEL} at least {GOAL_SPEEDUP}x on 2 processes): not measured (--models has no {GOAL_MODEL})"
    speedup = one[GOAL_MODEL]['step'] / two[GOAL_MODEL]['step']
    verdict = 'holds' if speedup >= GOAL_SPEEDUP else 'NOT met'
    return f"Goal ({GOAL_MODEL} at least {GOAL_SPEEDUP}x steps/s on 2 processes): {verdict}, {speedup:.2f}x"


def main(models: str = 'mlp,resnet',  # the models to time, separated by commas: mlp, resnet
         bs: int = 256,               # the global batch, the same with 1 and 2 processes
         steps: int = 20,             # the steps timed (medians are reported)
         warmup: int = 3,             # the steps run first and not timed
         timeout: int = 900):         # seconds the 2-process job may take before it is killed
    "Time notebook 17's training steps in 1 and 2 processes; print the scaling table and whether the goal holds."
    with tempfile.TemporaryDirectory(prefix='bench_distributed_') as tmp:
        one_json, two_json = Path(tmp) / 'one.json', Path(tmp) / 'two.json'
        bench_distributed(models, bs=bs, steps=steps, warmup=warmup, out=one_json)
        rc, output = run_script('bench', f'--models={models}', f'--bs={bs}', f'--steps={steps}', f'--warmup={warmup}',
                                f'--out={two_json}', nproc=2, timeout=timeout, show=False)
        if rc != 0: sys.exit(f"the 2-process run failed (status {rc}):\n{output}")
        one, two = (json.loads(p.read_text())['models'] for p in (one_json, two_json))
    print(f"\n{torch.get_num_threads()} thread(s) per process, global batch {bs}, median of {steps} steps after {warmup}\n")
    print(scaling_table(one, two, bs))
    print(f"\n{goal_line(one, two)}")


if __name__ == '__main__':
    parser = anno_parser(main, prog='benchmarks/bench_distributed.py')
    parser.allow_abbrev = False
    main(**{k: v for k, v in vars(parser.parse_args()).items() if k not in ('pdb', 'xtra')})
