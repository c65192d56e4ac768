"Checks for the exercises of 01_matmul: broadcasting shapes, the `a[i,:,None]*b` homework, einsum, matmul with no loop."
import torch

from exercises import NotAttempted, Wrong, check_predictions, code_of, exercise

# 01.1: the expressions whose shapes the learner predicts (c is a vector of 3, m a 3x3 matrix, as in the notebook)
SHAPE_QUESTIONS = ('c[None] + c[:, None]',
                   'm + c[:, None]',
                   'torch.zeros(5, 1, 4) * torch.zeros(3, 1)',
                   'torch.zeros(64, 784) - torch.zeros(784)',
                   'torch.zeros(2, 3) + torch.zeros(2)',
                   'torch.zeros(64, 10)[..., None] * torch.zeros(10)')


def shape_of(expression):
    "The shape an expression gives (as a tuple), or 'error' when its shapes do not broadcast."
    names = {'torch': torch, 'c': torch.tensor([10., 20., 30.]), 'm': torch.arange(1., 10.).view(3, 3)}
    try: return tuple(eval(expression, names).shape)
    except RuntimeError: return 'error'


def as_shape(value):
    if isinstance(value, str): return value.strip().lower()
    if isinstance(value, torch.Size): return tuple(value)
    if isinstance(value, (tuple, list)) and all(isinstance(v, int) for v in value): return tuple(value)
    return value


@exercise('01.1', 'predict the broadcast shapes', kind='predict')
def check_shapes(answer):
    expected = {q: (lambda v, q=q: as_shape(v) == shape_of(q)) for q in SHAPE_QUESTIONS}
    hints = {SHAPE_QUESTIONS[0]: "c[None] is (1, 3), c[:, None] is (3, 1): each 1 stretches to the other's length",
             SHAPE_QUESTIONS[1]: "a (3, 1) column next to a (3, 3) matrix: the column is repeated across",
             SHAPE_QUESTIONS[2]: "line the shapes up from the right: (5, 1, 4) over (_, 3, 1); a missing dimension counts as 1",
             SHAPE_QUESTIONS[3]: "a vector of 784 lines up with the last dimension: the bias case",
             SHAPE_QUESTIONS[4]: "compare the trailing dimensions first: are 3 and 2 equal, or is one of them 1?",
             SHAPE_QUESTIONS[5]: "[..., None] adds a unit axis at the end: (64, 10, 1) over (10,)"}
    return check_predictions(answer, expected, hints, "the shape PyTorch gives (a tuple, or 'error')")


# 01.2: the lecture's homework, `a[i, :, None] * b` worked on the notebook's 2x3 and 3x2 example, for i = 0
SMALL_A = torch.tensor([[1., 2., 3.], [4., 5., 6.]])
SMALL_B = torch.tensor([[1., 0.], [0., 1.], [1., 1.]])
HOMEWORK = {'small_a[0, :, None].shape': SMALL_A[0, :, None].shape,
            '(small_a[0, :, None] * small_b).shape': (SMALL_A[0, :, None] * SMALL_B).shape,
            'small_a[0, :, None] * small_b': SMALL_A[0, :, None] * SMALL_B,
            '(small_a[0, :, None] * small_b).sum(0)': (SMALL_A[0, :, None] * SMALL_B).sum(0)}


def same_value(v, truth):
    try: return torch.equal(torch.as_tensor(v, dtype=torch.float32), truth) if torch.is_tensor(truth) else as_shape(v) == tuple(truth)
    except (TypeError, ValueError, RuntimeError): return False


@exercise('01.2', 'the lecture homework: a[i, :, None] * b by hand', kind='predict')
def check_homework(answer):
    expected = {k: (lambda v, t=t: same_value(v, t)) for k, t in HOMEWORK.items()}
    keys = list(HOMEWORK)
    hints = {keys[0]: "row 0 of small_a has 3 numbers; indexing with None adds a unit axis where it stands",
             keys[1]: "(3, 1) times (3, 2): the 1 stretches",
             keys[2]: "row k of small_b is multiplied by the k-th number of small_a's row 0 (write it as a list of rows)",
             keys[3]: "the sum over axis 0 adds the three scaled rows: it is row 0 of small_a @ small_b"}
    return check_predictions(answer, expected, hints, "what PyTorch gives")


