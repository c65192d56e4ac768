#!/usr/bin/env python
"""Run course notebooks top to bottom, each in a fresh kernel, as a test.

    python run_notebook.py                          # every numbered notebook, in reading order
    python run_notebook.py nbs/01_matmul.ipynb      # one (or several) notebooks
    python run_notebook.py --quick                  # smoke-test mode: small data, few iterations
    python run_notebook.py --save                   # write the outputs back into the notebooks
    python run_notebook.py --timeout 900 --keep_going
    python run_notebook.py --solutions              # every exercise filled in with its reference solution (never saved)

Each notebook runs with its own folder as working directory. The first failing cell stops
that notebook: its number, source and error are printed. Without --keep_going the run stops
there too. A summary table closes every run; the exit status is non-zero if anything failed.
Ctrl-C or SIGTERM stops the whole run: the kernel is shut down, no notebook is written, exit
status 130 (Ctrl-C) or 143 (SIGTERM).

The command line is notebook2script's strict one: an unknown or abbreviated option, a yes/no
option that is not true/false, yes/no or 1/0, or a --timeout that is not a whole number of
seconds from 1 to 1000000 is refused (exit status 2) before anything runs.

--save also records, in the notebook's metadata under 'course', the mode it ran in, a digest
of its code and of the exp modules it imports (`code_digest`), and its headline results, so a
test can tell when saved outputs are stale (tests/test_saved_outputs.py). It never clobbers:
a read-only notebook is refused before anything runs, a notebook another `--save` is running
is refused (a lock on the file), and a notebook edited while it ran is left as edited.
"""
import argparse, ast, asyncio, fcntl, hashlib, os, re, signal, subprocess, sys, time
from contextlib import contextmanager, nullcontext
from pathlib import Path

def stopped_while_loading(signum, frame):
    print("interrupted", file=sys.stderr)
    sys.exit(128 + signum)

if __name__ == '__main__':   # the imports below take seconds
    for signum in (signal.SIGINT, signal.SIGTERM): signal.signal(signum, stopped_while_loading)

import nbformat
from IPython.core.inputtransformer2 import TransformerManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from exercises import fill_solutions
from exp.nb_00 import HEADLINE_MIME
from notebook2script import ROOT, cli, numbered_notebooks, write_atomic, yes_no

QUICK_ENV = 'COURSE_QUICK'   # read by exp.nb_00.is_quick()
ANSI = re.compile(r'\x1b\[[0-9;]*[A-Za-z]')
EXP_MODULE = re.compile(r'exp\.(nb_\w+)')
EXERCISES = re.compile(r'exercises(\.nb_\w+)?')                      # the exercise checks a notebook imports ...
CHECK_CALL = re.compile(r'''check_exercise\(\s*['"]([0-9]+[a-z]*)\.''')   # ... and those it loads by exercise number
PROVENANCE = re.compile(rb'^# nbs/[^\n]*\.ipynb, cell \d+\n', re.M)   # notebook2script's line above each exported cell
MAX_TIMEOUT = 1_000_000   # seconds (11.5 days); a much larger one overflows the event loop's clock
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunFailure(Exception):
    "A notebook could not be run to the end; the message says where and why."


class Stop(KeyboardInterrupt):
    "Ctrl-C or SIGTERM: stop the whole run now."
    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def raise_stop(signum, frame): raise Stop(signum)


class Client(NotebookClient):
    """nbclient's client, except that Ctrl-C and SIGTERM cancel the run: nbclient's own handler kills the kernel
    under it, which reads as a failed cell (and --keep_going would carry on and save)."""
    stopped_by = None

    async def async_start_new_kernel(self, **kwargs):
        # nbclient has just set its handlers and has not awaited since, so none can have fired: replace them.
        task = asyncio.current_task()
        def stop(signum):
            self.stopped_by, self.shutdown_kernel = signum, 'immediate'
            if not task.cancelling(): task.cancel()
        for signum in STOP_SIGNALS: asyncio.get_running_loop().add_signal_handler(signum, stop, signum)
        await super().async_start_new_kernel(**kwargs)


def kernel_env(quick, root):
    env = {QUICK_ENV: '1' if quick else '0', 'MPLBACKEND': 'module://matplotlib_inline.backend_inline',
           'PYTHONPATH': os.pathsep.join(filter(None, [str(root), os.environ.get('PYTHONPATH')]))}
    return env


