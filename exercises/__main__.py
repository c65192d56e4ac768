"""Where you stand: every exercise of the course with its state, read from your notebooks.

    python -m exercises                 # the notebooks in nbs/
    python -m exercises --nbs my_copy   # another folder of the course's notebooks

The state is what the exercise's check showed the last time you ran it and saved the notebook (Jupyter
saves it with the notebook): `not run` until its check cell has been run, then `not attempted`, `correct`
or `failing`. A challenge also shows your number beside the notebook's.
"""
import re, sys
from pathlib import Path

import nbformat

from exercises import EXERCISE_MIME, load_checks
from notebook2script import ROOT, cli, numbered_notebooks

CHECK_CALL = re.compile(r'''check_exercise\(\s*['"]([0-9]+[a-z]*\.[0-9]+)['"]''')


def exercise_states(path, titles=None):
    "[(id, title, state, record)] for each check cell of a notebook, in order; state 'not run' when it has no result."
    nb, titles = nbformat.read(path, as_version=4), titles or {}
    rows = []
    for cell in nb.cells:
        if cell.cell_type != 'code': continue
        for id in CHECK_CALL.findall(cell.source):
            record = next((out.data[EXERCISE_MIME] for out in cell.get('outputs', [])
                           if EXERCISE_MIME in out.get('data', {}) and out.data[EXERCISE_MIME].get('id') == id), None)
            rows.append((id, titles.get(id) or (record or {}).get('title', ''), record['state'] if record else 'not run', record or {}))
    return rows


def describe(record):
    "A challenge's numbers: yours, the notebook's, the budget."
    if record.get('number') is None: return ''
    text = f"yours {record['number']:.4f}"
    if record.get('reference') is not None: text += f", notebook {record['reference']:.4f}"
    return text + (f" ({record['budget']})" if record.get('budget') else '')


def progress(nbs: str | None = None):   # the folder of your notebooks (default: this course's nbs/)
    "Show every exercise of the course with its state, read from the check outputs saved in your notebooks."
    folder = Path(nbs) if nbs else ROOT / 'nbs'
    if not folder.is_dir():
        print(f"exercises: {folder}: no such folder", file=sys.stderr)
        sys.exit(1)
    titles = {id: ex.title for id, ex in load_checks().items()}
    table = [(path.stem, *row) for path in numbered_notebooks(folder) for row in exercise_states(path, titles)]
    if not table:
        print(f"no exercises in the notebooks of {folder}")
        return
    width = max(len(r[0]) for r in table)
    print(f"{'notebook':<{width}}  {'exercise':<8}  {'state':<13}  title")
    for stem, id, title, state, record in table:
        print(f"{stem:<{width}}  {id:<8}  {state:<13}  {title}{'  ' + describe(record) if describe(record) else ''}")
    counts = {s: sum(r[3] == s for r in table) for s in ('correct', 'failing', 'not attempted', 'not run')}
    print(f"\n{counts['correct']} of {len(table)} correct, {counts['failing']} failing, "
          f"{counts['not attempted']} not attempted, {counts['not run']} not run yet")


if __name__ == '__main__': cli(progress, 'python -m exercises', None)
