"""Exercises that check themselves.

A notebook sets an exercise as a starter cell (a stub that raises `NotImplementedError`, or `...` where a
value or a line is to be written) and, under it, one check line:

    check_exercise('11.2', trigram_counts)

The check runs the learner's answer on fresh inputs (seeded random cases, never only the notebook's data)
and shows one of three states: *not attempted yet* (the stub is untouched), *correct*, or *not yet right*,
with the input, what came back, what was expected, and a hint aimed at the usual mistake, never the answer.
A challenge also reports the learner's number beside the notebook's and the budget.

The checks of notebook NN live in `exercises/nb_NN.py`, each registered with `@exercise`; the reference
solutions live apart, in `solutions/NN_name.py` (`fill_solutions` puts them into a notebook's starter
cells, for `run_notebook.py --solutions` and the tests). `python -m exercises` shows where a learner
stands across the course, read from the check outputs saved in their notebooks.
"""
import ast, importlib, inspect, re, textwrap
from dataclasses import dataclass, field
from pathlib import Path

EXERCISE_MIME = 'application/vnd.course.exercise+json'   # a check's result, as saved in the notebook
STATES = ('not attempted', 'correct', 'failing')
SOLUTIONS = Path(__file__).resolve().parent.parent / 'solutions'
SECTION = re.compile(r'^# %% exercise ([0-9]+[a-z]*\.[0-9]+)\s*$', re.MULTILINE)   # `# %% exercise 11.2`
CHECKS = {}                                                                          # id -> Exercise


class Wrong(Exception):
    "A check found a wrong answer: the message says on which input, what came back and what was expected."
    def __init__(self, message, hint=''):
        super().__init__(message)
        self.hint = hint


class NotAttempted(Exception):
    "The starter is untouched (a check raises this when every blank is still `...`)."


@dataclass
class Exercise:
    id: str
    title: str
    kind: str        # 'predict', 'implement' or 'challenge'
    check: object    # check(answer, *context) -> a message, or (message, number, reference, budget) for a challenge


@dataclass
class Result:
    "What a check found; shown as text in the notebook and saved as JSON (EXERCISE_MIME) for `python -m exercises`."
    id: str
    title: str
    state: str
    message: str = ''
    hint: str = ''
    number: float | None = None       # a challenge: the learner's number ...
    reference: float | None = None    # ... the notebook's ...
    budget: str = ''                  # ... and the budget it was reached in
    details: dict = field(default_factory=dict)

    def __str__(self):
        head = {'not attempted': 'not attempted yet', 'correct': 'correct', 'failing': 'not yet right'}[self.state]
        lines = [f"Exercise {self.id} ({self.title}): {head}"]
        lines += ['  ' + line for line in self.message.splitlines()]
        if self.hint: lines.append(f"  hint: {self.hint}")
        return '\n'.join(lines)

    def _repr_mimebundle_(self, include=None, exclude=None):
        record = {k: getattr(self, k) for k in ('id', 'title', 'state', 'number', 'reference', 'budget')}
        return {'text/plain': str(self), EXERCISE_MIME: record}


def exercise(id, title, kind='implement'):
    "Register `check` as exercise `id`'s check (a decorator, used in exercises/nb_NN.py)."
    if kind not in ('predict', 'implement', 'challenge'): raise ValueError(f"exercise {id}: unknown kind {kind!r}")
    def register(check):
        CHECKS[id] = Exercise(id, title, kind, check)
        return check
    return register


def checks_module(id):
    "The module that holds exercise `id`'s check: exercises.nb_11 for '11.2'."
    if not re.fullmatch(r'[0-9]+[a-z]*\.[0-9]+', str(id)):
        raise ValueError(f"{id!r} is not an exercise number such as '11.2'")
    return f"{__name__}.nb_{id.split('.')[0]}"


def lookup(id):
    "The registered Exercise `id`, importing its notebook's checks on first use."
    try: importlib.import_module(checks_module(id))
    except ModuleNotFoundError as e:
        if e.name != checks_module(id): raise
    if id not in CHECKS:
        known = ', '.join(sorted(k for k in CHECKS if k.split('.')[0] == id.split('.')[0])) or 'none'
        raise ValueError(f"no exercise {id!r} (this notebook's exercises: {known})")
    return CHECKS[id]


def code_of(function):
    "The code of a function's body, without comments or docstring ('' when Python cannot find it), to look for a banned call."
    try: tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError): return ''
    node = next((n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.Lambda))), None)
    if isinstance(node, ast.Lambda): return ast.unparse(node.body)
    if node is None: return ''
    body = node.body[1:] if ast.get_docstring(node) is not None else node.body
    return '\n'.join(ast.unparse(statement) for statement in body)


