#!/usr/bin/env python
"""Notebook 19's CPU speedrun: the cost of a training step of each change of the modern recipe, against notebook 16's
`cpu` configuration, measured in one run; and, with --train, whole trainings side by side.

    .venv/bin/python benchmarks/bench_speedrun.py [--rounds 5] [--number 10] [--only name,name]
    .venv/bin/python benchmarks/bench_speedrun.py --train speedrun [--max_iters N]   # cpu, then speedrun, in full
    .venv/bin/python benchmarks/bench_speedrun.py --train speedrun --alone [--changes "{'ns_steps': 3}"] [--ratio R]

Step times: every variant trains on Tiny Shakespeare with its own trainer (16's `GPTTrainer` for the baseline,
19's `ModernTrainer` for the rest: forward, backward, clipping, optimizer step, the schedule), the variants taking
turns in `rounds` rounds of `number` steps (nb_00's `time_rounds`); the table gives each variant's median step
time and the median over rounds of its ratio to 16's cpu step. The ratio is what a row of the notebook's ablation
needs: at 16's training time (7,500 cpu iterations), a variant of ratio r gets 7,500 / r iterations.

--train NAME: trains 16's cpu configuration and 19's configuration NAME, each in full (or to --max_iters), taking
turns, a fifteenth of each at a time, so that a change in the machine's load falls on both alike; prints the
validation loss of each and the ratio of their training times (the bar: at most 1.0).

--train NAME --alone: 19's configuration NAME with --changes (a dict of fields) only: its step-time ratio to 16's
cpu step (measured first, in 3 rounds of 10 steps, unless --ratio is given), then a training of 7,500 / ratio
iterations (or --max_iters) with the schedule fitted to that length; prints every evaluation and a RESULT line.
"""
import statistics, sys, time
from dataclasses import replace
from pathlib import Path

import fire
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from exp.nb_00 import THREADS, median_ratio, time_rounds   # nb_00 first: it sets the threads
import torch
from exp.nb_16 import CONFIGS as CONFIGS16, GPT, CharTokenizer, GPTTrainer, count_params, load_text, split_data
from exp.nb_19 import MODERN_CONFIGS, MODERN, ModernGPT, ModernTrainer, as_modern, wsd_schedule
from exp.nb_16 import lr_schedule

# name -> changes to 16's cpu configuration (model and training fields); each is one row of the notebook's ablation
VARIANTS = {
    '16 cpu (ModernGPT, all flags at 16)': {},
    'RMSNorm': dict(norm='rms'),
    'RoPE (no position table)': dict(pos='rope'),
    'RoPE + QK-norm': dict(pos='rope', qk_norm=True),
    'ReLU^2': dict(mlp='relu2'),
    'SwiGLU, hidden 341 (8/3 n_embd)': dict(mlp='swiglu'),
    'SwiGLU, hidden 352': dict(mlp='swiglu', mlp_hidden=352),
    'SwiGLU, hidden 320': dict(mlp='swiglu', mlp_hidden=320),
    'no biases': dict(bias=False),
    'tied embeddings': dict(tie_embeddings=True),
    'logit soft-cap 15': dict(softcap=15.),
    'Muon (NS5, float32) + AdamW': dict(optimizer='muon'),
    "Muon (NS5, ns_dtype 'auto') + AdamW": dict(optimizer='muon', ns_dtype='auto'),
    'modern model (RMS, RoPE, QK-norm, ReLU^2, no bias)': MODERN,
    'speedrun (MODERN_CONFIGS)': None,
}


def shakespeare_splits():
    text, _ = load_text('shakespeare')
    tok = CharTokenizer(text)
    return tok, dict(zip(('train', 'val'), split_data(torch.tensor(tok.encode(text)))))


def trainer_for(name, changes, vocab_size, splits, config='speedrun'):
    "A fresh trainer: 16's own GPT and trainer (name None), 19's cpu configuration with `changes`, or (changes None) 19's `config`."
    cfg16, tc16 = CONFIGS16['cpu']
    if name is None:
        torch.manual_seed(tc16.seed)
        return GPTTrainer(GPT(replace(cfg16, vocab_size=vocab_size)), tc16, splits, cfg16.block_size)
    cfg, tc = MODERN_CONFIGS[config] if changes is None else as_modern(cfg16, tc16, **changes)
    cfg = replace(cfg, vocab_size=vocab_size)
    torch.manual_seed(tc.seed)
    return ModernTrainer(ModernGPT(cfg), tc, splits, cfg.block_size)


