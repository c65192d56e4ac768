"The command line of exp.nb_16: train, resume exactly, sample; every bad input refused with one message, nothing written."
import os, subprocess, sys
from pathlib import Path

import pytest, torch

from conftest import ROOT
import exp.nb_16 as gpt16
from exp.nb_16 import CHECKPOINT_FORMAT, load_checkpoint, main, sample_text, save_checkpoint, train_gpt

# A small text with a small vocabulary, long enough for the 'tiny' config (block 16: 170 characters at least).
VERSE = ("Shall I compare thee to a summer's day?\nThou art more lovely and more temperate:\n"
         "Rough winds do shake the darling buds of May,\nAnd summer's lease hath all too short a date;\n")


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / 'verse.txt'
    path.write_text(VERSE * 6)
    return path


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


@pytest.mark.parametrize('args, message', [
    (('--config=huge',), "--config='huge': the configurations are tiny, cpu, lecture"),
    (('--config=tiny', '--max_iters=-3'), '--max_iters must be a whole number >= 0, not -3'),
    (('--config=tiny', '--max_iters=many'), "--max_iters must be a whole number >= 0, not 'many'"),
    (('--config=tiny', '--resume=maybe'), "--resume takes no value (or true/false), not 'maybe'"),
])
def test_bad_flags_are_refused(tmp_path, text_file, args, message):
    before = folder_state(tmp_path)
    err = cli('train', f'--data={text_file}', f'--out={tmp_path / "new.pt"}', *args)
    assert err == f'error: {message}'
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


@pytest.mark.parametrize('args, message', [
    (('--prompt=O Zephyr!',), "--prompt='O Zephyr!': '!OZ': not in the vocabulary of 35 characters"),
    (('--prompt=',), '--prompt is empty'),
    (('--n=-1',), '--n must be a whole number >= 0, not -1'),
    (('--n=ten',), "--n must be a whole number >= 0, not 'ten'"),
    (('--seed=1.5',), '--seed must be a whole number >= 0, not 1.5'),
])
def test_bad_sample_arguments_are_refused(tmp_path, trained, args, message, capsys):
    before = folder_state(tmp_path)
    err = cli('sample', f'--ckpt={trained}', *args)
    assert err is not None and err.startswith(f'error: {message}'), err
    assert capsys.readouterr().out == '' and folder_state(tmp_path) == before


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


def test_an_interrupted_run_keeps_its_last_checkpoint(tmp_path, text_file, monkeypatch):
    out = tmp_path / 'run.pt'
    real_step = gpt16.GPTTrainer.step
    def step(self):
        if self.iter == 15: raise KeyboardInterrupt
        return real_step(self)
    monkeypatch.setattr(gpt16.GPTTrainer, 'step', step)
    with pytest.raises(KeyboardInterrupt):
        train_gpt(text_file, out, config='tiny', max_iters=20, log=None)
    assert load_checkpoint(out)['iter'] == 10   # the evaluation at 10 wrote it; nothing half-written after
    assert sorted(p.name for p in tmp_path.iterdir()) == ['run.pt', 'verse.txt']
