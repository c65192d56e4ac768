"The command line of exp.nb_16: train, resume exactly, sample; every bad input refused with one message, nothing written."
import os, subprocess, sys
from pathlib import Path

import pytest, torch

from conftest import ROOT, VERSE
import exp.nb_16 as gpt16
from exp.nb_16 import CHECKPOINT_FORMAT, load_checkpoint, main, sample_text, save_checkpoint, train_gpt

def cli(*args):
    "Run `main` in this process as the command line would; (exit message or None, stdout)."
    try: main([str(a) for a in args])
    except SystemExit as e: return str(e.code) if e.code not in (None, 0) else None
    return None


def folder_state(folder):
    "Every file under `folder` with its bytes: a bad input must leave it as it was."
    return {p.relative_to(folder): p.read_bytes() for p in sorted(Path(folder).rglob('*')) if p.is_file()}


@pytest.fixture
def trained(tmp_path, text_file):
    "A checkpoint of 20 iterations of the tiny config on the verse."
    out = tmp_path / 'run.pt'
    assert cli('train', f'--data={text_file}', f'--out={out}', '--config=tiny', '--max_iters=20') is None
    return out


# ---- train and sample

def test_train_writes_a_checkpoint_of_tensors_and_plain_data(tmp_path, text_file, capsys):
    trained = tmp_path / 'run.pt'
    assert cli('train', f'--data={text_file}', f'--out={trained}', '--config=tiny', '--max_iters=20') is None
    ckpt = torch.load(trained, weights_only=True)
    assert ckpt['format'] == CHECKPOINT_FORMAT and ckpt['config'] == 'tiny' and ckpt['iter'] == 20
    assert ckpt['vocab'] == ''.join(sorted(set(VERSE)))
    assert [h['iter'] for h in ckpt['history']] == [0, 10, 20]
    assert isinstance(ckpt['rng']['torch'], torch.Tensor) and isinstance(ckpt['rng']['batches'], torch.Tensor)
    assert isinstance(ckpt['model_config'], dict) and ckpt['model_config']['vocab_size'] == len(set(VERSE))
    assert set(os.listdir(trained.parent)) == {'run.pt', 'verse.txt'}   # no temporary file left behind
    out = capsys.readouterr().out
    assert 'iter     10: train loss' in out and 'val loss' in out and "config 'tiny'" in out


def test_sample_prints_the_prompt_and_n_characters_repeatably(trained, capsys):
    assert cli('sample', f'--ckpt={trained}', '--prompt=Shall', '--n=50', '--seed=3') is None
    first = capsys.readouterr().out
    assert first.startswith('Shall') and len(first) == len('Shall') + 50 + 1   # and print's newline
    assert set(first[:-1]) <= set(VERSE)
    cli('sample', f'--ckpt={trained}', '--prompt=Shall', '--n=50', '--seed=3')
    assert capsys.readouterr().out == first
    cli('sample', f'--ckpt={trained}', '--prompt=Shall', '--n=50', '--seed=4')
    assert capsys.readouterr().out != first


def test_sample_with_temperature_and_top_k(trained, capsys):
    "The knobs reach the sampler: seeded runs repeat, top_k=1 ignores the seed, and the text stays in the vocabulary."
    texts = {}
    for args in (('--seed=3',), ('--seed=3', '--temperature=0.5'), ('--seed=3', '--temperature=0.5', '--top_k=3'),
                 ('--seed=1', '--top_k=1'), ('--seed=2', '--top_k=1')):
        assert cli('sample', f'--ckpt={trained}', '--prompt=Shall', '--n=60', *args) is None
        texts[args] = capsys.readouterr().out
        assert texts[args].startswith('Shall') and len(texts[args]) == 5 + 60 + 1 and set(texts[args][:-1]) <= set(VERSE)
    assert texts[('--seed=3',)] != texts[('--seed=3', '--temperature=0.5')] != texts[('--seed=3', '--temperature=0.5', '--top_k=3')]
    assert texts[('--seed=1', '--top_k=1')] == texts[('--seed=2', '--top_k=1')]   # greedy: always the likeliest
    assert texts[('--seed=3', '--temperature=0.5')] == sample_text(trained, 'Shall', 60, 3, temperature=0.5) + '\n'


