"""torch.distributed on CPU (gloo, on 127.0.0.1) with the course's Learner (exp.nb_17): two ranks train what one
process trains on the whole batches, the hand-written ring all-reduce equals dist.all_reduce, rank 0 alone writes
checkpoints that resume in one process, a failing rank ends the whole job, and the script runs with plain python.

Every job runs under a timeout, is killed in a `finally`, and must leave no process behind. Run as a script (under
torchrun), this file is also the workers' code: `python tests/test_distributed.py equivalence OUT`."""
import os, re, signal, socket, subprocess, sys, uuid
from functools import partial
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from exp.nb_17 import (SEED, Callback, CheckpointCB, DataLoaders, Dataset, DistributedCB, Learner, get_mlp,
                       ring_inputs, set_seed)

ROOT = Path(__file__).resolve().parent.parent
JOB_TIMEOUT = 150   # seconds per job, start-up included: importing torch in 3 processes on a busy 2-core machine is slow
N_TRAIN, BS, LR, FEATURES, CLASSES = 100, 16, 0.1, 12, 5   # 100 items: 6 whole batches of 16, 4 left out per epoch
TORCHRUN_VARS = ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')


# ---- the workers' side: small float64 problems, run in every rank

def synthetic_dls():
    g = torch.Generator().manual_seed(0)
    def ds(n): return Dataset(torch.randn(n, FEATURES, generator=g, dtype=torch.float64), torch.randint(0, CLASSES, (n,), generator=g))
    return DataLoaders.from_datasets(ds(N_TRAIN), ds(24), BS)

def mlp(seed=SEED):
    set_seed(seed)
    return get_mlp((FEATURES, 16, CLASSES)).double()

def fit(model, epochs, cbs):
    learn = Learner(model, synthetic_dls(), lr=LR, cbs=cbs, opt_func=partial(torch.optim.SGD, momentum=0.9))
    return learn.fit(epochs)

def worker_equivalence(out, epochs=2):
    "Train on every rank without and with gradient accumulation; rank 0 saves both sets of parameters."
    with DistributedCB(timeout=60) as group:   # opens the process group; the learners' callbacks share it
        params = {acc: fit(mlp(), epochs, [DistributedCB(accumulate=acc)]).model.state_dict() for acc in (1, 2)}
        if group.is_main: torch.save(params, out)

def worker_checkpoint(out_dir):
    "One epoch with a CheckpointCB on every rank, each rank given its own path: only rank 0's may appear."
    with DistributedCB(timeout=60) as dcb:
        fit(mlp(), 1, [dcb, CheckpointCB(Path(out_dir) / f"rank{os.environ['RANK']}" / 'ckpt.pt')])

class FailOnRank1(Callback):
    def after_step(self):
        if self.learn.train_iter == 2 and os.environ['RANK'] == '1': raise ValueError('rank 1 fails on purpose')

def worker_fail():
    "Rank 1 raises after its third step; rank 0 carries on into the next all-reduce, which rank 1 never joins."
    with DistributedCB(timeout=60) as dcb:
        fit(mlp(), 1000, [dcb, FailOnRank1()])

WORKERS = {'equivalence': worker_equivalence, 'checkpoint': worker_checkpoint, 'fail': worker_fail}


# ---- the test's side: launching jobs, bounded, and checking nothing is left

def tagged_pids(tag):
    "The live processes whose environment holds `tag` (every process of a job inherits it)."
    found = []
    for proc in Path('/proc').glob('[0-9]*'):
        try:
            if tag.encode() in (proc / 'environ').read_bytes().split(b'\0'): found.append(int(proc.name))
        except OSError: pass
    return found

def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]