def describe_failure(path, nb, index, error):
    "The notebook, cell number (counting every cell from 1), the cell's source and the error."
    cell = nb.cells[index]
    source = '\n'.join('    | ' + line for line in cell.source.split('\n'))
    return f"{path.name}, cell {index + 1}:\n{source}\n{error}"


def error_text(cell):
    for out in cell.get('outputs', []):
        if out.output_type == 'error':
            tb = ANSI.sub('', '\n'.join(out.traceback)).strip().splitlines()
            return '\n'.join(tb[-12:])
    return ''


def execute(path, quick=False, timeout=1800, root=ROOT, solutions=False):
    """Run one notebook in a fresh kernel; return it with its outputs, or raise RunFailure (KeyboardInterrupt on Ctrl-C).
    `solutions`: each exercise's starter cell replaced by its reference solution from root/solutions first."""
    try:
        nb = nbformat.read(path, as_version=4)
    except FileNotFoundError:
        raise RunFailure(f"{path}: no such notebook") from None
    except Exception as e:
        raise RunFailure(f"{path}: not a valid notebook ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    if solutions:
        try: fill_solutions(nb, path, Path(root) / 'solutions')
        except ValueError as e: raise RunFailure(str(e)) from None
    client = Client(nb, kernel_name='python3', timeout=timeout, record_timing=False,
                    resources={'metadata': {'path': str(path.parent)}})
    current = {'index': 0}
    client.on_cell_start = lambda cell, cell_index: current.update(index=cell_index)
    saved = {k: os.environ.get(k) for k in kernel_env(quick, root)}
    os.environ.update(kernel_env(quick, root))   # the kernel inherits this process's environment
    handlers = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}   # asyncio resets them to the defaults
    try:
        # The kernel's own log (not the notebook's output, which comes over IOPub) is noise here.
        asyncio.run(client.async_execute(stderr=subprocess.DEVNULL))
    except BaseException as e:
        if client.stopped_by: raise Stop(client.stopped_by) from None
        if isinstance(e, KeyboardInterrupt): raise
        if isinstance(e, CellTimeoutError):
            raise RunFailure(describe_failure(path, nb, current['index'], f"Timeout: the cell ran longer than {timeout} s (raise --timeout)")) from None
        if isinstance(e, DeadKernelError):
            raise RunFailure(describe_failure(path, nb, current['index'], f"The kernel died: {e}")) from None
        if isinstance(e, CellExecutionError):
            i = current['index']
            raise RunFailure(describe_failure(path, nb, i, error_text(nb.cells[i]) or ANSI.sub('', str(e)))) from None
        if isinstance(e, Exception): raise RunFailure(f"{path.name}: could not run ({type(e).__name__}: {e})") from None
        raise
    finally:
        for k, v in saved.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v
        for signum, handler in handlers.items():
            if handler is not None: signal.signal(signum, handler)
    return nb


def path_scrubber(nb_dir, root):
    "A function that replaces machine paths by portable ones: whole paths only, never a bare `/`."
    short = {}
    for path, name in ((nb_dir, '.'), (root, os.path.relpath(root, nb_dir)), (sys.prefix, '<python>'), (Path.home(), '~')):
        for spelling in {str(Path(path)), os.path.realpath(path)}:
            if Path(spelling).parent != Path(spelling): short.setdefault(spelling, name)
    if not short: return lambda text: text
    longest_first = '|'.join(map(re.escape, sorted(short, key=len, reverse=True)))
    # A path starts after a character that cannot be part of a path (or after a colour code, in tracebacks)
    # and ends where no name character follows: `/x/nbs` is not the start of `/x/nbs_backup`.
    pattern = re.compile(rf'(^|[^\w.~/-]|\x1b\[[0-9;]*m)({longest_first})(?![\w~-]|\.\w)')
    return lambda text: pattern.sub(lambda m: m[1] + short[m[2]], text)


def scrub_value(value, scrub):
    "Scrub every string in an output value (a string, or the lists and dicts of JSON output)."
    if isinstance(value, str): return scrub(value)
    if isinstance(value, list): return [scrub_value(v, scrub) for v in value]
    if isinstance(value, dict): return {k: scrub_value(v, scrub) for k, v in value.items()}
    return value


def is_text(mime):
    "Text and JSON outputs; the rest (image/png, ...) are base64 data that no path can be in."
    return mime.startswith('text/') or mime in ('image/svg+xml', 'application/javascript') or mime.endswith('json')