def step_times(rounds=5, number=10, only=None):
    tok, splits = shakespeare_splits()
    variants = {k: v for k, v in VARIANTS.items() if only is None or any(o in k for o in str(only).split(','))}
    trainers = {'16 cpu (GPT of 16)': trainer_for(None, None, len(tok), splits)} | \
               {k: trainer_for(k, v, len(tok), splits) for k, v in variants.items()}
    times = time_rounds({k: t.step for k, t in trainers.items()}, rounds=rounds, number=number, warmup=3)
    base = '16 cpu (GPT of 16)'
    print(f"torch {torch.__version__}, {THREADS} thread(s); 16's cpu configuration (batch 12 x block 64) and each change; "
          f"{rounds} rounds of {number} training steps, the variants taking turns\n")
    print("| variant | parameters | ms per step | ratio to 16's cpu step | iterations in 16's 7,500-step time |")
    print('|---|---:|---:|---:|---:|')
    for k, t in trainers.items():
        r = median_ratio(times, k, base)
        print(f"| {k} | {count_params(t.model):,} | {1e3 * statistics.median(times[k]):.1f} | {r:.3f} | {7500 / r:,.0f} |")


def train_side_by_side(config='speedrun', max_iters=None, chunks=15):
    "16's cpu configuration and 19's `config`, each trained in full, taking turns; their val losses and the ratio of training times."
    if config not in MODERN_CONFIGS: raise SystemExit(f"--train: the configurations are {', '.join(MODERN_CONFIGS)}")
    tok, splits = shakespeare_splits()
    runs = [("16's cpu", trainer_for(None, None, len(tok), splits)),
            (f"19's {config}", trainer_for(config, None, len(tok), splits, config))]
    lengths = [t.tc.max_iters if max_iters is None else max_iters for _, t in runs]
    # in turns of 1/chunks of each run, so that a change in the machine's load falls on both alike; each trainer draws
    # its batches from its own generator and neither uses dropout, so the turns change no number of either run
    for k in range(1, chunks + 1):
        for (label, trainer), n in zip(runs, lengths): trainer.fit(round(n * k / chunks), log=None, bar=False)
        print(f"turn {k}/{chunks}: " + ', '.join(f"{label} {t.train_time:.0f} s" for label, t in runs), flush=True)
    print("\n| configuration | iterations | val loss | bits per character | training time (s) |")
    print('|---|---:|---:|---:|---:|')
    for (label, trainer), n in zip(runs, lengths):
        val = trainer.history[-1]['val']
        print(f"| {label} | {n:,} | {val:.4f} | {val / 0.6931471805599453:.3f} | {trainer.train_time:.0f} |")
    print(f"\ntraining-time ratio {runs[1][0]} / {runs[0][0]}: {runs[1][1].train_time / runs[0][1].train_time:.3f} (the bar: at most 1.0)")


def train_one(config='speedrun', changes=None, max_iters=None, ratio=None, rounds=3, number=10):
    "19's `config` with `changes` alone: its step-time ratio to 16's cpu step (measured now unless given), then a training of 7,500 / ratio iterations."
    tok, splits = shakespeare_splits()
    cfg, tc = MODERN_CONFIGS[config]
    cfg, tc = as_modern(cfg, tc, **(changes or {}))
    cfg = replace(cfg, vocab_size=len(tok))
    def fresh():
        torch.manual_seed(tc.seed)
        return ModernTrainer(ModernGPT(cfg), tc, splits, cfg.block_size)
    if max_iters is None:
        if ratio is None:
            times = time_rounds({'16': trainer_for(None, None, len(tok), splits).step, 'this': fresh().step},
                                rounds=rounds, number=number, warmup=3)
            ratio = median_ratio(times, 'this', '16')
        max_iters = int(7500 / ratio)
    print(f"{config} with {changes}: ratio {ratio}, {max_iters:,} iterations, {count_params(fresh().model):,} parameters", flush=True)
    trainer = fresh()
    trainer.tc = replace(trainer.tc, lr_decay_iters=max_iters) if tc.lr_decay_iters == tc.max_iters else trainer.tc
    trainer.lr_at = wsd_schedule(trainer.tc) if trainer.tc.schedule == 'wsd' else lr_schedule(trainer.tc)
    start, cpu = time.perf_counter(), time.process_time()
    trainer.fit(max_iters, log=print, bar=False)
    final = trainer.history[-1]
    print(f"RESULT {config} {changes}: ratio {ratio}, {max_iters} its, val {final['val']:.4f}, train {final['train']:.4f}, "
          f"training time {final['time']:.0f} s, wall {time.perf_counter() - start:.0f} s, cpu {time.process_time() - cpu:.0f} s", flush=True)


def main(rounds: int = 5, number: int = 10, only: str = None, train: str = None, max_iters: int = None,
         alone: bool = False, changes: dict = None, ratio: float = None):
    if train and alone: train_one(train, changes, max_iters, ratio)
    elif train: train_side_by_side(train, max_iters)
    else: step_times(rounds, number, only)


if __name__ == '__main__':
    fire.Fire(main)
