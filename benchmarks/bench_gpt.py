#!/usr/bin/env python
"""Time one training step of notebook 16's GPT: ours (from-scratch attention and LayerNorm) against the same
model on PyTorch's fused kernels (F.scaled_dot_product_attention, nn.LayerNorm), and the FLOP rate of each
against this CPU's float32 matmul peak, measured in the same run.

    .venv/bin/python benchmarks/bench_gpt.py [--config cpu] [--rounds 7] [--number 3] [--n 1024]

The two models hold the same weights and train on the same batch; a large `n`x`n` float32 matmul (`@`) is the
peak. All three take turns in `rounds` rounds of `number` calls each (nb_00's `time_rounds`). A step is forward,
backward, gradient clipping and an AdamW step, with the config's batch size and block size. FLOPs per token:
6N + 12*L*T*d (N non-embedding parameters; nanoGPT's and PaLM's estimate). Prints a markdown table with medians,
and the median over rounds of the time ratio ours / fused.
"""
import statistics, sys
from dataclasses import replace
from pathlib import Path

import fire
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from exp.nb_00 import THREADS, median_ratio, set_seed, time_rounds   # nb_00 first: it sets the threads
import torch
from torch import nn
from exp.nb_16 import CONFIGS, GPT, count_params, flops_per_token, get_batch, make_optimizer


def training_step(model, x, y, tc):
    "One training step of `model` on the batch (x, y), with the config's clipping and optimizer."
    opt = make_optimizer(model, tc)
    def step():
        _, loss = model(x, y)
        loss.backward()
        if tc.grad_clip: nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def matmul(n):
    a, b = torch.randn(n, n), torch.randn(n, n)
    return lambda: a @ b


def main(config='cpu', rounds=7, number=3, n=1024):
    cfg, tc = CONFIGS[config]
    cfg = replace(cfg, vocab_size=65)
    set_seed()
    ours = GPT(replace(cfg, fused=False))
    fused = GPT(replace(cfg, fused=True))
    fused.load_state_dict(ours.state_dict())
    x, y = get_batch(torch.randint(65, (100_000,)), tc.batch_size, cfg.block_size, torch.Generator().manual_seed(0))
    times = time_rounds({'ours': training_step(ours, x, y, tc), 'fused': training_step(fused, x, y, tc), 'matmul': matmul(n)},
                        rounds=rounds, number=number, warmup=2)
    tokens, flops = x.numel(), flops_per_token(ours) * x.numel()
    peak = 2 * n ** 3 / statistics.median(times['matmul'])
    print(f"torch {torch.__version__}, {THREADS} thread(s), config {config!r}: {count_params(ours):,} parameters, batch "
          f"{tc.batch_size} x block {cfg.block_size} = {tokens:,} tokens, {flops / 1e9:.2f} GFLOP per step; "
          f"{rounds} rounds of {number} calls\n")
    print('| | ms per call | tokens/s | GFLOP/s | of the matmul peak |')
    print('|---|---:|---:|---:|---:|')
    for name, label in (('ours', 'training step, ours (causal_attention, LayerNorm of 07)'),
                        ('fused', 'training step, fused (F.scaled_dot_product_attention, nn.LayerNorm)')):
        t = statistics.median(times[name])
        print(f'| {label} | {t * 1e3:.1f} | {tokens / t:,.0f} | {flops / t / 1e9:.1f} | {flops / t / peak:.0%} |')
    print(f"| float32 matmul {n}x{n} @ {n}x{n} (the peak) | {statistics.median(times['matmul']) * 1e3:.1f} | | {peak / 1e9:.1f} | 100% |")
    print(f"\nours / fused: {median_ratio(times, 'ours', 'fused'):.2f}x the time (median of per-round ratios; goal: at most 1.3x)")


if __name__ == '__main__': fire.Fire(main)