def imported_exp_modules(source):
    """The exp modules a cell or module imports, by name: `from exp.nb_03 import *`, `import exp.nb_03 as m`, `from exp import nb_03`;
    and the exercises modules it imports (`exercises`, `exercises.nb_11`)."""
    try: tree = ast.parse(TransformerManager().transform_cell(source))   # magics become Python calls
    except SyntaxError: return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import): names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = 'exp' + (f'.{node.module}' if node.module else '') if node.level == 1 else node.module or ''
            names |= {module} | {f'{module}.{alias.name}' for alias in node.names}
    found = {m[1] for name in names if (m := EXP_MODULE.fullmatch(name))}
    return found | {name for name in names if EXERCISES.fullmatch(name)}


def code_digest(nb, root):
    """sha256 of what a notebook's outputs depend on: its code cells, every exp module they import (transitively), and
    the checks of the exercises they check (`check_exercise('11.2', ...)` loads exercises/nb_11.py). The exporter's
    provenance comments (`# nbs/NN_name.ipynb, cell N`) are left out: a cell inserted in an early notebook renumbers
    them in its module without changing what any later notebook computes."""
    sources = [cell.source for cell in nb.cells if cell.cell_type == 'code']
    digest = hashlib.sha256()
    for source in sources: digest.update(b'cell %d\n' % len(source.encode()) + source.encode())
    modules, todo = {}, set().union(*map(imported_exp_modules, sources))
    todo |= {f'exercises.nb_{n}' for source in sources for n in CHECK_CALL.findall(source)}
    while todo:
        name = todo.pop()
        path = Path(root) / (f'{name.replace(".", "/")}.py' if name.startswith('exercises.') else
                             'exercises/__init__.py' if name == 'exercises' else f'exp/{name}.py')
        modules[name] = path.read_bytes() if path.is_file() else b'(missing)'
        todo |= imported_exp_modules(modules[name].decode('utf-8', 'replace')) - set(modules)
    for name, text in sorted(modules.items()):
        text = PROVENANCE.sub(b'', text)
        digest.update(f'module {name} {len(text)}\n'.encode() + text)
    return digest.hexdigest()


def headlines(nb):
    "The headline results the notebook displayed (exp.nb_00.check_headline), in order."
    return [{key: out.data[HEADLINE_MIME].get(key) for key in ('result', 'ok', 'bar')}
            for cell in nb.cells if cell.cell_type == 'code' for out in cell.outputs if HEADLINE_MIME in out.get('data', {})]


def clean(nb, nb_dir, root, quick=False):
    "Strip what changes from run to run (execution counts, timings, machine paths); record how the outputs were made."
    scrub = path_scrubber(nb_dir, root)
    for cell in nb.cells:
        cell.metadata.pop('execution', None)
        # Cells made by nbformat.v4.new_*_cell carry an id, which a 4.4 notebook may not hold.
        if (nb.nbformat, nb.nbformat_minor) < (4, 5): cell.pop('id', None)
        if cell.cell_type != 'code': continue
        cell.execution_count = None
        for out in cell.outputs:
            if 'execution_count' in out: out.execution_count = None
            for key in ('text', 'evalue', 'traceback'):
                if key in out: out[key] = scrub_value(out[key], scrub)
            for mime in [m for m in out.get('data', {}) if is_text(m)]: out.data[mime] = scrub_value(out.data[mime], scrub)
    nb.metadata = {'kernelspec': {'display_name': 'Python 3', 'language': 'python', 'name': 'python3'},
                   'language_info': {'name': 'python'},
                   'course': {'mode': 'quick' if quick else 'full', 'digest': code_digest(nb, root), 'headlines': headlines(nb)}}
    return nb


def write_back(nb, path, root, quick, original):
    "Replace the notebook by its cleaned run, unless it changed on disk since the run read it (`original`)."
    text = nbformat.writes(clean(nb, path.parent, root, quick))
    if (path.read_bytes() if path.exists() else None) != original:
        raise RunFailure(f"{path.name}: changed on disk while it ran: not saved, your version is kept (run it again to save)")
    try: write_atomic(path, text if text.endswith('\n') else text + '\n')
    except OSError as e: raise RunFailure(f"{path.name}: cannot save: {e.strerror or e}") from None


@contextmanager
def saving(path):
    "Hold a lock on the notebook while it runs and is saved: a second `--save` of it is refused, not interleaved."
    try: f = open(path, 'rb')
    except FileNotFoundError: raise RunFailure(f"{path}: no such notebook") from None
    with f:
        try: fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunFailure(f"{path.name}: another `run_notebook.py --save` is running this notebook: not run") from None
        yield path.read_bytes()