def test_the_module_runs_as_a_program(trained):
    "The real entry point: `python -m exp.nb_16`, its output and its exit status for a bad prompt."
    run = lambda *a: subprocess.run([sys.executable, '-m', 'exp.nb_16', *a], cwd=ROOT, capture_output=True, text=True, timeout=300)
    ok = run('sample', f'--ckpt={trained}', '--prompt=Thou', '--n=30', '--seed=0')
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == sample_text(trained, 'Thou', 30, 0) + '\n'
    bad = run('sample', f'--ckpt={trained}', '--prompt=Zebra')
    assert bad.returncode == 1 and bad.stdout == ''
    assert bad.stderr.strip().splitlines() == [f"error: --prompt='Zebra': 'Z': not in the vocabulary of "
                                               f"{len(set(VERSE))} characters {''.join(sorted(set(VERSE)))!r}"]


# ---- resume

def state_of(path):
    ckpt = torch.load(path, weights_only=True)
    return ckpt['model'], ckpt['optimizer']['state'], ckpt['history'], ckpt['iter']


def test_resume_is_exact(tmp_path, text_file):
    "2N iterations in one run == N, then a resume for N more: bit-identical weights, optimizer state and losses."
    cli('train', f'--data={text_file}', f'--out={tmp_path / "one.pt"}', '--config=tiny', '--max_iters=30')
    cli('train', f'--data={text_file}', f'--out={tmp_path / "two.pt"}', '--config=tiny', '--max_iters=15')
    torch.manual_seed(999)   # whatever happened in between, the resume restores the generators it saved
    assert cli('train', f'--data={text_file}', f'--out={tmp_path / "two.pt"}', '--resume', '--max_iters=30') is None
    (w1, s1, h1, i1), (w2, s2, h2, i2) = state_of(tmp_path / 'one.pt'), state_of(tmp_path / 'two.pt')
    assert i1 == i2 == 30
    assert w1.keys() == w2.keys() and all(torch.equal(w1[k], w2[k]) for k in w1)
    assert all(torch.equal(s1[p][k], s2[p][k]) for p in s1 for k in s1[p])
    rows = lambda h: [(r['iter'], r['train'], r['val']) for r in h]
    assert rows(h1) == [r for r in rows(h2) if r[0] != 15]   # the resumed run's extra evaluation at 15 aside


def test_resume_without_the_saved_generators_differs(tmp_path, text_file, monkeypatch):
    "The exactness test can fail: if the dropout generator's state were not restored, the weights would differ."
    cli('train', f'--data={text_file}', f'--out={tmp_path / "one.pt"}', '--config=tiny', '--max_iters=30')
    cli('train', f'--data={text_file}', f'--out={tmp_path / "two.pt"}', '--config=tiny', '--max_iters=15')
    monkeypatch.setattr(gpt16.torch, 'set_rng_state', lambda state: None)
    cli('train', f'--data={text_file}', f'--out={tmp_path / "two.pt"}', '--resume', '--max_iters=30')
    w1, w2 = state_of(tmp_path / 'one.pt')[0], state_of(tmp_path / 'two.pt')[0]
    assert not all(torch.equal(w1[k], w2[k]) for k in w1)


# ---- bad input: one clear message, nothing written

