"Checks for the exercises of 02c_numpy_from_scratch: shapes and factors from the stream, biases in the hand-written backward, a check against the teacher that catches the stream's bugs, and a challenge at the stream's budget."
import math, random

import numpy as np
import torch
import torch.nn.functional as F

from exercises import NotAttempted, Wrong, check_predictions, exercise


def call(fn, shown, *args, hint=''):
    "The learner's function on one input; an error becomes a Wrong that names the input."
    try: return fn(*args)
    except (NotImplementedError, NotAttempted): raise
    except Exception as e: raise Wrong(f"{shown}: your function raised {type(e).__name__}: {e}", hint) from None


def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def as_array(v):
    "A float64 array from a list, tuple or array (None when it is not one)."
    try: return np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError): return None


def as_shape(v):
    if isinstance(v, (tuple, list)) and all(isinstance(k, (int, np.integer)) for k in v): return tuple(int(k) for k in v)
    return v


# ---- 02c.1: shapes and factors ----

QUESTIONS = ('np.max(h, 0).shape, for h of shape (128, 64)',
             'np.maximum(h, 0).shape, for h of shape (128, 64)',
             'dw1.shape, for x of shape (128, 784) and w1 of shape (784, 128)',
             'dz[0] for a batch of 4 whose row 0 has softmax [0.7, 0.2, 0.1] and label 0',
             'how many times smaller (-onehot * lsm).mean() is than the NLL, with 10 classes',
             'how many times too large each step is with stale_bs = 4 and batches of 64')


def truths():
    "The answers, computed: NumPy's shapes, the notebook's dz, and the two bugs' factors on random data."
    rng = np.random.default_rng(0)
    h = rng.standard_normal((128, 64))
    x, w1 = rng.standard_normal((128, 784)), rng.standard_normal((784, 128))
    dh = rng.standard_normal((128, 128))
    softmax0, n = np.array([0.7, 0.2, 0.1]), 4
    dz0 = (softmax0 - np.eye(3)[0]) / n
    lsm = log_softmax(rng.standard_normal((32, 10)))
    y = rng.integers(0, 10, 32)
    onehot = np.eye(10)[y]
    nll, class_mean = -lsm[np.arange(32), y].mean(), (-onehot * lsm).mean()
    assert (x @ w1).shape == dh.shape
    return dict(zip(QUESTIONS, (np.max(h, 0).shape, np.maximum(h, 0).shape, (x.T @ dh).shape, dz0, nll / class_mean, 64 / 4)))


def matches(v, t):
    if isinstance(t, tuple): return as_shape(v) == t
    if isinstance(t, np.ndarray):
        a = as_array(v)
        return a is not None and a.shape == t.shape and np.allclose(a, t, rtol=1e-6, atol=1e-9)
    try: return math.isclose(float(v), t, rel_tol=1e-6)
    except (TypeError, ValueError): return False


def hint_for(question, value):
    q = QUESTIONS
    mistakes = {
        q[0]: [((128,), "axis 0 is the batch: np.max(h, 0) takes the largest of each column, over the batch"),
               ((128, 64), "np.max's second argument is an axis, not a second array to compare with")],
        q[1]: [((64,), "np.maximum compares two arrays elementwise (0 broadcasts): it reduces nothing")],
        q[2]: [((128, 128), "a gradient has the shape of what it is the gradient of"),
               ((128, 784), "a gradient has the shape of what it is the gradient of: that is x's")],
        q[3]: [(np.array([-0.3, 0.2, 0.1]), "the loss is a mean over the 4 examples: divide by N"),
               (np.array([0.075, -0.05, -0.025]), "softmax minus one-hot, not the other way round"),
               (np.array([0.7, 0.2, 0.1]) / 4, "subtract the one-hot target: the right class is pushed up")],
        q[4]: [(0.1, "how many times *smaller*: the NLL divided by the class mean"),
               (1, "(-onehot * lsm) has N x 10 entries, and only N of them are not zero")],
        q[5]: [(32, "the notebook's 32 was 128 / 4; here the batch holds 64"),
               (1 / 16, "dz divides by 4 when it should divide by 64: the gradient comes out larger")]}
    for wrong, hint in mistakes[question]:
        if matches(value, wrong if isinstance(wrong, (tuple, np.ndarray)) else float(wrong)): return hint
    return {q[0]: "np.max(h, 0) is np.max(h, axis=0): a reduction", q[1]: "elementwise, with broadcasting",
            q[2]: "the gradient of w1 has w1's shape", q[3]: "dz = (softmax - onehot) / N, row by row (a list of 3 numbers)",
            q[4]: "count the entries .mean() divides by", q[5]: "dz divides by stale_bs instead of the batch's size"}[question]


