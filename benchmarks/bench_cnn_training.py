#!/usr/bin/env python
"""Do notebooks 07 and 09 train within their time goals on this machine? The notebooks check the
accuracy they reach after a fixed number of epochs and only print how long it took; the goals on
time live here, so that a busy machine never fails a lesson.

- 07: the CNN with our BatchNorm, 6 epochs of SGD with momentum and one-cycle: goal 180 s of CPU time.
- 09: the ResNet with augmentation, 8 epochs of our AdamW and one-cycle: goal 600 s of CPU time.

Training the full runs would take minutes, so each is measured on part of the data: one epoch
(training pass plus the full validation pass) on `n` and on `2n` training images, both in the same
round; the difference is the cost of `n` training images, the rest is the validation pass and
the epoch's fixed costs. The projection is `epochs x (cost per image x 55,000 + rest)`, in CPU
time of this one-thread process (the steadier clock on a shared machine), median over rounds.

    .venv/bin/python benchmarks/bench_cnn_training.py [--rounds 3] [--batches 20]
"""
import statistics, sys, time
from functools import partial
from pathlib import Path

import fire
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from exp.nb_00 import set_seed   # nb_00 first: it sets the threads
import torch
from exp.nb_03 import accuracy
from exp.nb_04 import Learner, QuietMetricsCB
from exp.nb_05 import one_cycle
from exp.nb_06 import DeviceCB, get_image_dls, init_cnn
from exp.nb_07 import get_bn_cnn
from exp.nb_08 import adamw
from exp.nb_09 import BatchTransformCB, augment, get_resnet

BS, TRAIN_IMAGES = 256, 55_000


def learner_07(dls):
    "Notebook 07's final run: our BatchNorm CNN, SGD with momentum 0.9 and weight decay, one-cycle at 0.2."
    set_seed()
    return Learner(init_cnn(get_bn_cnn(), leak=0.1), dls, lr=0.2, cbs=[DeviceCB(), QuietMetricsCB(accuracy=accuracy), *one_cycle(0.2)],
                   opt_func=partial(torch.optim.SGD, momentum=0.9, weight_decay=1e-4))


def learner_09(dls):
    "Notebook 09's run: the ResNet, crops and flips on every batch, our AdamW, one-cycle at 1e-2."
    set_seed()
    bg = float(dls.train.ds.x.min())
    cbs = [DeviceCB(), BatchTransformCB(partial(augment, pad=1, fill=bg)), QuietMetricsCB(accuracy=accuracy),
           *one_cycle(1e-2, mom_name='beta1')]
    return Learner(init_cnn(get_resnet()), dls, lr=1e-2, opt_func=partial(adamw, wd=1e-2), cbs=cbs)


RUNS = {'07: CNN with our BatchNorm': (learner_07, 6, 180), '09: ResNet with augmentation': (learner_09, 8, 600)}


def epoch_cpu_seconds(make_learner, dls):
    learn = make_learner(dls)
    start = time.process_time()
    learn.fit(1)
    return time.process_time() - start


def main(rounds: int = 3, batches: int = 20):
    n = batches * BS
    dls = {k: get_image_dls(bs=BS, n_train=k * n) for k in (1, 2)}
    print(f"one thread; one epoch on {n:,} and {2 * n:,} training images (+ the validation pass), {rounds} rounds\n")
    print("| notebook | epochs | projected training, CPU s | goal, CPU s | met |\n|---|---:|---:|---:|---|")
    for name, (make_learner, epochs, goal) in RUNS.items():
        projections = []
        for _ in range(rounds):
            small, big = (epoch_cpu_seconds(make_learner, dls[k]) for k in (1, 2))
            per_image = max(big - small, 0) / n
            projections.append(epochs * (per_image * TRAIN_IMAGES + small - per_image * n))
        projected = statistics.median(projections)
        print(f"| {name} | {epochs} | {projected:.0f} | {goal} | {'yes' if projected <= goal else 'NO'} |", flush=True)


if __name__ == '__main__': fire.Fire(main)
