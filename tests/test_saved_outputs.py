"""Saved outputs cannot go stale: every committed notebook was saved by `run_notebook.py --save` in full
mode from the code it holds now, and the README's notebook map quotes the headline results it recorded."""
import nbformat, pytest

import run_notebook as rn
from conftest import ROOT, make_notebook, run_cli
from notebook2script import numbered_notebooks


def saved_output_problems(nbs_dir):
    "One line per notebook in nbs_dir whose saved outputs do not come from a full run of its current code."
    problems = []
    for path in numbered_notebooks(nbs_dir):
        nb = nbformat.read(path, as_version=4)
        record, redo = nb.metadata.get('course'), f"re-run `python run_notebook.py nbs/{path.name} --save`"
        if not isinstance(record, dict) or 'digest' not in record:
            problems.append(f"{path.name}: no run record (saved before run_notebook.py --save recorded one): {redo}")
        elif record.get('mode') != 'full':
            problems.append(f"{path.name}: saved in {record.get('mode')!r} mode, not full mode: {redo}")
        elif record['digest'] != rn.code_digest(nb, nbs_dir.parent):
            problems.append(f"{path.name}: its code, or an exp module it imports, changed after its outputs were saved: {redo}")
    return problems


def readme_problems(nbs_dir, readme):
    "One line per recorded headline result that the README's notebook-map row (`| NN_name |`) does not quote."
    lines, problems = readme.read_text(encoding='utf-8').splitlines(), []
    for path in numbered_notebooks(nbs_dir):
        record = nbformat.read(path, as_version=4).metadata.get('course') or {}
        row = next((line for line in lines if line.startswith(f'| {path.stem} |')), None)
        for headline in record.get('headlines', []):
            quoted = headline['result'].replace('|', r'\|')   # a bare pipe would end the table cell
            if row is None:
                problems.append(f"{readme.name}: no notebook-map row `| {path.stem} |` for the headline {headline['result']!r}")
            elif quoted not in row:
                escaped = ', its pipes written \\|,' if quoted != headline['result'] else ''
                problems.append(f"{readme.name}, row {path.stem}: does not quote the headline result {headline['result']!r}{escaped} "
                                f"that nbs/{path.name} recorded")
    return problems


def test_committed_notebooks_were_saved_in_full_mode_from_their_current_code():
    problems = saved_output_problems(ROOT / 'nbs')
    assert not problems, '\n'.join(problems)


def test_readme_quotes_every_recorded_headline():
    problems = readme_problems(ROOT / 'nbs', ROOT / 'README.md')
    assert not problems, '\n'.join(problems)


# ---- the checks themselves, on a course built here ----

HEADLINE = ("from IPython.display import display\n"
            f"display({{{rn.HEADLINE_MIME!r}: {{'result': '97.5% accuracy', 'ok': True, 'bar': 'at least 90%'}}, "
            "'text/plain': 'headline: 97.5% accuracy'}, raw=True)")


@pytest.fixture
def saved_course(course):
    "A course whose notebook imports exp.nb_01 (which imports exp.nb_00), saved in full mode."
    (course / 'exp/__init__.py').write_text('')
    (course / 'exp/nb_00.py').write_text('def double(x): return 2 * x\n')
    (course / 'exp/nb_01.py').write_text('from .nb_00 import double\ndef quad(x): return double(double(x))\n')
    (course / 'exp/nb_05.py').write_text('UNRELATED = 1\n')
    nb = make_notebook(course / 'nbs/02_use.ipynb', 'from exp.nb_01 import quad\nprint(quad(3))', '%time x = 1', HEADLINE)
    result = run_cli('run_notebook.py', nb, '--save')
    assert result.returncode == 0, result.stderr
    (course / 'README.md').write_text('| notebook | result |\n|---|---|\n| 02_use | **97.5% accuracy** on the toy set |\n')
    return course


def test_a_fresh_full_save_passes_and_records_mode_digest_and_headlines(saved_course):
    record = nbformat.read(saved_course / 'nbs/02_use.ipynb', as_version=4).metadata['course']
    assert record['mode'] == 'full' and len(record['digest']) == 64
    assert record['headlines'] == [{'result': '97.5% accuracy', 'ok': True, 'bar': 'at least 90%'}]
    assert saved_output_problems(saved_course / 'nbs') == []
    assert readme_problems(saved_course / 'nbs', saved_course / 'README.md') == []
    (saved_course / 'exp/nb_05.py').write_text('UNRELATED = 2\n')          # not imported: still current
    assert saved_output_problems(saved_course / 'nbs') == []