@exercise('02c.1', 'shapes and factors from the stream', kind='predict')
def check_numbers(answer):
    truth = truths()
    expected = {q: (lambda v, t=t: matches(v, t)) for q, t in truth.items()}
    hints = {q: hint_for(q, answer.get(q)) if isinstance(answer, dict) else '' for q in QUESTIONS}
    message = check_predictions(answer, expected, hints, "what NumPy gives")
    return message + ". Every one of these runs without an error when it is wrong: only the shapes and the sizes tell"


# ---- 02c.2: the network with biases, backward by hand ----

def bias_cases(rng):
    "(N, D, H, C): a batch of one, a square layer (where a transpose keeps the shape), and others."
    return [(rng.randint(5, 40), rng.randint(6, 30), rng.randint(4, 20), rng.randint(3, 10)),
            (1, rng.randint(6, 30), rng.randint(4, 20), rng.randint(3, 10)),
            (16, 12, 12, 12),
            (rng.randint(50, 130), rng.randint(30, 80), rng.randint(10, 40), 10)]


def teacher_bias(x, y, w1, b1, w2, b2):
    "PyTorch's loss and gradients for the network with biases, in float64: the oracle."
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (w1, b1, w2, b2)]
    z = (torch.tensor(x) @ ts[0] + ts[1]).relu() @ ts[2] + ts[3]
    loss = F.cross_entropy(z, torch.tensor(y))
    loss.backward()
    return [loss.item()] + [t.grad.numpy() for t in ts]


def variants(x, y, w1, b1, w2, b2):
    "The usual mistakes, computed: {name: (loss, dw1, db1, dw2, db2)}."
    n = len(x)
    h = x @ w1 + b1; r = np.maximum(h, 0); z = r @ w2 + b2
    lsm = log_softmax(z)
    onehot = np.eye(z.shape[1])[y]
    dz = (np.exp(lsm) - onehot) / n
    dh, dh_nomask = (dz @ w2.T) * (h > 0), dz @ w2.T
    loss = -lsm[np.arange(n), y].mean()
    return {'db summed twice': (loss, x.T @ dh, dh.mean(0), r.T @ dz, dz.mean(0)),
            'no mask': (loss, x.T @ dh_nomask, dh_nomask.sum(0), r.T @ dz, dz.sum(0)),
            'no 1/N': (loss, n * x.T @ dh, n * dh.sum(0), n * r.T @ dz, n * dz.sum(0)),
            'class mean': (loss / z.shape[1], x.T @ dh / z.shape[1], dh.sum(0) / z.shape[1], r.T @ dz / z.shape[1], dz.sum(0) / z.shape[1]),
            'sum loss': (loss * n, None, None, None, None),
            'transposed': (loss, (x.T @ dh).T, dh.sum(0), (r.T @ dz).T, dz.sum(0))}


BIAS_HINTS = {'db summed twice': "dz already holds the 1/N of the mean: a bias gradient *sums* over the batch",
              'no mask': "the ReLU passes the gradient only where h > 0: multiply by that mask before the bias and weight gradients",
              'no 1/N': "the loss is a mean over the N examples: dz = (softmax - onehot) / N",
              'class mean': "the loss is a mean over the examples, not over the N x C entries of onehot * log-probs",
              'sum loss': "the loss is the mean negative log-probability of the right class, not the sum",
              'transposed': "dimensional analysis: a weight's gradient has the weight's shape, (in, out); only one product gives it"}
