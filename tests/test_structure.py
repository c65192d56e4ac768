"""The shape of the package: modules import what they use, no name changes meaning down the chain,
and the settings live in one place (exp.nb_00)."""
import ast, importlib, os, subprocess, sys

import pytest

from conftest import ROOT
from notebook2script import module_name, numbered_notebooks

MODULES = [f'exp.{module_name(nb)}' for nb in numbered_notebooks(ROOT / 'nbs') if (ROOT / 'exp' / f'{module_name(nb)}.py').exists()]

# Names that a later module deliberately exports again, for a refinement of the same concept.
REFINEMENTS = {
    'BatchNorm1d': "15's subclasses 13's (same parameters, buffers and interface) and reduces over every dimension "
                   "but the last, so (N, L, C) input works; 13's reduced over dim 0 only, the lecture's 3-D bug",
}


def python(code, **env):
    return subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def test_pyflakes_rules_find_nothing_in_exp():
    "No undefined, unused or star-resolved name; a star import only as a deliberate, marked re-export."
    out = subprocess.run([sys.executable, '-m', 'ruff', 'check', '--select', 'F', '--output-format', 'concise', 'exp'],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_star_import_is_a_marked_re_export_of_an_earlier_module():
    for name in MODULES:
        tree = ast.parse((ROOT / 'exp' / f'{name[4:]}.py').read_text())
        lines = (ROOT / 'exp' / f'{name[4:]}.py').read_text().splitlines()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and any(a.name == '*' for a in node.names):
                assert node.module in MODULES[:MODULES.index(name)], f"{name}: star import of {node.module}"
                assert 're-export' in lines[node.lineno - 1], f"{name}, line {node.lineno}: say why this star import is there"


def own_names(module):
    "The names a module exports that it defines itself (its `__all__` if it has one)."
    if hasattr(module, '__all__'): return set(module.__all__)
    tree = ast.parse(open(module.__file__).read())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)): names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return {n for n in names if not n.startswith('_')}


def rebindings(modules):
    "(name, first module, later module) for every exported name a later module gives a different object."
    seen, found = {}, []
    for name in modules:
        module = importlib.import_module(name)
        for attr in sorted(own_names(module)):
            obj = getattr(module, attr)
            if attr in seen and seen[attr][1] is not obj and attr not in REFINEMENTS:
                found.append((attr, seen[attr][0], name))
            seen.setdefault(attr, (name, obj))
    return found


def test_no_exported_name_changes_meaning_down_the_chain():
    assert rebindings(MODULES) == []


def test_the_rebinding_check_catches_a_rebinding(tmp_path, monkeypatch):
    (tmp_path / 'chain_a.py').write_text('def Module(): "a layer"\nSEED = 1\n')
    (tmp_path / 'chain_b.py').write_text('from chain_a import *  # noqa: F403 re-export\nclass Module: "a container"\n')
    (tmp_path / 'chain_c.py').write_text('from chain_b import *  # noqa: F403 re-export\nfrom chain_a import SEED\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    assert rebindings(['chain_a', 'chain_b', 'chain_c']) == [('Module', 'chain_a', 'chain_b')]


def test_importing_nb_00_loads_no_torch_and_sets_one_thread():
    out = python("import sys, exp.nb_00; print('torch' in sys.modules); import torch; print(torch.get_num_threads())",
                 COURSE_THREADS='')
    assert out.returncode != 0 and "COURSE_THREADS must be a positive whole number of threads, not ''" in out.stderr
    env = {k: v for k, v in os.environ.items() if k not in ('COURSE_THREADS', 'OMP_NUM_THREADS')}
    out = subprocess.run([sys.executable, '-c', "import sys, exp.nb_00; print('torch' in sys.modules); import torch; print(torch.get_num_threads())"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert out.stdout.split() == ['False', '1'], out.stderr


def test_course_threads_sets_the_count_even_when_torch_came_first():
    out = python("import torch, exp.nb_00; print(torch.get_num_threads())", COURSE_THREADS='2')
    assert out.stdout.strip() == '2', out.stderr
    out = python("import exp.nb_00", COURSE_THREADS='two')
    assert out.returncode != 0 and "not 'two'" in out.stderr


def test_set_seed_makes_every_generator_repeat():
    out = python("import random, torch, numpy, exp.nb_00 as m\n"
                 "draw = lambda: (random.random(), torch.rand(2).tolist(), numpy.random.rand())\n"
                 "m.set_seed(); a = draw(); m.set_seed(); b = draw(); m.set_seed(7); c = draw()\n"
                 "print(a == b, a != c)")
    assert out.stdout.split() == ['True', 'True'], out.stderr


# ---- issues 20, 21: each notebook is a lesson: it opens with the rules table and closes with what was built, the
# exercises and the next notebook ----

NOTEBOOKS = numbered_notebooks(ROOT / 'nbs')


@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_links_the_rules_table_from_its_opening(path):
    import nbformat
    first = nbformat.read(path, as_version=4).cells[0]
    assert first.cell_type == 'markdown' and '(RULES.md)' in first.source, f'{path.name}: cell 0 does not link RULES.md'
    assert (ROOT / 'nbs' / 'RULES.md').exists()


@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.stem)
def test_a_lesson_ends_with_what_was_built_its_exercises_and_the_next_notebook(path):
    import nbformat
    markdown = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == 'markdown']
    headings = [line for source in markdown for line in source.splitlines() if line.startswith('## ')]
    assert '## What we built' in headings, f'{path.name}: no "## What we built"'
    built = headings.index('## What we built')
    assert any(h.startswith('## Exercises') for h in headings[built + 1:]), f'{path.name}: no Exercises after What we built'
    later = NOTEBOOKS[NOTEBOOKS.index(path) + 1:]
    target = later[0].name if later else 'README.md'   # the last notebook sends the learner back to the map
    assert markdown[-1].lstrip('*').startswith('Next') and target in markdown[-1], \
        f'{path.name}: the last cell should point to {target}: {markdown[-1][:80]!r}'