def launch(nproc, *args, timeout=JOB_TIMEOUT):
    "`python *args` under torchrun with `nproc` gloo ranks on 127.0.0.1 (alone if None): (exit code, output)."
    name, value = 'COURSE_TEST_JOB', uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARS}
    env |= {'PYTHONPATH': str(ROOT), 'GLOO_SOCKET_IFNAME': 'lo', name: value}
    torchrun = [] if nproc is None else ['-m', 'torch.distributed.run', '--nnodes=1', f'--nproc_per_node={nproc}',
                                         f'--rdzv_endpoint=127.0.0.1:{free_port()}']
    proc = subprocess.Popen([sys.executable, *torchrun, *map(str, args)], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    output = left_behind = None
    try:
        output = proc.communicate(timeout=timeout)[0]
        left_behind = tagged_pids(f'{name}={value}')   # before any cleanup of ours: the job must have ended itself
    finally:
        for pid in tagged_pids(f'{name}={value}') + [proc.pid]:
            try: os.kill(pid, signal.SIGKILL)
            except ProcessLookupError: pass
        proc.communicate()
    assert left_behind == [], f"processes left behind by {args}: {left_behind}\n{output}"
    assert tagged_pids(f'{name}={value}') == []
    return proc.returncode, output


def whole_batch_params(epochs):
    "One process, the whole global batches, written out: each epoch's order is randperm seeded with SEED + epoch."
    model, dls = mlp(), synthetic_dls()
    x, y = dls.train.ds.x, dls.train.ds.y
    opt = torch.optim.SGD(model.parameters(), LR, momentum=0.9)
    for epoch in range(epochs):
        order = torch.randperm(N_TRAIN, generator=torch.Generator().manual_seed(SEED + epoch))
        for s in range(N_TRAIN // BS):
            idx = order[s * BS:(s + 1) * BS]
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step(); opt.zero_grad()
    return model.state_dict()

def max_diff(a, b): return max((a[k] - b[k]).abs().max().item() for k in b)


def test_two_ranks_train_the_parameters_of_one_process_on_the_whole_batches(tmp_path):
    rc, output = launch(2, __file__, 'equivalence', tmp_path / 'params.pt')
    assert rc == 0, output
    expected = whole_batch_params(2)
    assert max_diff(whole_batch_params(1), expected) > 1e-3   # the comparison can tell training runs apart
    params = torch.load(tmp_path / 'params.pt')
    assert sorted(params) == [1, 2]
    for accumulate, p in params.items():
        assert max_diff(p, expected) < 1e-12, f"accumulate={accumulate}: {max_diff(p, expected)} (float64)"


@pytest.mark.parametrize('world_size', [2, 3])
def test_ring_all_reduce_equals_dist_all_reduce(tmp_path, world_size):
    sizes = (1, 2, 5, 7, 1001)   # odd sizes, and fewer elements than ranks
    rc, output = launch(world_size, '-m', 'exp.nb_17', 'ring', f'--sizes={",".join(map(str, sizes))}',
                        f'--out={tmp_path}/ring_{{rank}}.pt')
    assert rc == 0, output
    for rank in range(world_size):
        rows = torch.load(tmp_path / f'ring_{rank}.pt')
        assert [(r['numel'], r['dtype']) for r in rows] == [(n, d) for n in sizes for d in ('float64', 'int64')]
        for r in rows:
            expected = sum(ring_inputs(k, r['numel'], getattr(torch, r['dtype'])) for k in range(world_size))
            torch.testing.assert_close(r['theirs'], expected, rtol=1e-12, atol=1e-12)   # ints: exactly
            torch.testing.assert_close(r['ours'], r['theirs'], rtol=1e-12, atol=1e-12)


def test_only_rank_0_writes_the_checkpoint_and_it_resumes_in_one_process(tmp_path):
    for rank in (0, 1): (tmp_path / f'rank{rank}').mkdir()
    rc, output = launch(2, __file__, 'checkpoint', tmp_path)
    assert rc == 0, output
    assert [p.name for p in (tmp_path / 'rank0').iterdir()] == ['ckpt.pt']
    assert list((tmp_path / 'rank1').iterdir()) == []
    ckpt = tmp_path / 'rank0' / 'ckpt.pt'
    assert torch.load(ckpt)['epoch'] == 0
    # here, in one process: other initial weights, then the checkpoint, then the second epoch
    learn = fit(mlp(seed=1), 2, [DistributedCB(), CheckpointCB(ckpt, resume=True)])
    assert max_diff(learn.model.state_dict(), whole_batch_params(2)) < 1e-12
    assert torch.load(ckpt)['epoch'] == 1


def test_a_failing_rank_ends_the_whole_job_with_its_error(tmp_path):
    rc, output = launch(2, __file__, 'fail')   # fails the test if the job outlives JOB_TIMEOUT
    assert rc != 0, output
    assert re.search(r'Root Cause.*?rank\s*:\s*1 \(local_rank: 1\)', output, re.S), output
    assert 'ValueError: rank 1 fails on purpose' in output, output


def test_the_script_runs_alone_with_plain_python(tmp_path):
    rc, output = launch(None, '-m', 'exp.nb_17', 'train', '--epochs=2', '--bs=64', '--n_train=1024', f'--out={tmp_path}/alone.pt')
    assert rc == 0, output
    assert 'mlp: 1 process(es)' in output and 'test accuracy' in output, output
    result = torch.load(tmp_path / 'alone.pt')
    assert result['world_size'] == 1 and [row['epoch'] for row in result['log']] == [0, 1]
    assert result['test_accuracy'] > 0.5, result   # 32 steps on Fashion-MNIST: far above chance (0.1)


if __name__ == '__main__':   # a worker, started by torchrun in each rank
    import fire
    from torch.distributed.elastic.multiprocessing.errors import record
    record(fire.Fire)(WORKERS)
