import json, subprocess, sys
from pathlib import Path

import nbformat, pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))   # notebook2script and run_notebook sit at the top level


def make_notebook(path, *cells, source_as='string'):
    """Write a notebook; each cell is code, or markdown when it starts with 'md:'."""
    nb = nbformat.v4.new_notebook()
    for src in cells:
        nb.cells.append(nbformat.v4.new_markdown_cell(src[3:]) if src.startswith('md:') else nbformat.v4.new_code_cell(src))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    # Jupyter stores a cell's source as a list of lines; one string is valid too. Force one form.
    raw = json.loads(path.read_text())
    for c in raw['cells']:
        text = ''.join(c['source']) if isinstance(c['source'], list) else c['source']
        c['source'] = text.splitlines(keepends=True) if source_as == 'list' else text
    path.write_text(json.dumps(raw))
    return path


def run_cli(script, *args, cwd=None, env=None, timeout=300):
    return subprocess.run([sys.executable, str(ROOT / script), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def course(tmp_path):
    "An empty course tree: tmp/nbs and tmp/exp."
    (tmp_path / 'nbs').mkdir(); (tmp_path / 'exp').mkdir()
    return tmp_path


def correct(result):
    "An exercise check's result, asserted 'correct' (its message shown if not)."
    assert result.state == 'correct', str(result)
    return result


# A small text with a small vocabulary, long enough for the 'tiny' configs (block 16: 170 characters at least);
# the command lines of 16 and 19 train on it.
VERSE = ("Shall I compare thee to a summer's day?\nThou art more lovely and more temperate:\n"
         "Rough winds do shake the darling buds of May,\nAnd summer's lease hath all too short a date;\n")


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / 'verse.txt'
    path.write_text(VERSE * 6)
    return path
