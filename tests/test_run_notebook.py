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


def test_save_drops_cell_ids_that_a_4_4_notebook_may_not_hold(tmp_path):
    "A cell added with nbformat.v4.new_markdown_cell has an id; saved into a 4.4 notebook it made the file invalid."
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell('# hi'), nbformat.v4.new_code_cell('1')])
    nb.nbformat_minor = 4
    assert all('id' in c for c in nb.cells)
    cleaned = rn.clean(nb, tmp_path, tmp_path)
    assert not any('id' in c for c in cleaned.cells)
    nbformat.validate(cleaned)
    nb45 = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('1')])
    assert 'id' in rn.clean(nb45, tmp_path, tmp_path).cells[0]   # 4.5 keeps its required ids


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
@pytest.mark.parametrize('signum, code', [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_stops_the_run_shuts_the_kernel_and_touches_nothing(course, keep_going, signum, code):
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
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - started < 15                   # at once, not after the cell's 60 s
    assert proc.returncode == code, (out, err)
    assert ('interrupted (Ctrl-C)' if code == 130 else 'stopped (SIGTERM)') in out
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

@pytest.mark.parametrize('flags, message', [
    (['--quick=maybe'], "--quick 'maybe'"), (['--save=sometimes'], "--save 'sometimes'"), (['--keep_going='], "--keep_going ''"),
    (['--save', 'nbs/01_a.ipynb'], "--save 'nbs/01_a.ipynb'"),   # a bare yes/no option goes after the notebooks
])
def test_bad_yes_no_values_are_one_clear_line(course, flags, message):
    nb = make_notebook(course / 'nbs/01_a.ipynb', 'open("ran.txt", "w").close()')
    result = run(nb, *flags, cwd=course)
    assert result.returncode == 2 and result.stderr == f'run_notebook: {message}: expected true/false, yes/no or 1/0\n'
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


# ---- issue 18: a command line that refuses before it acts ----

RN_OPTIONS = '(the options are --help, --quick, --save, --timeout, --keep_going, --solutions, --root)'


@pytest.mark.parametrize('flag', ['--quik', '--quic', '--keep-going', '--pdb', '--xtra=1', '-q', '--save=yes --sav'])
def test_an_unknown_or_abbreviated_flag_is_refused_before_anything_runs(course, flag):
    nb = make_notebook(course / 'nbs/01_a.ipynb', 'open("ran.txt", "w").close()')
    result = run(nb, *flag.split())
    assert result.returncode == 2 and result.stdout == ''
    assert result.stderr == f"run_notebook: unknown option {flag.split()[-1]} {RN_OPTIONS}\n"
    assert not (course / 'nbs/ran.txt').exists()


@pytest.mark.parametrize('value, message', [  # ids: the 401-digit value would make a very long test name
    ('0', "'0': expected a whole number of seconds from 1 to 1000000"),
    ('-5', "'-5': expected a whole number of seconds from 1 to 1000000"),
    ('2.5', "'2.5': expected a whole number of seconds from 1 to 1000000"),
    ('abc', "'abc': expected a whole number of seconds from 1 to 1000000"),
    ('\u00b2', "'\u00b2': expected a whole number of seconds from 1 to 1000000"),
    ('1000001', "'1000001': expected a whole number of seconds from 1 to 1000000"),
    ('1' + '0' * 400, f"'1{'0' * 400}': expected a whole number of seconds from 1 to 1000000"),
], ids=['zero', 'negative', 'fraction', 'word', 'superscript', 'too-long', 'overflow'])
def test_a_bad_timeout_is_one_line_and_nothing_runs(course, value, message):
    nb = make_notebook(course / 'nbs/01_a.ipynb', 'open("ran.txt", "w").close()')
    result = run(nb, f'--timeout={value}')
    assert result.returncode == 2 and result.stderr == f"run_notebook: --timeout {message}\n"
    assert not (course / 'nbs/ran.txt').exists()


@pytest.mark.parametrize('name', ['0x10', 'run,1', '1e3', 'None'])
def test_a_notebook_argument_reaches_the_code_as_typed(course, name):
    result = run(name, cwd=course)
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert f"FAILED {course / name}: no such notebook" in result.stderr


def test_help_describes_every_flag():
    result = run('--help')
    assert result.returncode == 0 and result.stderr == ''
    described = {m[1]: m[2] for m in re.finditer(r'^\s+(?:-\w, )?(--\w+)[^\n]*?\s{2,}(\S[^\n]*)$', result.stdout, re.MULTILINE)}
    assert set(described) == {'--help', '--quick', '--save', '--timeout', '--keep_going', '--solutions', '--root'}, result.stdout
    assert 'small data' in described['--quick'] and 'seconds' in described['--timeout'] and 'reference solution' in described['--solutions'], described


def test_flags_may_come_before_after_and_between_notebooks(course):
    nbs = [make_notebook(course / f'nbs/0{i}_a.ipynb', f'open("ran{i}.txt", "w").close()') for i in (1, 2, 3)]
    result = run(nbs[0], '--timeout', '60', nbs[1], '--quick=no', nbs[2])
    assert result.returncode == 0, result.stderr
    assert all((course / f'nbs/ran{i}.txt').exists() for i in (1, 2, 3))


# ---- issue 18: --save never clobbers an edit, a read-only notebook or another saver ----

def test_save_refuses_when_the_notebook_changed_while_it_ran(course):
    nb = make_notebook(course / 'nbs/01_a.ipynb',
                       'import json\nd = json.load(open("01_a.ipynb"))\nd["cells"].append({"cell_type": "markdown", '
                       '"metadata": {}, "source": "my edit"})\njson.dump(d, open("01_a.ipynb", "w"))')
    result = run(nb, '--save')
    edited = nb.read_text()
    assert 'my edit' in edited                                   # the edit made while it ran is still there
    assert result.returncode == 1 and status(result, '01_a.ipynb') == 'FAILED'
    assert ('01_a.ipynb: changed on disk while it ran: not saved, your version is kept (run it again to save)'
            in result.stderr), result.stderr
    assert not list(course.rglob('.*.tmp'))


def test_save_refuses_a_read_only_notebook_before_running_anything(course):
    first = make_notebook(course / 'nbs/01_a.ipynb', 'open("ran.txt", "w").close()')
    second = make_notebook(course / 'nbs/02_b.ipynb', 'open("ran.txt", "w").close()')
    second.chmod(0o444)
    before = second.read_bytes()
    try:
        result = run(first, second, '--save')
    finally:
        second.chmod(0o644)
    assert result.returncode == 1 and result.stdout == ''
    assert result.stderr == f"run_notebook: cannot save {second}: it is read-only (nothing was run)\n"
    assert not (course / 'nbs/ran.txt').exists() and second.read_bytes() == before


def test_a_second_saver_of_the_same_notebook_is_refused(course):
    nb = make_notebook(course / 'nbs/01_a.ipynb', 'import os, time\nopen("started", "w").close()\ntime.sleep(4)')
    first = subprocess.Popen([sys.executable, str(ROOT / 'run_notebook.py'), str(nb), '--save'], text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (course / 'nbs/started').exists() and time.monotonic() < deadline: time.sleep(0.1)
    second = run(nb, '--save')
    _, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert second.returncode == 1 and status(second, '01_a.ipynb') == 'FAILED'
    assert ('01_a.ipynb: another `run_notebook.py --save` is running this notebook: not run' in second.stderr), second.stderr
    assert nbformat.read(nb, as_version=4).metadata['course']['mode'] == 'full'   # the first one's save


# ---- issue 18: SIGTERM stops the run like Ctrl-C ----

def test_execute_leaves_the_processs_signal_handlers_as_it_found_them(course):
    nb = make_notebook(course / 'nbs/01_a.ipynb', 'x = 1')
    def mine(signum, frame): pass
    old = signal.signal(signal.SIGTERM, mine)
    try:
        rn.execute(nb, timeout=60, root=course)
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, old)


# ---- issue 18: paths at path boundaries, whichever folder holds them ----

@pytest.mark.parametrize('root', ['/h/u/c', '/h/u', '/w'])
def test_a_home_path_that_starts_like_the_notebook_folder_is_scrubbed(monkeypatch, root):
    monkeypatch.setenv('HOME', '/h/u')
    scrub = rn.path_scrubber(Path('/h/u/nbs') if root != '/h/u/c' else Path('/h/u/c/nbs'), Path(root))
    home = '..' if root == '/h/u' else '~'
    assert scrub('/h/u/nbs_old/x "/h/u/nbs.bak" /h/u/nbsx') == f'{home}/nbs_old/x "{home}/nbs.bak" {home}/nbsx'