def foreign_files(folder, good):
    "Checkpoints that are not ours, each with the part of the message that names what is wrong."
    raw = good.read_bytes()
    (folder / 'truncated.pt').write_bytes(raw[:len(raw) // 2])
    (folder / 'empty.pt').write_bytes(b'')
    (folder / 'text.pt').write_text('not a checkpoint\n')
    torch.save({'weight': torch.ones(2)}, folder / 'state_dict.pt')
    ckpt = torch.load(good, weights_only=True)
    del ckpt['rng']
    torch.save(ckpt, folder / 'incomplete.pt')
    ckpt = torch.load(good, weights_only=True)
    ckpt['model_config']['n_embd'] = 32
    torch.save(ckpt, folder / 'wrong_shapes.pt')
    return {'missing.pt': 'no such checkpoint',
            'truncated.pt': 'not a readable checkpoint, truncated or not written by torch.save',
            'empty.pt': 'not a readable checkpoint',
            'text.pt': 'not a readable checkpoint',
            'state_dict.pt': "not a checkpoint of this course's GPT",
            'incomplete.pt': 'the checkpoint lacks rng',
            'wrong_shapes.pt': "the weights do not fit the checkpoint's own model config"}


class Planted:
    "An object that, unpickled without weights_only, would create a file: a stand-in for arbitrary code."
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return (Path.touch, (Path(self.marker),))


def test_checkpoints_load_with_weights_only_and_run_no_code(tmp_path, trained):
    marker = tmp_path / 'code_ran'
    ckpt = torch.load(trained, weights_only=True)
    ckpt['history'].append(Planted(marker))
    torch.save(ckpt, tmp_path / 'planted.pt')
    with pytest.raises(gpt16.InputError, match='refused: it holds objects other than tensors and plain data'):
        load_checkpoint(tmp_path / 'planted.pt')
    assert not marker.exists()
    torch.load(tmp_path / 'planted.pt', weights_only=False)   # the planted code is real: an unsafe load runs it
    assert marker.exists()


def test_every_bad_checkpoint_is_refused_by_sample_and_resume(tmp_path, trained, text_file):
    cases = foreign_files(tmp_path, trained)
    before = folder_state(tmp_path)
    for name, message in cases.items():
        path = tmp_path / name
        for args in (('sample', f'--ckpt={path}'), ('train', f'--data={text_file}', f'--out={path}', '--resume', '--max_iters=40')):
            err = cli(*args)
            assert err is not None and err.startswith(f'error: {path}: ') and message in err, (name, args, err)
            assert '\n' not in err
    assert folder_state(tmp_path) == before



def test_a_checkpoint_with_a_broken_generator_state_is_refused_by_resume(tmp_path, trained, text_file):
    ckpt = torch.load(trained, weights_only=True)
    ckpt['rng']['torch'] = torch.zeros(3, dtype=torch.uint8)
    torch.save(ckpt, tmp_path / 'bad_rng.pt')
    before = folder_state(tmp_path)
    err = cli('train', f'--data={text_file}', f'--out={tmp_path / "bad_rng.pt"}', '--resume', '--max_iters=40')
    assert err.startswith(f"error: {tmp_path / 'bad_rng.pt'}: the optimizer or generator state does not fit the model ("), err
    assert folder_state(tmp_path) == before


@pytest.mark.parametrize('content, message', [
    (b'', 'the file is empty'),
    (b'caf\xe9 au lait, ' * 30, 'not UTF-8 text (byte 0xe9 at offset 3 does not decode)'),
    (b'too short for a block of 16', '27 characters is too short for block_size 16'),
    (b'x' * 160, '160 characters is too short for block_size 16: the validation split (the last 10%) needs a window '
                 'of 17 characters (input and target): give at least 161 characters'),
])
def test_bad_text_files_are_refused(tmp_path, content, message):
    data = tmp_path / 'data.txt'
    data.write_bytes(content)
    before = folder_state(tmp_path)
    err = cli('train', f'--data={data}', f'--out={tmp_path / "new.pt"}', '--config=tiny')
    assert err is not None and err.startswith(f'error: {data}: ') and message in err, err
    assert folder_state(tmp_path) == before


def test_a_text_just_long_enough_trains(tmp_path):
    data = tmp_path / 'data.txt'
    data.write_text('ab' * 80 + 'a')   # 161 characters: the validation split is the last 17
    assert cli('train', f'--data={data}', f'--out={tmp_path / "new.pt"}', '--config=tiny', '--max_iters=2') is None


BIG = 10 ** 30   # torch.manual_seed overflows; as iterations or characters it would run for ever


@pytest.mark.parametrize('args, status, message', [
    (('--config=huge',), 1, "error: --config='huge': the configurations are tiny, cpu, lecture"),
    (('--config=tiny', '--max_iters=-3'), 1, 'error: --max_iters must be a whole number from 0 to 1,000,000,000, not -3'),
    (('--config=tiny', f'--max_iters={BIG}'), 1, f'error: --max_iters must be a whole number from 0 to 1,000,000,000, not {BIG}'),
    (('--config=tiny', '--max_iters=many'), 2, "error: argument --max_iters: invalid int value: 'many'"),
    (('--config=tiny', '--resume=maybe'), 2, "error: argument --resume: ignored explicit argument 'maybe'"),
])
def test_bad_flags_are_refused(tmp_path, text_file, capsys, no_training, args, status, message):
    before = folder_state(tmp_path)
    got, out, err = exit_of(capsys, 'train', f'--data={text_file}', f'--out={tmp_path / "new.pt"}', *args)
    assert got == status and out == '' and err.strip().splitlines()[-1].endswith(message), err
    if status == 1: assert err == message + '\n'   # our own checks: one line, no usage
    assert folder_state(tmp_path) == before


def test_a_missing_data_file_and_a_missing_folder(tmp_path, text_file):
    assert cli('train', f'--data={tmp_path / "nope.txt"}', f'--out={tmp_path / "a.pt"}') == f'error: {tmp_path / "nope.txt"}: no such file'
    err = cli('train', f'--data={text_file}', f'--out={tmp_path / "no" / "a.pt"}', '--config=tiny')
    assert err == f'error: {tmp_path / "no" / "a.pt"}: the folder {tmp_path / "no"} does not exist'
    assert not (tmp_path / 'a.pt').exists() and not (tmp_path / 'no').exists()


def test_an_existing_checkpoint_is_not_overwritten_without_resume(tmp_path, trained, text_file):
    before = folder_state(tmp_path)
    err = cli('train', f'--data={text_file}', f'--out={trained}', '--config=tiny')
    assert err == f'error: {trained} exists: pass --resume to continue that run, or choose another --out'
    assert folder_state(tmp_path) == before


def test_resume_refuses_another_text_another_config_and_no_more_iterations(tmp_path, trained, text_file):
    other = tmp_path / 'other.txt'
    other.write_text(VERSE * 5 + 'Shall I?\n')
    before = folder_state(tmp_path)
    err = cli('train', f'--data={other}', f'--out={trained}', '--resume', '--max_iters=30')
    assert err.startswith(f'error: {trained} was trained on another text than {other} (SHA-256 ') and 'resume it on the same text' in err
    err = cli('train', f'--data={text_file}', f'--out={trained}', '--resume', '--config=cpu')
    assert err == f'error: {trained} was trained with --config=tiny, not cpu: resume it without --config'
    err = cli('train', f'--data={text_file}', f'--out={trained}', '--resume', '--max_iters=20')
    assert err == f'error: {trained} is at iteration 20 already: --max_iters=20 would train nothing'
    assert folder_state(tmp_path) == before


@pytest.fixture
def no_sampling(monkeypatch):
    def generate(*a, **k): raise AssertionError('sampling started')
    monkeypatch.setattr(gpt16, 'generate_tokens', generate)


@pytest.mark.parametrize('args, status, message', [
    (('--prompt=O Zephyr!',), 1, "error: --prompt='O Zephyr!': '!OZ': not in the vocabulary of 35 characters"),
    (('--prompt=',), 1, 'error: --prompt is empty: give at least one character to start from (a newline, say)'),
    (('--n=-1',), 1, 'error: --n must be a whole number from 0 to 1,000,000, not -1'),
    ((f'--n={BIG}',), 1, f'error: --n must be a whole number from 0 to 1,000,000, not {BIG}'),
    ((f'--seed={BIG}',), 1, f'error: --seed must be a whole number from 0 to 18,446,744,073,709,551,615, not {BIG}'),
    (('--seed=-1',), 1, 'error: --seed must be a whole number from 0 to 18,446,744,073,709,551,615, not -1'),
    (('--n=ten',), 2, "error: argument --n: invalid int value: 'ten'"),
    (('--seed=1.5',), 2, "error: argument --seed: invalid int value: '1.5'"),
    (('--temperature=0',), 1, 'error: --temperature must be a finite number > 0, not 0.0'),
    (('--temperature=-0.5',), 1, 'error: --temperature must be a finite number > 0, not -0.5'),
    (('--temperature=nan',), 1, 'error: --temperature must be a finite number > 0, not nan'),
    (('--top_k=0',), 1, 'error: --top_k must be a whole number from 1 to 1,000,000,000, not 0'),
    (('--temperature=hot',), 2, "error: argument --temperature: invalid float value: 'hot'"),
    (('--top_k=2.5',), 2, "error: argument --top_k: invalid int value: '2.5'"),
])
def test_bad_sample_arguments_are_refused(tmp_path, trained, capsys, no_sampling, args, status, message):
    before = folder_state(tmp_path)
    got, out, err = exit_of(capsys, 'sample', f'--ckpt={trained}', *args)
    assert got == status and out == '' and message in err.strip().splitlines()[-1], err
    if status == 1: assert err.startswith(message) and len(err.strip().splitlines()) == 1
    assert folder_state(tmp_path) == before


# ---- atomic writes

def test_a_failed_write_leaves_the_old_checkpoint_and_no_temporary_file(tmp_path, trained, monkeypatch):
    before = folder_state(tmp_path)
    def broken_save(obj, f):
        Path(f).write_bytes(b'half a checkpoint')
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(gpt16.torch, 'save', broken_save)
    with pytest.raises(OSError, match='No space left'):
        save_checkpoint({'format': CHECKPOINT_FORMAT}, trained)
    assert folder_state(tmp_path) == before   # the old checkpoint, byte for byte, and nothing else


def interrupt_at(iteration, monkeypatch):
    "Make training raise KeyboardInterrupt (as Ctrl-C does) when it reaches `iteration`."
    real_step = gpt16.GPTTrainer.step
    def step(self):
        if self.iter == iteration: raise KeyboardInterrupt
        return real_step(self)
    monkeypatch.setattr(gpt16.GPTTrainer, 'step', step)


def test_an_interrupted_run_keeps_its_last_checkpoint(tmp_path, text_file, monkeypatch):
    out = tmp_path / 'run.pt'
    interrupt_at(15, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train_gpt(text_file, out, config='tiny', max_iters=20, log=None)
    assert load_checkpoint(out)['iter'] == 10   # the evaluation at 10 wrote it; nothing half-written after
    assert sorted(p.name for p in tmp_path.iterdir()) == ['run.pt', 'verse.txt']


# ---- the strict command line (command_line, shared with notebook 17)

def exit_of(capsys, *args):
    "Run `main` in this process; (exit status, stdout, stderr): a message passed to sys.exit is status 1."
    try: main([str(a) for a in args]); status = 0
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
        if isinstance(e.code, str): print(e.code, file=sys.stderr)
    except KeyboardInterrupt: pytest.fail('a KeyboardInterrupt escaped main')   # it would stop pytest itself
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def no_training(monkeypatch):
    "Fail the test if any training starts: flags must be refused before any work."
    def fit(self, *a, **k): raise AssertionError('training started')
    monkeypatch.setattr(gpt16.GPTTrainer, 'fit', fit)


def test_a_misspelt_or_abbreviated_flag_is_refused_before_any_work(tmp_path, text_file, capsys, no_training):
    before = folder_state(tmp_path)
    status, out, err = exit_of(capsys, 'train', f'--data={text_file}', f'--out={tmp_path / "new.pt"}', '--config=tiny', '--max_iter=3')
    assert status == 2 and out == ''
    assert err.strip().splitlines()[-1] == ("python -m exp.nb_16 train: error: unknown flag --max_iter (did you mean --max_iters?); "
                                            "the flags of train are --data, --out, --config, --max_iters, --resume")
    status, _, err = exit_of(capsys, 'sample', '--ckpt=x.pt', '--sed=3')
    assert status == 2 and err.strip().splitlines()[-1].endswith("unknown flag --sed (did you mean --seed?); "
                                                                  "the flags of sample are --ckpt, --prompt, --n, --seed, --temperature, --top_k")
    for hidden in ('--pdb', '--xtra=1'):   # fastcore's own hidden flags are not ours
        status, _, err = exit_of(capsys, 'train', f'--data={text_file}', '--config=tiny', hidden)
        assert status == 2 and f"unknown flag {hidden.split('=')[0]}" in err
    assert folder_state(tmp_path) == before


def test_the_module_refuses_a_misspelt_flag_as_a_program(tmp_path, text_file):
    res = subprocess.run([sys.executable, '-m', 'exp.nb_16', 'train', f'--data={text_file}', f'--out={tmp_path / "a.pt"}',
                          '--config=tiny', '--max_iter=3'], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and res.stdout == '' and 'unknown flag --max_iter' in res.stderr
    assert not (tmp_path / 'a.pt').exists()


def test_commands_and_help(capsys):
    status, out, err = exit_of(capsys, '--help')
    assert status == 0 and 'train' in out and 'sample' in out and 'COMMAND --help' in out
    status, out, err = exit_of(capsys)
    assert status == 2 and 'train' in err and 'sample' in err and 'error: no command given' in err
    status, out, err = exit_of(capsys, 'trian', '--data=x')
    assert status == 2 and "error: unknown command 'trian': the commands are train, sample" in err
    status, out, err = exit_of(capsys, 'train', '--help')
    assert status == 0
    for flag in ('--data', '--out', '--config', '--max_iters', '--resume'): assert flag in out
    assert 'UTF-8 text file' in out and 'iteration to stop at' in out and 'continue the run' in out
    assert '--pdb' not in out and '--xtra' not in out
    status, out, err = exit_of(capsys, 'sample', '--help')
    assert status == 0 and all(f in out for f in ('--ckpt', '--prompt', '--n', '--seed', '--temperature', '--top_k'))
    assert 'divides the logits' in out and 'likeliest characters' in out
    assert 'characters to sample' in out and "random generator's seed" in out


def test_values_reach_the_code_as_typed(capsys, monkeypatch):
    "No guessing of types: a prompt '1.50' stays '1.50', a file 'run,1' is not a tuple, a file '0x10' is not 16."
    calls = []
    monkeypatch.setattr(gpt16, 'sample_text', lambda *a: calls.append(a) or 'x')
    monkeypatch.setattr(gpt16, 'train_gpt', lambda *a, **k: calls.append(a))
    exit_of(capsys, 'sample', '--ckpt=0x10', '--prompt=1.50', '--n=7')
    exit_of(capsys, 'train', '--data=0x10', '--out=run,1', '--max_iters=5')
    assert calls[0] == ('0x10', '1.50', 7, 0, 1., None)
    exit_of(capsys, 'sample', '--temperature=2', '--top_k=3')
    assert calls[1:] == [('0x10', 'run,1', None, 5, False), ('ckpt.pt', '\n', 500, 0, 2., 3)]


def test_command_line_runs_any_annotated_functions(capsys):
    def add(a: int = 1,   # the first number
            b: float = 2.,   # the second number
            name: str = 'x',   # a word
            twice: bool = False):   # double it
        "Add two numbers."
        return (name, (a + b) * (2 if twice else 1))
    assert gpt16.command_line({'add': add}, ['add', '--a=3', '--b=0.5', '--name=1.0', '--twice']) == ('1.0', 7.)
    with pytest.raises(SystemExit) as e: gpt16.command_line({'add': add}, ['add', '--a=three'], prog='calc')
    assert e.value.code == 2 and "calc add: error: argument --a: invalid int value: 'three'" in capsys.readouterr().err


# ---- nothing clobbered, nothing half-written

def test_a_second_writer_of_the_same_checkpoint_is_refused(tmp_path, text_file, capsys, no_training):
    "Another run holds run.pt.lock (an flock, released by the system when its holder dies): this one must not start."
    import fcntl
    out, lock = tmp_path / 'run.pt', tmp_path / 'run.pt.lock'
    with open(lock, 'w') as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        before = folder_state(tmp_path)
        status, _, err = exit_of(capsys, 'train', f'--data={text_file}', f'--out={out}', '--config=tiny')
    assert status == 1 and err == (f"error: {out} is being written by another run (it holds {lock}): "
                                   f"wait for it to end, or choose another --out\n")
    assert folder_state(tmp_path) == before


def test_two_runs_at_once_one_is_refused(tmp_path, text_file):
    "The real thing: two processes training to the same --out."
    out = tmp_path / 'run.pt'
    cmd = [sys.executable, '-m', 'exp.nb_16', 'train', f'--data={text_file}', f'--out={out}', '--config=tiny', '--max_iters=100000']
    first = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):
            if out.exists(): break
            first.poll(); assert first.returncode is None, first.stderr.read()
            import time; time.sleep(0.1)
        second = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert second.returncode == 1 and 'is being written by another run' in second.stderr
    finally:
        first.kill(); first.wait()
    assert torch.load(out, weights_only=True)['format'] == CHECKPOINT_FORMAT   # the first run's, whole


def test_temporary_names_are_unique_and_stale_ones_are_cleaned(tmp_path, text_file, monkeypatch):
    names, real_save = [], torch.save
    monkeypatch.setattr(gpt16.torch, 'save', lambda obj, f: names.append(Path(f).name) or real_save(obj, f))
    save_checkpoint({'a': 1}, tmp_path / 'x.pt'); save_checkpoint({'a': 2}, tmp_path / 'x.pt')
    assert len(set(names)) == 2 and all(n.startswith('.x.pt.') and n.endswith('.tmp') for n in names), names
    stale = [tmp_path / '.run.pt.12345.tmp', tmp_path / '.run.pt.k1ll3d.tmp']   # left by writers that were killed
    for p in stale: p.write_bytes(b'half a checkpoint')
    assert cli('train', f'--data={text_file}', f'--out={tmp_path / "run.pt"}', '--config=tiny', '--max_iters=2') is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ['run.pt', 'verse.txt', 'x.pt']


def tensor_record(path):
    "(offset, size) of the largest tensor's bytes inside the zip archive torch.save wrote."
    import zipfile
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if '/data/' in i.filename), key=lambda i: i.file_size)
    raw = path.read_bytes()
    name_len, extra_len = int.from_bytes(raw[info.header_offset + 26:info.header_offset + 28], 'little'), \
                          int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], 'little')
    return info.header_offset + 30 + name_len + extra_len, info.file_size