def cannot_save(path):
    "Why --save may not replace the notebook, or None. Read-only means read-only, for root too."
    if not path.exists(): return None   # `no such notebook` when its turn comes
    if not os.access(path, os.W_OK) or not path.stat().st_mode & 0o222: return 'it is read-only'
    if not os.access(path.parent, os.W_OK): return 'its folder is read-only'


def seconds(text: str) -> int:
    "`--timeout 900`: a whole number of seconds from 1 to MAX_TIMEOUT."
    if not re.fullmatch(r'[0-9]{1,7}', text) or not 1 <= int(text) <= MAX_TIMEOUT:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number of seconds from 1 to {MAX_TIMEOUT}")
    return int(text)


def course_root(path):
    "The course a notebook belongs to: X for X/nbs/NN_name.ipynb. Its kernel imports X/exp."
    return path.parent.parent if path.parent.name == 'nbs' else ROOT


def run(*notebooks: str,              # notebooks to run (default: every numbered notebook in ROOT/nbs, in reading order)
        quick: yes_no = False,        # smoke-test mode: small data and few iterations
        save: yes_no = False,         # write the outputs back into each notebook that ran to the end
        timeout: seconds = 1800,      # per-cell time limit in seconds
        keep_going: yes_no = False,   # after a failed notebook, run the rest
        solutions: yes_no = False,    # each exercise's reference solution in place of its starter; never saved
        root: str | None = None):     # the course folder whose nbs/ to run (default: this repository)
    "Run notebooks top to bottom, each in a fresh kernel, and print a summary; exit status 1 if any failed."
    paths = [Path(n).resolve() for n in notebooks] or numbered_notebooks(Path(root or ROOT).resolve() / 'nbs')
    if not paths:
        print(f"run_notebook: no numbered notebooks in {Path(root or ROOT).resolve() / 'nbs'}", file=sys.stderr)
        sys.exit(1)
    if save and solutions:
        print("run_notebook: --solutions with --save would write the solutions into the notebooks a learner works in: "
              "nothing was run", file=sys.stderr)
        sys.exit(2)
    refused = [f"run_notebook: cannot save {p}: {why} (nothing was run)" for p in paths if save and (why := cannot_save(p))]
    if refused:
        print('\n'.join(refused), file=sys.stderr)
        sys.exit(1)
    results, failed = [], False
    try:
        for path in paths:
            if failed and not keep_going:
                results.append((path.name, 'not run', 0.0)); continue
            print(f"running {path.name}{' (quick)' if quick else ''}{' with the solutions' if solutions else ''} ...", flush=True)
            start, course = time.perf_counter(), Path(root).resolve() if root else course_root(path)
            try:
                with saving(path) if save else nullcontext() as original:
                    nb = execute(path, quick=quick, timeout=timeout, root=course, solutions=solutions)
                    if save: write_back(nb, path, course, quick, original)
                status = 'ok'
            except RunFailure as e:
                print(f"FAILED {e}\n", file=sys.stderr, flush=True)
                status, failed = 'FAILED', True
            results.append((path.name, status, time.perf_counter() - start))
    except KeyboardInterrupt as e:
        signum, rest = getattr(e, 'signum', signal.SIGINT), paths[len(results):]
        results += [(p.name, 'not run' if i else 'interrupted', 0.0) for i, p in enumerate(rest)]
        print(f"{summary(results, quick)}\n{'interrupted (Ctrl-C)' if signum == signal.SIGINT else 'stopped (SIGTERM)'}: "
              f"the kernel was shut down{f'; {rest[0].name} was not written' if rest else ''}", flush=True)
        sys.exit(128 + signum)
    print(summary(results, quick))
    if failed: sys.exit(1)


def summary(results, quick):
    width = max(len(name) for name, *_ in results)
    lines = [f"{'notebook':<{width}}  status       seconds  ({'quick' if quick else 'full'} mode)"]
    lines += [f"{name:<{width}}  {status:<11}  {secs:7.1f}" for name, status, secs in results]
    return '\n'.join(lines)


def main(argv=None):
    signal.signal(signal.SIGINT, signal.default_int_handler)   # Ctrl-C is a KeyboardInterrupt again, caught by run()
    signal.signal(signal.SIGTERM, raise_stop)                   # and SIGTERM a Stop, caught there too
    cli(run, 'run_notebook', argv)


if __name__ == '__main__': main()
