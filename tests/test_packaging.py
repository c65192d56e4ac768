"environment.yml describes exactly the dependencies pinned in pyproject.toml; exp/ imports from anywhere."
import re, subprocess, sys, tomllib

from conftest import ROOT


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']
    pinned = set(project['dependencies']) | {d for extra in project['optional-dependencies'].values() for d in extra}
    listed = set(re.findall(r'^\s+- ([A-Za-z][^\s#]*[=<>][^\s#]*)\s*$', (ROOT / 'environment.yml').read_text(), re.M)) - {'python=3.11'}
    assert listed == pinned


def test_exp_imports_from_any_folder(tmp_path):
    out = subprocess.run([sys.executable, '-c', 'import exp.nb_00 as m; print(m.near(1, 1))'],
                         cwd=tmp_path, capture_output=True, text=True)
    assert out.stdout.strip() == 'True', out.stderr


def test_the_progress_command_runs_from_any_folder(tmp_path):
    out = subprocess.run([sys.executable, '-m', 'exercises', '--help'], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0 and '--nbs' in out.stdout, out.stderr