def test_a_damaged_checkpoint_is_refused(tmp_path, trained, text_file, capsys):
    "One bit flipped in the middle of a tensor's bytes: sample and resume refuse it, instead of using the changed weights."
    start, size = tensor_record(trained)
    raw = bytearray(trained.read_bytes())
    raw[start + size // 2] ^= 0x10
    damaged = tmp_path / 'damaged.pt'
    damaged.write_bytes(bytes(raw))
    before = folder_state(tmp_path)
    for args in (('sample', f'--ckpt={damaged}', '--n=5'), ('train', f'--data={text_file}', f'--out={damaged}', '--resume', '--max_iters=40')):
        status, out, err = exit_of(capsys, *args)
        assert status == 1 and out == '' and len(err.splitlines()) == 1, err
        assert err.startswith(f"error: {damaged}: damaged: the bytes of ") and '/data/' in err, err
        assert err.endswith(' do not match their CRC-32: the file changed after it was written\n')
    assert folder_state(tmp_path) == before


def edited(good, folder, name, edit):
    ckpt = torch.load(good, weights_only=True)
    edit(ckpt)
    torch.save(ckpt, folder / name)
    return folder / name


INCONSISTENT = {   # name: (edit, the message after "error: {path}: inconsistent checkpoint: ")
    'vocab_list': (lambda c: c.update(vocab=list(c['vocab'])), 'vocab must be a str, not a list'),
    'vocab_short': (lambda c: c.update(vocab=c['vocab'][:-1]),
                    "vocab must be the 35 distinct characters of model_config's vocab_size, in order, not 34 characters"),
    'vocab_unsorted': (lambda c: c.update(vocab=c['vocab'][::-1]),
                       "vocab must be the 35 distinct characters of model_config's vocab_size, in order, not 35 characters out of order or repeated"),
    'nan_weight': (lambda c: c['model']['lm_head.weight'].__setitem__((0, 0), float('nan')),
                   'the model weight lm_head.weight is not a tensor of finite numbers'),
    'eval_interval_0': (lambda c: c['train_config'].update(eval_interval=0),
                        'TrainConfig.eval_interval must be a whole number from 1 to 1,000,000,000, not 0'),
    'iter_text': (lambda c: c.update(iter='20'), "iter must be a whole number from 0 to 1,000,000,000, not '20'"),
    'time_negative': (lambda c: c.update(train_time=-1.), 'train_time must be a finite number >= 0, not -1.0'),
    'history_rows': (lambda c: c.update(history=[1, 2]), "history must be a list of rows, each a dict with an 'iter'"),
    'config_unknown': (lambda c: c.update(config='huge'), "config must be one of tiny, cpu, lecture, not 'huge'"),
    'model_config_list': (lambda c: c.update(model_config=[1]), 'model_config must be a dict, not a list'),
    'model_config_field': (lambda c: c['model_config'].update(n_head=0), 'GPTConfig.n_head must be a whole number from 1 to 1,000,000,000, not 0'),
}


@pytest.mark.parametrize('name', INCONSISTENT)
def test_an_inconsistent_checkpoint_is_refused_in_one_line(tmp_path, trained, text_file, capsys, name):
    edit, message = INCONSISTENT[name]
    path = edited(trained, tmp_path, f'{name}.pt', edit)
    before = folder_state(tmp_path)
    for args in (('sample', f'--ckpt={path}', '--n=5'), ('train', f'--data={text_file}', f'--out={path}', '--resume', '--max_iters=40')):
        status, out, err = exit_of(capsys, *args)
        assert (status, out, err) == (1, '', f"error: {path}: inconsistent checkpoint: {message}\n"), args
    assert folder_state(tmp_path) == before


def unwritable_folder(tmp_path):
    "A folder this process cannot create files in: chmod does not stop root, /sys does."
    if os.geteuid() == 0: return Path('/sys')
    folder = tmp_path / 'read_only'
    folder.mkdir(mode=0o500)
    return folder


def test_an_unwritable_out_is_refused_before_training(tmp_path, text_file, capsys, no_training):
    folder = unwritable_folder(tmp_path)
    status, out, err = exit_of(capsys, 'train', f'--data={text_file}', f'--out={folder / "run.pt"}', '--config=tiny')
    assert status == 1 and out == '' and err == f"error: {folder / 'run.pt'}: cannot write in {folder} (Permission denied)\n"
    (tmp_path / 'a_folder').mkdir()
    status, out, err = exit_of(capsys, 'train', f'--data={text_file}', f'--out={tmp_path / "a_folder"}', '--config=tiny')
    assert status == 1 and err == f"error: {tmp_path / 'a_folder'} is a folder: give --out the checkpoint's file name\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a_folder', 'verse.txt'] and not any((tmp_path / 'a_folder').iterdir())


# ---- stop when told

@pytest.mark.parametrize('kind', ['fifo', 'device', 'folder'])
def test_data_that_is_not_a_regular_file_is_refused_at_once(tmp_path, kind):
    "A named pipe or /dev/zero would be read for ever (or until memory runs out): refused before any read."
    import resource
    data = {'fifo': tmp_path / 'pipe', 'device': Path('/dev/zero'), 'folder': tmp_path}[kind]
    if kind == 'fifo': os.mkfifo(data)
    limit = lambda: resource.setrlimit(resource.RLIMIT_DATA, (4 << 30, 4 << 30))   # so a regression fails, not the machine
    res = subprocess.run([sys.executable, '-m', 'exp.nb_16', 'train', f'--data={data}', f'--out={tmp_path / "run.pt"}', '--config=tiny'],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, preexec_fn=limit)
    what = {'fifo': 'a named pipe', 'device': 'a device', 'folder': 'a folder'}[kind]
    assert res.returncode == 1 and res.stderr == f"error: {data}: not a regular file ({what}): give a text file\n"
    assert not (tmp_path / 'run.pt').exists()


def test_ctrl_c_says_what_the_checkpoint_holds(tmp_path, text_file, capsys, monkeypatch):
    out = tmp_path / 'run.pt'
    interrupt_at(15, monkeypatch)
    status, _, err = exit_of(capsys, 'train', f'--data={text_file}', f'--out={out}', '--config=tiny', '--max_iters=20')
    assert status == 130 and err == f"interrupted at iteration 15; {out} holds iteration 10 (resume with --resume)\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ['run.pt', 'verse.txt']   # and the lock is gone


def test_sigint_stops_the_program_with_one_line(tmp_path, text_file):
    import signal, time
    out = tmp_path / 'run.pt'
    run = subprocess.Popen([sys.executable, '-m', 'exp.nb_16', 'train', f'--data={text_file}', f'--out={out}', '--config=tiny',
                            '--max_iters=100000'], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))   # as from a terminal, even if pytest was started with `&`
    try:
        for _ in range(600):
            if out.exists(): break
            time.sleep(0.1)
        time.sleep(0.5)
        run.send_signal(signal.SIGINT)
        err = run.communicate(timeout=120)[1]
    finally:
        run.kill(); run.wait()
    assert run.returncode == 130, err
    [line] = err.strip().splitlines()
    held = torch.load(out, weights_only=True)['iter']
    assert line.startswith('interrupted at iteration ') and line.endswith(f"; {out} holds iteration {held:,} (resume with --resume)")
