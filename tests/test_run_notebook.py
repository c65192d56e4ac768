"The runner: failures reported with notebook, cell, source and error; quick mode; clean --save."
import json, os, re
from pathlib import Path

import nbformat, pytest

from conftest import make_notebook, run_cli


def run(*args, **kw):
    return run_cli('run_notebook.py', *args, **kw)


def status(result, name):
    "The status column of the summary table for one notebook."
    row = next(line for line in result.stdout.splitlines() if line.startswith(name + ' '))
    return re.match(r'\S+\s+(ok|FAILED|not run)\s', row)[1]


def test_good_notebook_runs_in_its_own_folder_from_anywhere(course, tmp_path):
    (course / 'nbs/data.txt').write_text('found me')
    nb = make_notebook(course / 'nbs/01_ok.ipynb', 'print(open("data.txt").read())', 'x = 1 + 1')
    result = run(nb, cwd=tmp_path)   # started from elsewhere
    assert result.returncode == 0, result.stderr
    assert status(result, '01_ok.ipynb') == 'ok' and 'full mode' in result.stdout


def test_first_failing_cell_reported_and_later_cells_not_run(course):
    nb = make_notebook(course / 'nbs/02_bad.ipynb', 'md:# Title', 'a = 1',
                       'b = a + 1\nc = b / 0\nprint("unreached")', 'open("ran.txt", "w")')
    result = run(nb)
    assert result.returncode != 0
    err = result.stderr
    assert '02_bad.ipynb, cell 3' in err and '| c = b / 0' in err and 'ZeroDivisionError' in err
    assert not (course / 'nbs/ran.txt').exists()
    assert status(result, '02_bad.ipynb') == 'FAILED'


def test_stops_at_first_failing_notebook_unless_keep_going(course):
    bad = make_notebook(course / 'nbs/01_bad.ipynb', 'raise ValueError("boom")')
    good = make_notebook(course / 'nbs/02_good.ipynb', 'open("ran.txt", "w").close()')
    result = run('--root', course)
    assert result.returncode != 0 and status(result, '02_good.ipynb') == 'not run'
    assert not (course / 'nbs/ran.txt').exists()
    result = run('--root', course, '--keep_going')
    assert result.returncode != 0 and status(result, '02_good.ipynb') == 'ok' and status(result, '01_bad.ipynb') == 'FAILED'
    assert 'ValueError: boom' in result.stderr


def test_runs_all_numbered_notebooks_in_reading_order(course):
    for name in ['10_last', '02_second', '01_first', 'scratch']:
        make_notebook(course / f'nbs/{name}.ipynb', f'open("order.txt", "a").write("{name} ")')
    result = run('--root', course)
    assert result.returncode == 0, result.stderr
    assert (course / 'nbs/order.txt').read_text() == '01_first 02_second 10_last '


def test_quick_flag_reaches_the_kernel(course):
    nb = make_notebook(course / 'nbs/01_q.ipynb', 'import os\nopen("mode.txt", "w").write(os.environ["COURSE_QUICK"])')
    assert run(nb, '--quick').returncode == 0
    assert (course / 'nbs/mode.txt').read_text() == '1'
    assert run(nb).returncode == 0
    assert (course / 'nbs/mode.txt').read_text() == '0'


def test_timeout_is_a_flag_and_reported(course):
    nb = make_notebook(course / 'nbs/01_slow.ipynb', 'x = 1', 'import time\ntime.sleep(30)')
    result = run(nb, '--timeout', 3)
    assert result.returncode != 0
    assert '01_slow.ipynb, cell 2' in result.stderr and 'longer than 3 s' in result.stderr


def test_dead_kernel_is_reported(course):
    nb = make_notebook(course / 'nbs/01_dies.ipynb', 'import os\nos._exit(1)')
    result = run(nb, '--timeout', 60)
    assert result.returncode != 0 and '01_dies.ipynb, cell 1' in result.stderr and 'died' in result.stderr
    assert 'Traceback' not in result.stderr


@pytest.mark.parametrize('content, message', [(None, 'no such notebook'), ('{"cells": [', 'not a valid notebook'),
                                              ('{"hello": 1}', 'not a valid notebook')])
def test_bad_files_give_a_clear_message(course, content, message):
    path = course / 'nbs/05_x.ipynb'
    if content is not None: path.write_text(content)
    result = run(path)
    assert result.returncode != 0 and message in result.stderr and 'Traceback' not in result.stderr


def test_save_writes_outputs_with_clean_metadata(course):
    nb = make_notebook(course / 'nbs/01_save.ipynb', 'import os\nprint(os.getcwd())', '6 * 7',
                       'import matplotlib.pyplot as plt\nplt.plot([1, 2]); plt.show()')
    result = run(nb, '--save')
    assert result.returncode == 0, result.stderr
    saved = nbformat.read(nb, as_version=4)
    assert saved.cells[0].outputs[0].text.strip() == '.'       # the notebook's folder, not a machine path
    assert str(course) not in nb.read_text()              # no machine path survives
    assert saved.cells[1].outputs[0].data['text/plain'] == '42'
    assert all(c.execution_count is None for c in saved.cells)
    assert all('execution_count' not in o or o.execution_count is None for c in saved.cells for o in c.outputs)
    assert any('image/png' in o.get('data', {}) for o in saved.cells[2].outputs)   # inline plot, no window
    assert set(saved.metadata) == {'kernelspec', 'language_info'}
    first = nb.read_text()
    assert run(nb, '--save').returncode == 0
    assert nb.read_text() == first                         # a second run changes nothing


def test_failed_run_does_not_save(course):
    nb = make_notebook(course / 'nbs/01_fail.ipynb', 'print("hi")', '1/0')
    before = nb.read_text()
    assert run(nb, '--save').returncode != 0
    assert nb.read_text() == before