NAMES = ('loss', 'dw1', 'db1', 'dw2', 'db2')


@exercise('02c.2', 'loss_and_grads_bias: the network with biases, backward by hand')
def check_bias_grads(loss_and_grads_bias):
    rng, g = random.Random(32), np.random.default_rng(32)
    for n, d, hdim, c in bias_cases(rng):
        x = g.standard_normal((n, d))
        w1, b1 = g.standard_normal((d, hdim)) / math.sqrt(d), g.standard_normal(hdim) * 0.5   # biases that move the ReLU's kink
        w2, b2 = g.standard_normal((hdim, c)) / math.sqrt(hdim), g.standard_normal(c) * 0.5
        y = g.integers(0, c, n)
        shown = f"x {x.shape}, w1 {w1.shape}, b1 {b1.shape}, w2 {w2.shape}, b2 {b2.shape} (N={n})"
        got = call(loss_and_grads_bias, shown, x.copy(), y.copy(), w1.copy(), b1.copy(), w2.copy(), b2.copy())
        if got is Ellipsis or got is None: raise NotAttempted()
        if not isinstance(got, (tuple, list)) or len(got) != 5:
            raise Wrong(f"{shown}: returned {type(got).__name__}; expected five things: loss, dw1, db1, dw2, db2")
        if any(torch.is_tensor(v) for v in got):
            raise Wrong(f"{shown}: a torch tensor came back", "NumPy only: PyTorch is the teacher here, not the student")
        want = teacher_bias(x, y, w1, b1, w2, b2)
        wrong = variants(x, y, w1, b1, w2, b2)
        for k, (name, v, t) in enumerate(zip(NAMES, got, want)):
            a = as_array(v)
            if a is None or a.shape != np.shape(t):
                raise Wrong(f"{shown}: {name} came back with shape {getattr(a, 'shape', type(v).__name__)}; expected {np.shape(t)}",
                            "a bias gradient has the bias's shape: sum over the batch axis (axis 0)" if name.startswith('db')
                            else "the loss is one number" if name == 'loss'
                            else BIAS_HINTS['transposed'] if a is not None and a.shape == np.shape(t)[::-1]
                            else "a gradient has the shape of what it is the gradient of")
            if np.allclose(a, t, rtol=1e-7, atol=1e-10): continue
            hint = next((BIAS_HINTS[m] for m, vs in wrong.items() if vs[k] is not None and not np.allclose(vs[k], t, rtol=1e-7, atol=1e-10)
                         and np.allclose(a, vs[k], rtol=1e-7, atol=1e-10)),
                        "go back one step at a time: logits, hidden activations, pre-activations, and each parameter on the way")
            raise Wrong(f"{shown}: {name} differs from autograd's (max |difference| {np.abs(a - t).max():.3g}, "
                        f"max |autograd| {np.abs(t).max():.3g})", hint)
    return ("the same loss and gradients as autograd on 4 random networks and batches, a batch of one included. A bias gets "
            "the sum of its layer's output gradient over the batch: db2 = dz.sum(0), db1 = dh.sum(0)")


# ---- 02c.3: a check against the teacher that catches the stream's bugs ----

def student(x, y, w1, w2, bug=None):
    "The notebook's loss_and_grads in the data's dtype, or one of the bugs: the candidates the learner's check must judge."
    n = len(x)
    if bug == 'float64':   # right, but rounded in another order: computed in float64, handed back in the data's dtype
        out = student(x.astype(np.float64), y, w1.astype(np.float64), w2.astype(np.float64))
        return tuple(np.asarray(v).astype(x.dtype) for v in out)
    h = x @ w1; r = np.maximum(h, 0); z = r @ w2
    lsm = log_softmax(z)
    onehot = np.zeros_like(z); onehot[np.arange(n), y] = 1
    dz = (np.exp(lsm) - onehot) / {'class mean': onehot.size, 'stale batch size': 4}.get(bug, n)
    dh = (dz @ w2.T) * (h > 0) if bug != 'no relu mask' else dz @ w2.T
    loss = {'class mean': (-onehot * lsm).mean(), 'summed loss': -lsm[np.arange(n), y].sum()}.get(bug, -lsm[np.arange(n), y].mean())
    dw1, dw2 = x.T @ dh, r.T @ dz
    return loss, (dw1.T if bug == 'transposed' else dw1), dw2