def load_checks():
    "Import the checks of every notebook (exercises/nb_*.py): CHECKS then holds every exercise of the course."
    for path in sorted(Path(__file__).parent.glob('nb_*.py')): importlib.import_module(f"{__name__}.{path.stem}")
    return CHECKS


def check_predictions(answer, expected, hints, what):
    "Compare a dict of predictions with the truth, item by item: which are wrong, with a hint, never the answer."
    if not isinstance(answer, dict) or set(answer) != set(expected):
        raise Wrong(f"expected a dict with exactly these keys: {list(expected)}",
                    "keep the keys of the starter cell as they are and fill in the values")
    unanswered = [k for k, v in answer.items() if v is Ellipsis]
    wrong = [k for k in expected if k not in unanswered and not expected[k](answer[k])]
    if wrong:
        raise Wrong('\n'.join(f"{k!r}: you wrote {answer[k]!r}, which is not {what}" for k in wrong)
                    + (f"\nstill to answer: {', '.join(map(repr, unanswered))}" if unanswered else ''),
                    ' | '.join(hints[k] for k in wrong))
    if unanswered: raise Wrong(f"{len(expected) - len(unanswered)} right so far; still to answer: {', '.join(map(repr, unanswered))}")
    return f"all {len(expected)} right"


def untouched(answer):
    "`...`, or a list/tuple/dict of nothing but `...`: the starter as it was given."
    if answer is Ellipsis: return True
    values = answer.values() if isinstance(answer, dict) else answer if isinstance(answer, (list, tuple)) else None
    return values is not None and len(values) > 0 and all(v is Ellipsis for v in values)


def run_check(id, answer, *context):
    "Check `answer` to exercise `id` and return the Result (check_exercise shows it)."
    ex = lookup(id)
    if untouched(answer): return Result(id, ex.title, 'not attempted', STARTER_HINT[ex.kind])
    try: found = ex.check(answer, *context)
    except NotAttempted as e: return Result(id, ex.title, 'not attempted', str(e) or STARTER_HINT[ex.kind])
    except NotImplementedError: return Result(id, ex.title, 'not attempted', STARTER_HINT[ex.kind])
    except Wrong as e: return Result(id, ex.title, 'failing', str(e), e.hint)
    except Exception as e:
        return Result(id, ex.title, 'failing', f"your code raised {type(e).__name__}: {e}",
                      'read the error: which line raised it, and with what shapes?')
    if isinstance(found, tuple):
        message, number, reference, budget = found
        return Result(id, ex.title, 'correct', message, number=number, reference=reference, budget=budget)
    return Result(id, ex.title, 'correct', found or '')


STARTER_HINT = {'predict': "replace each `...` with your prediction, then run this cell again",
                'implement': "write your code in the cell above (in place of `...` or `raise NotImplementedError`), run it, then this cell",
                'challenge': "fill in the cell above as the exercise asks (train your model, or choose your settings), run it, then this cell"}


def check_exercise(id, answer, *context):
    "Check a learner's answer to exercise `id` and show the result under the cell."
    from IPython.display import display
    display(run_check(id, answer, *context))


# ---- reference solutions: solutions/NN_name.py, one `# %% exercise ID` section per starter cell ----

def solution_sections(path):
    "{exercise id: the code of its reference solution} from a solutions file."
    text = Path(path).read_text(encoding='utf-8')
    parts = SECTION.split(text)
    sections = {}
    for id, code in zip(parts[1::2], parts[2::2]):
        if id in sections: raise ValueError(f"{path}: exercise {id} has two solutions")
        sections[id] = code.strip('\n') + '\n'
    return sections


def starter_cells(nb):
    "{exercise id: index} of a notebook's starter cells (code cells whose metadata names an exercise)."
    return {cell.metadata['exercise']: i for i, cell in enumerate(nb.cells)
            if cell.cell_type == 'code' and 'exercise' in cell.metadata}


def fill_solutions(nb, notebook_path, solutions=SOLUTIONS):
    "Put the reference solutions into the notebook's starter cells (in memory); refuse a starter without one."
    starters = starter_cells(nb)
    if not starters: return nb
    path = Path(solutions) / (Path(notebook_path).stem + '.py')
    if not path.is_file(): raise ValueError(f"{Path(notebook_path).name}: has exercises but no solutions file {path}")
    sections = solution_sections(path)
    missing = sorted(set(starters) - set(sections))
    if missing: raise ValueError(f"{path.name}: no solution for exercise {', '.join(missing)}")
    extra = sorted(set(sections) - set(starters))
    if extra: raise ValueError(f"{path.name}: solution for exercise {', '.join(extra)}, which {Path(notebook_path).name} does not set")
    for id, i in starters.items(): nb.cells[i].source = sections[id]
    return nb
