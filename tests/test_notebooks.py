"""Every numbered notebook runs top to bottom through the runner in quick mode (correctness checks included), with
every exercise as a learner finds it: each check reports "not attempted"."""
import pytest

from exercises import EXERCISE_MIME

from conftest import ROOT
from notebook2script import numbered_notebooks
from run_notebook import RunFailure, execute

NOTEBOOKS = numbered_notebooks(ROOT / 'nbs')


def test_there_are_notebooks():
    assert [p.name for p in NOTEBOOKS[:2]] == ['00_exports.ipynb', '00a_data.ipynb']


@pytest.mark.parametrize('path', NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_quick_mode(path):
    try:
        nb = execute(path, quick=True, timeout=300)
    except RunFailure as e:
        pytest.fail(str(e), pytrace=False)
    checked = [out.data[EXERCISE_MIME] for cell in nb.cells for out in cell.get('outputs', []) if EXERCISE_MIME in out.get('data', {})]
    assert all(r['state'] == 'not attempted' for r in checked), [r for r in checked if r['state'] != 'not attempted']