TEACHER_CASES = [   # (what the data is like, N, D, H, C): raw pixels as the stream had them, and tiny gradients
    ('raw pixels 0-255, default-init weights', 64, 100, 32, 10),
    ('inputs of std 0.01, small weights (gradients of order 1e-4)', 32, 60, 24, 10),
    ('a batch of one', 1, 50, 20, 5),
    ('raw pixels, 7 images', 7, 80, 16, 10)]

BUGS = {'stale batch size': "it divides dz by a stale batch size of 4: every gradient is N/4 times too large",
        'class mean': "the loss averaged over N x classes: the loss and every gradient 10 times too small",
        'summed loss': "its gradients are right, but its loss is summed over the batch, N times too large",
        'no relu mask': "dh forgets the ReLU's mask",
        'transposed': "it returns dw1 transposed"}
BUG_HINTS = {'summed loss': "compare the loss value too: a wrong loss can come with right gradients, and no gradient check sees it",
             'class mean': "compare the loss, and each gradient relative to its size (np.allclose with an rtol)",
             'stale batch size': "compare each gradient relative to its size, entry by entry (np.allclose with an rtol)",
             'no relu mask': "compare each gradient relative to its size, entry by entry",
             'transposed': "compare the shapes first: a gradient of the wrong shape is wrong"}
TINY_HINT = ("here every gradient is of order 1e-4, so an absolute tolerance of a fixed size lets anything through: "
             "scale the slack to the largest gradient entry")


def data(case, seed):
    shown, n, d, hdim, c = case
    g = np.random.default_rng(seed)
    if 'raw' in shown:
        x = g.integers(0, 256, (n, d)).astype(np.float32)
        w1 = g.uniform(-1, 1, (d, hdim)).astype(np.float32) / np.float32(math.sqrt(d))
        w2 = g.uniform(-1, 1, (hdim, c)).astype(np.float32) / np.float32(math.sqrt(hdim))
    else:
        x = (g.standard_normal((n, d)) * (0.01 if 'small' in shown else 1)).astype(np.float32)
        w1 = (g.standard_normal((d, hdim)) * (0.01 if 'small' in shown else 1 / math.sqrt(d))).astype(np.float32)
        w2 = (g.standard_normal((hdim, c)) * (0.01 if 'small' in shown else 1 / math.sqrt(hdim))).astype(np.float32)
    return x, g.integers(0, c, n), w1, w2


@exercise('02c.3', "agrees_with_teacher: a check against PyTorch that catches the stream's bugs")
def check_teacher(agrees_with_teacher):
    for k, case in enumerate(TEACHER_CASES):
        x, y, w1, w2 = data(case, 330 + k)
        shown = f"{case[0]} (x {x.shape} float32, w1 {w1.shape}, w2 {w2.shape})"
        for bug in [None, 'float64', 'summed loss', 'class mean', 'stale batch size', 'no relu mask', 'transposed']:
            if (bug, len(x)) in (('stale batch size', 4), ('summed loss', 1)): continue   # no bug for that batch size
            def candidate(x, y, w1, w2, bug=bug): return student(x, y, w1, w2, bug)
            verdict = call(agrees_with_teacher, f"{shown}, judging {'the right loss_and_grads' if bug is None else 'a bug'}",
                           candidate, x.copy(), y.copy(), w1.copy(), w2.copy(),
                           hint="compare the shapes first: a gradient of the wrong shape should make your check say False, not crash"
                           if bug == 'transposed' else '')
            if verdict is Ellipsis or verdict is None: raise NotAttempted()
            if torch.is_tensor(verdict) and verdict.dtype == torch.bool and verdict.numel() == 1: verdict = bool(verdict)
            if not isinstance(verdict, (bool, np.bool_)):
                raise Wrong(f"{shown}: came back {type(verdict).__name__}; expected True or False")
            if bug in (None, 'float64') and not verdict:
                raise Wrong(f"{shown}: you judged the notebook's own loss_and_grads wrong"
                            + (" (computed in float64, handed back in float32)" if bug else ''),
                            "float32 agrees with autograd only to rounding: a relative tolerance of about 1e-4, plus an absolute slack "
                            "scaled to the largest gradient entry (entries near zero have large relative errors)")
            if bug not in (None, 'float64') and verdict:
                raise Wrong(f"{shown}: you judged a bug right: {BUGS[bug]}",
                            TINY_HINT if 'small' in case[0] and bug in ('stale batch size', 'no relu mask') else BUG_HINTS[bug])
    return ("right on 4 kinds of data: the notebook's loss_and_grads passes (in float32, and rounded another way), and a "
            "summed loss, the class mean, the stale batch size, a missing ReLU mask and a transposed gradient all fail")


