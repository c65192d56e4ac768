"""Notebook 17's plumbing, moved out of the lesson (issue 21): `dist_env`'s refusals, `DistributedCB`'s teardown in a
one-rank gloo group however a fit ends, `run_script`'s time limit and `stop` (no process left behind, workers included),
the GPT loop of 17 alone against notebook 16's `GPTTrainer`, and no temporary path in the saved outputs."""
import os, signal, socket, subprocess, time, uuid
from contextlib import contextmanager
from pathlib import Path

import nbformat, pytest, torch
import torch.distributed as dist

import run_notebook as rn
from conftest import ROOT
from test_distributed import gpt_model, gpt_setup, gpt_text, max_diff   # the workers' tiny float64 GPT, shared
from exp.nb_16 import GPTTrainer
from exp.nb_17 import (Callback, CancelFitException, DataLoaders, Dataset, DistributedCB, Learner, dist_env,
                       get_mlp, gpt_data_parallel, job_env, run_script, script_command, stop)

TORCHRUN_VARS = ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')


# ---- the environment torchrun sets ----

LAUNCHED = {'RANK': '1', 'LOCAL_RANK': '1', 'WORLD_SIZE': '2', 'MASTER_ADDR': '127.0.0.1', 'MASTER_PORT': '29500'}

def test_dist_env_reads_torchrun_and_refuses_a_partial_or_inconsistent_environment():
    assert dist_env({}) == (0, 0, 1) and dist_env(LAUNCHED) == (1, 1, 2)
    for env, words in [({**LAUNCHED, 'RANK': '2'}, 'RANK=2 is outside 0..1'), ({**LAUNCHED, 'RANK': '-1'}, 'RANK=-1 is outside'),
                       ({'WORLD_SIZE': '2'}, 'not RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT'),
                       ({k: v for k, v in LAUNCHED.items() if k != 'MASTER_PORT'}, 'not MASTER_PORT')]:
        with pytest.raises(RuntimeError, match=words): dist_env(env)


# ---- DistributedCB's teardown, in a one-rank group in this process ----

def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]

@contextmanager
def one_rank_env(monkeypatch):
    "The environment torchrun sets, for a world of one process (this one), on 127.0.0.1."
    with monkeypatch.context() as m:
        for k, v in dict(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port())).items():
            m.setenv(k, v)
        yield

class Raise(Callback):
    def __init__(self, exc): self.exc = exc
    def after_step(self): raise self.exc

def tiny_dls():
    g = torch.Generator().manual_seed(0)
    return DataLoaders.from_datasets(Dataset(torch.randn(32, 784, generator=g), torch.randint(0, 10, (32,), generator=g)),
                                     Dataset(torch.randn(8, 784, generator=g), torch.randint(0, 10, (8,), generator=g)), bs=8)

def fit_in_group(monkeypatch, extra_cbs):
    with one_rank_env(monkeypatch), DistributedCB(timeout=30) as dcb:
        assert dist.is_initialized() and dcb.owns_group
        Learner(get_mlp(), tiny_dls(), cbs=[dcb, *extra_cbs]).fit(1)

@pytest.mark.parametrize('ending', ['normal', 'cancelled', 'error', 'ctrl-c'])
def test_the_group_is_torn_down_however_the_fit_ends(monkeypatch, ending):
    extra = {'normal': [], 'cancelled': [Raise(CancelFitException())], 'error': [Raise(ValueError('a bug in a callback'))],
             'ctrl-c': [Raise(KeyboardInterrupt())]}[ending]
    if ending in ('normal', 'cancelled'): fit_in_group(monkeypatch, extra)
    else:
        with pytest.raises(ValueError if ending == 'error' else KeyboardInterrupt): fit_in_group(monkeypatch, extra)
    assert not dist.is_initialized()

def test_distributed_cb_refuses_a_bad_accumulation_and_a_batch_that_does_not_split():
    with pytest.raises(ValueError, match='accumulate=0'): DistributedCB(accumulate=0)
    with pytest.raises(ValueError, match='batch size 8 does not split into 1 ranks x 3'):
        Learner(get_mlp(), tiny_dls(), cbs=[DistributedCB(accumulate=3)]).fit(1)


# ---- launching: run_script's time limit, and stop() with the workers running ----

def tagged_pids(tag, also=None):
    "Live processes whose environment holds `tag` ('NAME=value'), and `also` too if given (e.g. b'RANK=')."
    found = []
    for proc in Path('/proc').glob('[0-9]*'):
        try: env = (proc / 'environ').read_bytes().split(b'\0')
        except OSError: continue
        if tag.encode() in env and (also is None or any(e.startswith(also) for e in env)): found.append(int(proc.name))
    return found

