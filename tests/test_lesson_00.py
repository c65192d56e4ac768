"""Checks moved out of the lessons of 00_exports and 00a_data (one representative of each stays in the notebook):
the timer's turn-taking, a headline that misses its bar, the IDX reader's refusals, the arithmetic of exercise
00a.1 against the real file; and the layout those two notebooks and nbs/RULES.md promise."""
import hashlib, re, struct

import nbformat, pytest

import exp.nb_00 as nb_00
import exp.nb_00a as data
from conftest import ROOT
from notebook2script import numbered_notebooks


# ---- 00: the timer and the headline ----

def test_time_rounds_takes_turns_and_rotates_the_order():
    now, calls = [0], []
    def tick(name, cost): calls.append(name); now[0] += cost
    times = nb_00.time_rounds({'fast': lambda: tick('f', 1), 'slow': lambda: tick('s', 20)},
                              rounds=4, number=2, warmup=1, clock=lambda: now[0])
    assert [len(v) for v in times.values()] == [4, 4]
    assert len(calls) == 2 * (1 + 4 * 2)                 # warm-up plus rounds x number, for each
    assert calls[:2] == ['f', 's']                       # the warm-up, once each
    assert calls[2:6] == ['f', 'f', 's', 's']            # round 0: fast first ...
    assert calls[6:10] == ['s', 's', 'f', 'f']           # ... round 1: the order rotates
    assert times == {'fast': [1, 1, 1, 1], 'slow': [20, 20, 20, 20]}
    assert nb_00.median_ratio(times, 'slow', 'fast') == 20
    assert nb_00.median_ratio({'a': [2, 4, 9], 'b': [1, 1, 1]}, 'a', 'b') == 4   # the median, not the mean (5)


def test_a_headline_that_misses_its_bar_stops_a_full_run_and_quick_mode_skips_it(monkeypatch, capsys):
    monkeypatch.setenv(nb_00.QUICK_ENV, '0')
    with pytest.raises(AssertionError, match=re.escape('Headline result not reached: loss 2.5 (bar: below 2.0)')):
        nb_00.check_headline('loss 2.5', 2.5 < 2.0, 'below 2.0')
    nb_00.check_headline('loss 1.5', True, 'below 2.0')   # outside IPython it prints
    assert capsys.readouterr().out == 'headline: loss 1.5 (bar: below 2.0)\n'
    monkeypatch.setenv(nb_00.QUICK_ENV, '1')
    assert nb_00.check_headline('loss 2.5', False, 'below 2.0') is None   # quick mode: nothing asserted, nothing shown
    assert capsys.readouterr().out == ''


# ---- 00a: the IDX reader's refusals (the notebook keeps the short payload) ----

IMAGES_HEADER = bytes([0, 0, 8, 3])

@pytest.mark.parametrize('raw, ndim, message', [
    (IMAGES_HEADER + struct.pack('>3I', 2, 28, 28) + bytes(100), None,
     'header says (2, 28, 28) = 1,568 bytes, the file has 100'),
    (IMAGES_HEADER + struct.pack('>2I', 2, 28), None, 'IDX header truncated: 3 dimensions need 16 header bytes, the file has 12'),
    (bytes([0, 0, 8, 1]) + struct.pack('>I', 2) + bytes(2), 3, 'has 1 dimensions (magic 0x00000801), expected 3'),
    (b'PK\x03\x04not an idx file', None, 'not an unsigned-byte IDX file (magic 0x504b0304'),
    (bytes([0, 0]), None, 'too short to be an IDX file (2 bytes'),
])
def test_read_idx_refuses_bad_files_with_one_clear_line(tmp_path, raw, ndim, message):
    bad = tmp_path / 'bad-images-idx3-ubyte'
    bad.write_bytes(raw)
    with pytest.raises(ValueError, match=re.escape(message)): data.read_idx(bad, ndim=ndim)


def test_a_file_that_is_not_the_right_one_fails_verification_and_names_are_checked(tmp_path):
    bad = tmp_path / 'names.txt'
    bad.write_bytes(b'PK\x03\x04not an idx file')
    assert data.verify(bad, data.SOURCES['names']['names.txt'][1]) is False
    with pytest.raises(data.DataError, match='unknown data file names/nope.txt'): data.get_file('names', 'nope.txt')
    with pytest.raises(ValueError, match="kind must be 'fashion' or 'digits', not 'kmnist'"): data.load_mnist('kmnist')


# ---- 00a: exercise 00a.1's arithmetic is what _digest really does ----

def test_the_digest_of_the_training_images_takes_45_updates(monkeypatch):
    from exercises import nb_00a
    path = data.get_file('fashion-mnist', 'train-images-idx3-ubyte.gz')
    updates, new = [], hashlib.new
    class Counting:
        def __init__(self, algo): self.h = new(algo)
        def update(self, block): updates.append(len(block)); self.h.update(block)
        def hexdigest(self): return self.h.hexdigest()
    monkeypatch.setattr(data.hashlib, 'new', Counting)
    assert data.verify(path, data.SOURCES['fashion-mnist']['train-images-idx3-ubyte.gz'][1])
    truth = nb_00a.size_truths()
    assert len(updates) == truth['h.update calls when get_file verifies the training images'] == 45
    assert sum(updates) == truth['bytes in train-images-idx3-ubyte, decompressed'] == 47_040_016
    assert updates[:-1] == [1 << 20] * 44 and updates[-1] == 47_040_016 - 44 * (1 << 20)


# ---- the layout of 00 and 00a, and the rules table ----

def sections(stem):
    "The markdown cells of a notebook, as (index, source)."
    nb = nbformat.read(ROOT / 'nbs' / f'{stem}.ipynb', as_version=4)
    return [(i, c.source) for i, c in enumerate(nb.cells) if c.cell_type == 'markdown'], len(nb.cells)


@pytest.mark.parametrize('stem, next_stem', [('00_exports', '00a_data'), ('00a_data', '01_matmul')])
def test_lesson_then_what_we_built_then_exercises_then_appendix_then_next(stem, next_stem):
    cells, n = sections(stem)
    first = cells[0][1]
    assert cells[0][0] == 0 and 'What it teaches' in first and 'What it assumes' in first
    assert '[what we may use now](RULES.md)' in first
    def where(prefix): return next(i for i, s in cells if s.startswith(prefix))
    assert where('## What we built') < where('## Exercise') < where("## Appendix: how the course's machinery works")
    last_index, last = cells[-1]
    assert last_index == n - 1 and last.startswith(f'Next: [{next_stem}]({next_stem}.ipynb)')


def test_the_rules_table_has_one_row_per_notebook_in_order():
    text = (ROOT / 'nbs' / 'RULES.md').read_text()
    rows = re.findall(r'^\| \[(\w+)\]\((\w+)\.ipynb\) \|', text, re.MULTILINE)
    assert all(a == b for a, b in rows)
    assert [a for a, _ in rows] == [p.stem for p in numbered_notebooks(ROOT / 'nbs')]