@pytest.mark.parametrize('change', ['code cell', 'imported module', 'module imported by an imported module', 'markdown'])
def test_a_change_to_what_the_outputs_depend_on_makes_them_stale(saved_course, change):
    path = saved_course / 'nbs/02_use.ipynb'
    if change in ('code cell', 'markdown'):
        nb = nbformat.read(path, as_version=4)
        if change == 'code cell': nb.cells[0].source += '\nprint(quad(4))'
        else: nb.cells.append(nbformat.v4.new_markdown_cell('prose does not change outputs'))
        nbformat.write(nb, path)
    else:
        module = saved_course / f"exp/{'nb_01' if change == 'imported module' else 'nb_00'}.py"
        module.write_text(module.read_text() + 'EXTRA = 1\n')
    problems = saved_output_problems(saved_course / 'nbs')
    if change == 'markdown': assert problems == []
    else: assert problems == ["02_use.ipynb: its code, or an exp module it imports, changed after its outputs were saved: "
                              "re-run `python run_notebook.py nbs/02_use.ipynb --save`"]


def test_a_quick_save_or_no_record_fails(saved_course):
    nb = saved_course / 'nbs/02_use.ipynb'
    assert run_cli('run_notebook.py', nb, '--save', '--quick').returncode == 0
    assert saved_output_problems(saved_course / 'nbs') == [
        "02_use.ipynb: saved in 'quick' mode, not full mode: re-run `python run_notebook.py nbs/02_use.ipynb --save`"]
    make_notebook(saved_course / 'nbs/03_never_run.ipynb', 'x = 1')
    assert saved_output_problems(saved_course / 'nbs')[1] == (
        "03_never_run.ipynb: no run record (saved before run_notebook.py --save recorded one): "
        "re-run `python run_notebook.py nbs/03_never_run.ipynb --save`")


def test_a_readme_that_drifted_from_the_record_fails(saved_course):
    readme = saved_course / 'README.md'
    readme.write_text(readme.read_text().replace('97.5%', '97.4%'))
    assert readme_problems(saved_course / 'nbs', readme) == [
        "README.md, row 02_use: does not quote the headline result '97.5% accuracy' that nbs/02_use.ipynb recorded"]
    readme.write_text('| notebook | result |\n|---|---|\n| 02_user | 97.5% accuracy |\n')
    assert readme_problems(saved_course / 'nbs', readme) == [
        "README.md: no notebook-map row `| 02_use |` for the headline '97.5% accuracy'"]


def test_a_headline_with_a_pipe_is_quoted_escaped_so_the_table_row_stays_whole(saved_course):
    nb_path = saved_course / 'nbs/02_use.ipynb'
    nb = nbformat.read(nb_path, as_version=4)
    nb.metadata['course']['headlines'] = [{'result': 'max |diff| 1e-3', 'ok': True, 'bar': 'below 1e-2'}]
    nbformat.write(nb, nb_path)
    readme = saved_course / 'README.md'
    readme.write_text('| notebook | result |\n|---|---|\n| 02_use | **max |diff| 1e-3** |\n')
    assert readme_problems(saved_course / 'nbs', readme) == [
        "README.md, row 02_use: does not quote the headline result 'max |diff| 1e-3', its pipes written \\|, that nbs/02_use.ipynb recorded"]
    readme.write_text('| notebook | result |\n|---|---|\n| 02_use | **max \\|diff\\| 1e-3** |\n')
    assert readme_problems(saved_course / 'nbs', readme) == []


def test_digest_follows_every_import_spelling(course):
    (course / 'exp/nb_00.py').write_text('A = 1\n')
    (course / 'exp/nb_01.py').write_text('import exp.nb_00 as base\n')
    cells = {'from exp.nb_01 import *': {'nb_00', 'nb_01'}, 'import exp.nb_01': {'nb_00', 'nb_01'},
             'from exp import nb_00': {'nb_00'}, 'import os\n!ls\nx = 1': set(), 'import exp': set()}
    for source, modules in cells.items():
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
        before = rn.code_digest(nb, course)
        for name in ['nb_00', 'nb_01']:
            module = course / f'exp/{name}.py'
            text = module.read_text()
            module.write_text(text + '# changed\n')
            assert (rn.code_digest(nb, course) != before) == (name in modules), (source, name)
            module.write_text(text)


def test_digest_ignores_the_exporters_cell_numbers_but_not_the_code(course):
    "Inserting a cell in notebook 01 renumbers the `# nbs/..., cell N` lines of exp/nb_01.py; later notebooks stay fresh."
    module = course / 'exp/nb_01.py'
    module.write_text('# nbs/01_matmul.ipynb, cell 5\ndef f(x): return 2 * x\n\n# nbs/01_matmul.ipynb, cell 9\nA = 1\n')
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('from exp.nb_01 import *\nf(A)')])
    before = rn.code_digest(nb, course)
    module.write_text(module.read_text().replace('cell 5', 'cell 17').replace('cell 9', 'cell 24'))
    assert rn.code_digest(nb, course) == before
    for changed in ['def f(x): return 3 * x', '# nbs/01_matmul.ipynb, cell 5 (edited)', '# a comment of the lesson']:
        module.write_text(module.read_text().replace('def f(x): return 2 * x', changed))
        assert rn.code_digest(nb, course) != before, changed
        module.write_text(module.read_text().replace(changed, 'def f(x): return 2 * x'))