def kill_all(tag):
    for pid in tagged_pids(tag):
        try: os.kill(pid, signal.SIGKILL)
        except ProcessLookupError: pass

def test_script_command_is_torchrun_on_this_machine_or_plain_python():
    assert script_command(['ring', '--sizes=3'], nproc=3)[-6:] == ['--standalone', '--nproc_per_node=3', '-m', 'exp.nb_17',
                                                                   'ring', '--sizes=3']
    assert script_command(['ring'], nproc=None)[1:] == ['-m', 'exp.nb_17', 'ring']

def test_a_job_gets_no_world_of_ours_and_finds_exp_from_any_folder(monkeypatch):
    for name in TORCHRUN_VARS: monkeypatch.setenv(name, LAUNCHED[name])   # as inside a torchrun worker
    monkeypatch.setenv('PYTHONPATH', '/somewhere/else')
    env = job_env()
    assert not set(TORCHRUN_VARS) & set(env) and env['PYTHONPATH'] == os.pathsep.join([str(ROOT), '/somewhere/else'])
    assert os.environ['RANK'] == '1'   # ours untouched

def test_a_job_past_its_time_limit_is_stopped_and_leaves_no_process(monkeypatch):
    tag = f'COURSE_LESSON17={uuid.uuid4().hex}'
    monkeypatch.setenv(*tag.split('='))
    try:
        with pytest.raises(TimeoutError, match=r"stopped after 1 s"): run_script('ring', nproc=2, timeout=1, show=False)
        assert tagged_pids(tag) == []
    finally: kill_all(tag)

def test_stop_ends_torchrun_and_its_running_workers(tmp_path):
    tag = f'COURSE_LESSON17={uuid.uuid4().hex}'
    env = job_env() | dict([tag.split('=')])
    proc = subprocess.Popen(script_command(['gpt', '--iters=1000000', '--bs=2', '--dropout=0', f'--data={write_text(tmp_path)}']),
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while len(tagged_pids(tag, also=b'RANK=')) < 2:   # both workers started (torchrun has no RANK of its own)
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate(timeout=30)[0]
            time.sleep(0.2)
        output = stop(proc)
        assert proc.returncode != 0 and tagged_pids(tag) == [], output
    finally: kill_all(tag)


# ---- the GPT loop alone is notebook 16's trainer ----

def write_text(folder):
    path = Path(folder) / 'text.txt'
    path.write_text(gpt_text(), encoding='utf-8')
    return path

def test_the_gpt_loop_alone_is_gpttrainer_bit_for_bit_and_with_accumulation_to_rounding():
    cfg, tc, data = gpt_setup()
    model = gpt_model(cfg, tc.seed)
    trainer = GPTTrainer(model, tc, {'train': data}, cfg.block_size)
    expected_losses = [trainer.step() for _ in range(15)]
    expected = model.state_dict()
    shorter = gpt_model(cfg, tc.seed)
    gpt_data_parallel(shorter, data, tc, cfg.block_size, 14)
    assert max_diff(shorter.state_dict(), expected) > 1e-5   # the comparison can tell one step apart
    for accumulate in (1, 2, 4):
        model = gpt_model(cfg, tc.seed)
        losses = gpt_data_parallel(model, data, tc, cfg.block_size, 15, accumulate)
        if accumulate == 1: assert (max_diff(model.state_dict(), expected), losses) == (0, expected_losses)
        assert max_diff(model.state_dict(), expected) < 1e-12, accumulate
        torch.testing.assert_close(torch.tensor(losses), torch.tensor(expected_losses), rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match='batch size 8 does not split into 1 ranks x 3 micro-batches'):
        gpt_data_parallel(gpt_model(cfg, 0), data, tc, cfg.block_size, 1, accumulate=3)


# ---- the saved outputs ----

def test_the_saved_outputs_show_no_temporary_path():
    "The jobs run in a scratch folder and are given relative names: no /tmp/... in what the notebook printed."
    path = ROOT / 'nbs' / '17_distributed.ipynb'
    nb = nbformat.read(path, as_version=4)
    if (nb.metadata.get('course') or {}).get('digest') != rn.code_digest(nb, ROOT):
        pytest.skip('the saved outputs are older than the code (re-save the notebook to check them)')
    text = '\n'.join(str(out) for cell in nb.cells if cell.cell_type == 'code' for out in cell.outputs)
    assert '/tmp/' not in text and 'nb17_' not in text and str(Path.home()) not in text