# 01.3: einsum strings, checked on fresh random shapes
EINSUM_TASKS = {
    'transpose': (lambda g: [torch.randn(int_(g, 2, 6), int_(g, 2, 6), generator=g)], lambda a: a.T),
    'batch matmul': (lambda g: (lambda b, n, k, m: [torch.randn(b, n, k, generator=g), torch.randn(b, k, m, generator=g)])(
        *(int_(g, 2, 5) for _ in range(4))), lambda a, b: torch.bmm(a, b)),
    'trace': (lambda g: (lambda n: [torch.randn(n, n, generator=g)])(int_(g, 2, 6)), lambda a: torch.trace(a)),
    'row sums': (lambda g: [torch.randn(int_(g, 2, 6), int_(g, 2, 6), generator=g)], lambda a: a.sum(1)),
    'diagonal': (lambda g: (lambda n: [torch.randn(n, n, generator=g)])(int_(g, 2, 6)), lambda a: torch.diagonal(a)),
    'matrix-vector': (lambda g: (lambda n, k: [torch.randn(n, k, generator=g), torch.randn(k, generator=g)])(int_(g, 2, 6), int_(g, 2, 6)),
                      lambda a, v: a @ v),
    'batch outer product': (lambda g: (lambda b, n, m: [torch.randn(b, n, generator=g), torch.randn(b, m, generator=g)])(
        int_(g, 2, 5), int_(g, 2, 6), int_(g, 2, 6)), lambda x, y: x[:, :, None] * y[:, None, :]),
}
EINSUM_HINTS = {'transpose': "name the two axes of the input and write them in the other order after the arrow",
                'batch matmul': "the batch index appears in both inputs and in the output; only the shared k is summed",
                'trace': "the same letter twice in one input walks the diagonal; an empty output sums everything",
                'row sums': "a letter left out of the output is summed over",
                'diagonal': "the same letter twice in one input walks the diagonal; keep that letter after the arrow",
                'matrix-vector': "the vector's one index is the matrix's column index, and it is summed away",
                'batch outer product': "one outer product per sample: the sample index is shared and kept, nothing is summed"}


def int_(g, lo, hi): return int(torch.randint(lo, hi, (1,), generator=g))


@exercise('01.3', 'einsum strings')
def check_einsum(answer):
    if not isinstance(answer, dict) or set(answer) != set(EINSUM_TASKS):
        raise Wrong(f"expected a dict with exactly these keys: {list(EINSUM_TASKS)}", "keep the keys of the starter cell")
    unanswered = [k for k, v in answer.items() if v is Ellipsis]
    wrong = {}
    g = torch.Generator().manual_seed(101)
    for task, (inputs, reference) in EINSUM_TASKS.items():
        if task in unanswered: continue
        for _ in range(5):   # fresh shapes each time: a string that only fits one shape fails
            xs = inputs(g)
            try: out = torch.einsum(answer[task], *xs)
            except Exception as e:
                wrong[task] = f"torch.einsum({answer[task]!r}) on shapes {[tuple(x.shape) for x in xs]} raised: {str(e).splitlines()[0]}"
                break
            if out.shape != reference(*xs).shape or not torch.allclose(out, reference(*xs), atol=1e-5):
                wrong[task] = (f"{answer[task]!r} on shapes {[tuple(x.shape) for x in xs]} gave shape {tuple(out.shape)}"
                               + ('' if out.shape != reference(*xs).shape else ', with the wrong values')
                               + f"; expected shape {tuple(reference(*xs).shape)}")
                break
    if wrong: raise Wrong('\n'.join(f"{k}: {v}" for k, v in wrong.items()), ' | '.join(EINSUM_HINTS[k] for k in wrong))
    if unanswered: raise Wrong(f"{len(EINSUM_TASKS) - len(unanswered)} right so far; still to write: {', '.join(unanswered)}")
    return f"all {len(EINSUM_TASKS)} strings right, each on 5 random shapes"


# 01.4: the last loop gone: matmul by broadcasting alone
@exercise('01.4', 'matmul with no Python loop, by broadcasting')
def check_matmul_no_loop(matmul_no_loop):
    code = code_of(matmul_no_loop)
    for banned in ('@', 'matmul', 'einsum', 'for ', ' mm(', 'bmm', '.dot('):
        if banned in code: raise Wrong(f"your function uses `{banned.strip()}`",
                                       "the exercise is to do it with broadcasting, a product and a sum only")
    g = torch.Generator().manual_seed(7)
    for rows, inner, cols in [(2, 3, 2), (1, 5, 4), (6, 1, 3), (4, 7, 1)] + [tuple(int_(g, 1, 9) for _ in range(3)) for _ in range(4)]:
        a, b = torch.randn(rows, inner, generator=g), torch.randn(inner, cols, generator=g)
        out = matmul_no_loop(a, b)
        if out is Ellipsis or out is None: raise NotAttempted()
        if not torch.is_tensor(out): raise Wrong(f"a {rows}x{inner} times a {inner}x{cols} returned a {type(out).__name__}, not a tensor")
        if tuple(out.shape) != (rows, cols):
            raise Wrong(f"a ({rows}, {inner}) times a ({inner}, {cols}) gave shape {tuple(out.shape)}; expected ({rows}, {cols})",
                        "a[:, :, None] is (rows, inner, 1) and b[None] is (1, inner, cols): which axis is the shared one to sum?")
        if not torch.allclose(out, a @ b, atol=1e-5):
            raise Wrong(f"a ({rows}, {inner}) times a ({inner}, {cols}): the right shape, the wrong values",
                        "sum over the shared (inner) axis, the one that a's columns and b's rows both index")
    return ("right on 8 shapes, including an inner dimension of 1. It builds a (rows, inner, cols) tensor first: "
            "10,000 images by 784x10 weights would need 314 MB, which is why `@` blocks the work instead")
