#!/usr/bin/env python
"""Run course notebooks top to bottom, each in a fresh kernel, as a test.

    python run_notebook.py                          # every numbered notebook, in reading order
    python run_notebook.py nbs/01_matmul.ipynb      # one (or several) notebooks
    python run_notebook.py --quick                  # smoke-test mode: small data, few iterations
    python run_notebook.py --save                   # write the outputs back into the notebooks
    python run_notebook.py --timeout 900 --keep_going

Each notebook runs with its own folder as working directory. The first failing cell stops
that notebook: its number, source and error are printed. Without --keep_going the run stops
there too. A summary table closes every run; the exit status is non-zero if anything failed.
"""
import os, re, subprocess, sys, time
from pathlib import Path

import fire, nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from notebook2script import ROOT, numbered_notebooks

QUICK_ENV = 'COURSE_QUICK'   # read by exp.nb_00.is_quick()
ANSI = re.compile(r'\x1b\[[0-9;]*[A-Za-z]')


class RunFailure(Exception):
    "A notebook could not be run to the end; the message says where and why."


def kernel_env(quick, root):
    env = {QUICK_ENV: '1' if quick else '0', 'MPLBACKEND': 'module://matplotlib_inline.backend_inline',
           'PYTHONPATH': os.pathsep.join(filter(None, [str(root), os.environ.get('PYTHONPATH')]))}
    return env


def describe_failure(path, nb, index, error):
    "The notebook, cell number (counting every cell from 1), the cell's source and the error."
    cell = nb.cells[index]
    source = '\n'.join('    | ' + line for line in cell.source.splitlines())
    return f"{path.name}, cell {index + 1}:\n{source}\n{error}"


def error_text(cell):
    for out in cell.get('outputs', []):
        if out.output_type == 'error':
            tb = ANSI.sub('', '\n'.join(out.traceback)).strip().splitlines()
            return '\n'.join(tb[-12:])
    return ''


def execute(path, quick=False, timeout=1800, root=ROOT):
    "Run one notebook in a fresh kernel; return it with its outputs, or raise RunFailure."
    try:
        nb = nbformat.read(path, as_version=4)
    except FileNotFoundError:
        raise RunFailure(f"{path}: no such notebook") from None
    except Exception as e:
        raise RunFailure(f"{path}: not a valid notebook ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    client = NotebookClient(nb, kernel_name='python3', timeout=timeout, record_timing=False,
                            resources={'metadata': {'path': str(path.parent)}})
    current = {'index': 0}
    client.on_cell_start = lambda cell, cell_index: current.update(index=cell_index)
    saved = {k: os.environ.get(k) for k in kernel_env(quick, root)}
    os.environ.update(kernel_env(quick, root))   # the kernel inherits this process's environment
    try:
        # The kernel's own log (not the notebook's output, which comes over IOPub) is noise here.
        client.execute(stderr=subprocess.DEVNULL)
    except CellTimeoutError:
        raise RunFailure(describe_failure(path, nb, current['index'], f"Timeout: the cell ran longer than {timeout} s (raise --timeout)")) from None
    except DeadKernelError as e:
        raise RunFailure(describe_failure(path, nb, current['index'], f"The kernel died: {e}")) from None
    except CellExecutionError as e:
        i = current['index']
        raise RunFailure(describe_failure(path, nb, i, error_text(nb.cells[i]) or ANSI.sub('', str(e)))) from None
    except Exception as e:
        raise RunFailure(f"{path.name}: could not run ({type(e).__name__}: {e})") from None
    finally:
        for k, v in saved.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v
    return nb


def scrub(text, nb_dir, root):
    "Replace machine paths in an output with portable ones (relative to the notebook where possible)."
    for path, short in ((str(nb_dir), '.'), (str(root), os.path.relpath(root, nb_dir)),
                        (sys.prefix, '<python>'), (str(Path.home()), '~')):
        text = text.replace(path, short)
    return text


def clean(nb, nb_dir, root):
    "Strip what changes from run to run: execution counts, timings, machine paths."
    nb.metadata = {'kernelspec': {'display_name': 'Python 3', 'language': 'python', 'name': 'python3'},
                   'language_info': {'name': 'python'}}
    for cell in nb.cells:
        cell.metadata.pop('execution', None)
        if cell.cell_type != 'code': continue
        cell.execution_count = None
        for out in cell.outputs:
            if 'execution_count' in out: out.execution_count = None
            if 'text' in out: out.text = scrub(out.text, nb_dir, root)
            for key in ('text/plain', 'text/html'):
                if key in out.get('data', {}): out.data[key] = scrub(out.data[key], nb_dir, root)
    return nb


def write_back(nb, path, root):
    tmp = path.with_name(f'.{path.name}.tmp')
    nbformat.write(clean(nb, path.parent, root), tmp)
    os.replace(tmp, path)


def run(*notebooks, quick=False, save=False, timeout=1800, keep_going=False, root=str(ROOT)):
    root = Path(root).resolve()
    paths = [Path(n).resolve() for n in notebooks] or numbered_notebooks(root / 'nbs')
    if not paths:
        print(f"run_notebook: no numbered notebooks in {root / 'nbs'}", file=sys.stderr)
        sys.exit(1)
    results, failed = [], False
    for path in paths:
        if failed and not keep_going:
            results.append((path.name, 'not run', 0.0)); continue
        print(f"running {path.name}{' (quick)' if quick else ''} ...", flush=True)
        start = time.perf_counter()
        try:
            nb = execute(path, quick=quick, timeout=timeout, root=root)
            if save: write_back(nb, path, root)
            status = 'ok'
        except RunFailure as e:
            print(f"FAILED {e}\n", file=sys.stderr, flush=True)
            status, failed = 'FAILED', True
        results.append((path.name, status, time.perf_counter() - start))
    print(summary(results, quick))
    if failed: sys.exit(1)


def summary(results, quick):
    width = max(len(name) for name, *_ in results)
    lines = [f"{'notebook':<{width}}  status   seconds  ({'quick' if quick else 'full'} mode)"]
    lines += [f"{name:<{width}}  {status:<7}  {secs:7.1f}" for name, status, secs in results]
    return '\n'.join(lines)


def main(): fire.Fire(run)


if __name__ == '__main__': main()
