"The runner: failures reported with notebook, cell, source and error; quick mode; clean --save."
import os, re, signal, subprocess, sys, time
from pathlib import Path

import nbformat, pytest

import run_notebook as rn
from conftest import ROOT, make_notebook, run_cli


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
    make_notebook(course / 'nbs/01_bad.ipynb', 'raise ValueError("boom")')
    make_notebook(course / 'nbs/02_good.ipynb', 'open("ran.txt", "w").close()')
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
    assert set(saved.metadata) == {'kernelspec', 'language_info', 'course'}
    first = nb.read_text()
    assert run(nb, '--save').returncode == 0
    assert nb.read_text() == first                         # a second run changes nothing


def test_failed_run_does_not_save(course):
    nb = make_notebook(course / 'nbs/01_fail.ipynb', 'print("hi")', '1/0')
    before = nb.read_text()
    assert run(nb, '--save').returncode != 0
    assert nb.read_text() == before


# ---- issue 10 item 5: --save removes machine paths, whole prefixes at path boundaries only ----

def saved_outputs(cell_outputs, nb_dir, root):
    "Run clean() on one code cell holding these outputs; return the cleaned outputs."
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('x', outputs=cell_outputs)])
    return rn.clean(nb, nb_dir, root).cells[0].outputs


def test_scrub_replaces_whole_paths_only_in_every_text_output(tmp_path, monkeypatch):
    root, nb_dir = tmp_path / 'course', tmp_path / 'course/nbs'
    monkeypatch.setenv('HOME', '/')                       # a home of / must not eat every slash
    text = (f"epoch 3/10, https://a/b, {nb_dir}/data.txt, {nb_dir}_backup/file, {root}/exp/nb_01.py, "
            f"'{nb_dir}', {nb_dir}. x{nb_dir}/y {root}.old {sys.prefix}/bin/python\n")
    want = ("epoch 3/10, https://a/b, ./data.txt, ../nbs_backup/file, ../exp/nb_01.py, "   # not ._backup
            f"'.', .. x{nb_dir}/y {root}.old <python>/bin/python\n")
    new = nbformat.v4.new_output
    outputs = saved_outputs([
        new('stream', name='stdout', text=text),
        new('display_data', data={'text/plain': text, 'text/html': f'<a href="{nb_dir}/f.png">{text}</a>',
                                  'text/markdown': text, 'text/latex': text, 'image/svg+xml': f'<svg>{text}</svg>',
                                  'application/json': {'path': text, 'list': [text, 3]}, 'image/png': 'iVBOR/a/b'}),
        new('error', ename='OSError', evalue=text, traceback=[f'\x1b[0;32m{nb_dir}/x.py\x1b[0m in f()', text]),
    ], nb_dir, root)
    assert outputs[0].text == want
    data = outputs[1].data
    assert data['text/plain'] == data['text/markdown'] == data['text/latex'] == want
    assert data['text/html'] == f'<a href="./f.png">{want}</a>' and data['image/svg+xml'] == f'<svg>{want}</svg>'
    assert data['application/json'] == {'path': want, 'list': [want, 3]} and data['image/png'] == 'iVBOR/a/b'
    assert outputs[2].evalue == want and outputs[2].traceback == ['\x1b[0;32m./x.py\x1b[0m in f()', want]


def test_home_is_replaced_when_it_is_a_real_folder(tmp_path, monkeypatch):
    monkeypatch.setenv('HOME', str(tmp_path / 'me'))
    out = saved_outputs([nbformat.v4.new_output('stream', name='stdout', text=f'{tmp_path}/me/.cache/x {tmp_path}/me2\n')],
                        tmp_path / 'c/nbs', tmp_path / 'c')
    assert out[0].text == f'~/.cache/x {tmp_path}/me2\n'


# ---- issue 10 item 10: Ctrl-C stops the whole run at once ----

@pytest.mark.parametrize('keep_going', [False, True])
def test_ctrl_c_stops_the_run_shuts_the_kernel_and_touches_nothing(course, keep_going):
    first = make_notebook(course / 'nbs/01_sleep.ipynb', 'import os\nopen("kernel.pid", "w").write(str(os.getpid()))',
                          'import time\ntime.sleep(60)')
    second = make_notebook(course / 'nbs/02_next.ipynb', 'open("ran.txt", "w").close()')
    before = {p: p.read_bytes() for p in (first, second)}
    args = ['--root', str(course), '--save'] + (['--keep_going'] if keep_going else [])
    proc = subprocess.Popen([sys.executable, str(ROOT / 'run_notebook.py'), *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pid_file = course / 'nbs/kernel.pid'
    deadline = time.monotonic() + 120
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert pid_file.exists(), proc.communicate()
    time.sleep(1)                                            # the kernel is inside time.sleep(60)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - started < 15                   # at once, not after the cell's 60 s
    assert proc.returncode == 130, (out, err)
    assert 'interrupted' in out + err
    assert 'Traceback' not in err and 'Task exception' not in err and 'never retrieved' not in err, err
    assert {p: p.read_bytes() for p in (first, second)} == before
    assert not (course / 'nbs/ran.txt').exists()             # the rest of the run did not happen
    assert not list(course.rglob('.*.tmp'))
    kernel = int(pid_file.read_text())
    for _ in range(50):
        if not Path(f'/proc/{kernel}').exists() or 'Z' in Path(f'/proc/{kernel}/stat').read_text().split()[2]: break
        time.sleep(0.2)
    else:
        os.kill(kernel, signal.SIGKILL)
        pytest.fail(f'kernel {kernel} still running after the run ended')


# ---- issue 10 item 11: --timeout and --quick values ----

@pytest.mark.parametrize('flag, message', [('--timeout=abc', "--timeout 'abc': expected a whole number of seconds"),
                                           ('--timeout=0', '--timeout 0: expected a whole number of seconds'),
                                           ('--timeout=2.5', '--timeout 2.5: expected a whole number of seconds'),
                                           ('--quick=maybe', "--quick 'maybe': expected true/false, yes/no or 1/0"),
                                           ('--save=sometimes', "--save 'sometimes': expected true/false")])
def test_bad_option_values_are_one_clear_line(course, flag, message):
    nb = make_notebook(course / 'nbs/01_a.ipynb', 'open("ran.txt", "w").close()')
    result = run(nb, flag)
    assert result.returncode != 0 and 'Traceback' not in result.stderr and 'TraitError' not in result.stderr
    assert result.stderr.splitlines()[0].startswith(f'run_notebook: {message}')
    assert not (course / 'nbs/ran.txt').exists()


def test_quick_no_means_full_mode(course):
    nb = make_notebook(course / 'nbs/01_q.ipynb', 'import os\nopen("mode.txt", "w").write(os.environ["COURSE_QUICK"])')
    result = run(nb, '--quick=no', '--timeout=60')
    assert result.returncode == 0, result.stderr
    assert (course / 'nbs/mode.txt').read_text() == '0' and 'full mode' in result.stdout


def test_a_notebook_given_by_path_imports_its_own_courses_exp(course):
    (course / 'exp/__init__.py').write_text('')
    (course / 'exp/nb_00.py').write_text('WHERE = "the tmp course"\n')
    nb = make_notebook(course / 'nbs/01_a.ipynb', 'from exp.nb_00 import WHERE\nassert WHERE == "the tmp course", WHERE')
    result = run(nb)
    assert result.returncode == 0, result.stderr