# ---- 02c.4: the challenge: a better accuracy at the stream's budget, chosen on validation, reported on test once ----

def net_accuracy(x, y, w1, w2, shift, scale):
    z = np.maximum((np.asarray(x, dtype=np.float32) - shift) / scale @ w1, 0) @ w2
    return float((z.argmax(1) == np.asarray(y)).mean())


@exercise('02c.4', "challenge: beat the stream's recipe at its budget, on a validation split; the test set once", kind='challenge')
def check_challenge(my_net, x_valid, y_valid, reference_valid, x_test, y_test, reference_test):
    if not isinstance(my_net, dict) or set(my_net) != {'w1', 'w2', 'shift', 'scale'}:
        raise Wrong("expected a dict with keys 'w1', 'w2', 'shift' and 'scale'", "keep the starter's dict and fill it in")
    w1, w2 = my_net['w1'], my_net['w2']
    if not all(isinstance(w, np.ndarray) for w in (w1, w2)):
        raise Wrong(f"w1 and w2 came back as {type(w1).__name__} and {type(w2).__name__}; expected NumPy arrays",
                    "the network is trained in NumPy; PyTorch is only the teacher")
    if w1.shape != (784, 128) or w2.shape != (128, 10):
        raise Wrong(f"w1 {w1.shape}, w2 {w2.shape}: the budget is the stream's network, w1 (784, 128) and w2 (128, 10), no biases")
    try: shift, scale = float(my_net['shift']), float(my_net['scale'])
    except (TypeError, ValueError): raise Wrong("'shift' and 'scale' must be numbers: the inputs are (x - shift) / scale") from None
    if not scale > 0: raise Wrong(f"scale {scale}: the inputs are divided by it, so it must be positive")
    if any(v is None for v in (x_valid, y_valid, reference_valid, x_test, y_test, reference_test)):
        raise Wrong("the check needs x_valid, y_valid, stream_valid_acc, x_test, y_test and numpy_acc from the notebook")
    acc, reference = net_accuracy(x_valid, y_valid, w1, w2, shift, scale), float(reference_valid)
    budget = ("784-128-10, no biases; one pass over fit_batches (1000 of 128, none from the validation split); "
              "inputs (x - shift) / scale; NumPy only")
    if not acc > reference:
        raise Wrong(f"validation accuracy {acc:.4f}; the stream's recipe reached {reference:.4f} on the same split in the same budget",
                    "the stream fed raw pixels at a tiny learning rate: what did notebook 02 do to its inputs, and what init suits a ReLU layer?")
    test_acc = net_accuracy(x_test, y_test, w1, w2, shift, scale)   # measured once, after the choice, never a criterion
    return (f"validation accuracy {acc:.4f}, above the stream's recipe's {reference:.4f} on the same split. Your settings "
            f"are final, so the test set, once: {test_acc:.4f} (the notebook's NumPy network: {float(reference_test):.4f})",
            acc, reference, budget)
