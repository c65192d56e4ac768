"""Checks for the exercises of 03_minibatch_training: float32's limits, log_softmax and cross-entropy written again
(lesson 13's homework), the batches of an epoch, and a one-epoch challenge."""
import math

import torch
import torch.nn.functional as F

from exercises import NotAttempted, Wrong, check_predictions, code_of, exercise

# 03.1: what float32 makes of a few exponentials ('inf', '0', or 'finite' for a positive finite number)
EXP_QUESTIONS = ('torch.tensor(88.).exp()', 'torch.tensor(89.).exp()', 'torch.tensor(-100.).exp()', 'torch.tensor(-104.).exp()')


def float32_class(expression):
    v = eval(expression, {'torch': torch}).item()
    return 'inf' if math.isinf(v) else '0' if v == 0 else 'finite'


@exercise('03.1', 'predict: overflow and underflow in float32', kind='predict')
def check_float32(answer):
    expected = {q: (lambda v, q=q: str(v).strip().lower() == float32_class(q)) for q in EXP_QUESTIONS}
    hint = ("float32's largest number is about 3.4e38 = e^88.7; its smallest positive one, a subnormal, "
            "is about 1.4e-45 = e^-103.3")
    return check_predictions(answer, expected, dict.fromkeys(EXP_QUESTIONS, hint), "what float32 gives ('inf', '0' or 'finite')")


def logit_cases(g):
    "Fresh logits: ordinary, large, with ties, and extreme (where the naive formula overflows), in several shapes."
    yield torch.randn(4, 10, generator=g)
    yield torch.randn(7, 3, generator=g) * 30
    yield torch.randn(2, 5, 6, generator=g)                        # any number of leading axes
    yield torch.tensor([[100., -100., 0.], [-1000., 1000., 3.], [5., 5., 5.]])


@exercise('03.2', 'log_softmax, stable, written again')
def check_log_softmax(log_softmax):
    code = code_of(log_softmax)
    for banned in ('log_softmax', 'logsumexp', 'softmax'):
        if banned in code: raise Wrong(f"your function calls `{banned}`", "write it from max, exp, sum and log")
    g = torch.Generator().manual_seed(32)
    for x in logit_cases(g):
        got = log_softmax(x)
        if got is Ellipsis or got is None: raise NotAttempted()
        want = F.log_softmax(x.double(), -1).float()
        shown = f"logits of shape {tuple(x.shape)} (largest |x| {x.abs().max().item():.0f})"
        if not torch.is_tensor(got) or got.shape != x.shape:
            raise Wrong(f"{shown}: came back shape {tuple(getattr(got, 'shape', ()))}; expected {tuple(x.shape)}",
                        "reduce over the last axis with keepdim=True, so the result broadcasts back against x")
        if not torch.isfinite(got).all():
            raise Wrong(f"{shown}: came back with inf or nan", "subtract each row's max before exp (the LogSumExp trick)")
        if not torch.allclose(got, want, rtol=1e-4, atol=1e-4):
            if x.ndim == 2 and torch.allclose(got, F.log_softmax(x.double(), 0).float(), rtol=1e-4, atol=1e-4):
                raise Wrong(f"{shown}: normalised over the wrong axis", "each row (the last axis) is one example's scores")
            raise Wrong(f"{shown}: finite, but off from F.log_softmax by {(got - want).abs().max().item():.2g}",
                        "log softmax(x) = x - logsumexp(x), with logsumexp(x) = a + log(sum(exp(x - a))), a = max(x)")
    return "equal to F.log_softmax on 4 kinds of logits, extreme ones included"


@exercise('03.3', 'cross-entropy from log_softmax and the picked targets')
def check_cross_entropy(cross_entropy):
    code = code_of(cross_entropy)
    for banned in ('cross_entropy', 'nll_loss'):
        if banned in code: raise Wrong(f"your function calls `{banned}`", "build it from a log_softmax and integer indexing")
    g = torch.Generator().manual_seed(33)
    for n, c, scale in [(5, 4, 1.), (64, 10, 1.), (3, 7, 100.)]:
        x = torch.randn(n, c, generator=g) * scale
        y = torch.randint(0, c, (n,), generator=g)
        got = cross_entropy(x, y)
        if got is Ellipsis or got is None: raise NotAttempted()
        want = F.cross_entropy(x.double(), y).item()
        shown = f"{n} examples of {c} classes{' (large logits)' if scale > 1 else ''}"
        try: value = float(got)
        except (TypeError, ValueError, RuntimeError):
            raise Wrong(f"{shown}: came back {type(got).__name__} of shape {tuple(getattr(got, 'shape', ()))}; expected one number",
                        "pick one log-probability per row, then average") from None
        if math.isclose(value, want, rel_tol=1e-4, abs_tol=1e-5): continue
        logp = F.log_softmax(x.double(), -1)
        mistakes = {-logp[:, y].mean().item(): "`inp[:, targ]` picks whole columns (an n x n matrix): pick one entry per row with `inp[range(n), targ]`",
                    want * n: "average over the batch, not sum", -want: "the loss is the *negative* log-likelihood"}
        for wrong, hint in mistakes.items():
            if math.isclose(value, wrong, rel_tol=1e-4): raise Wrong(f"{shown}: came back {value:.4f}", hint)
        raise Wrong(f"{shown}: came back {value:.4f}, not the mean negative log-probability of the targets",
                    "log_softmax first (stable), then minus the mean of each row's entry at its target")
    return "equal to F.cross_entropy on 3 random batches, large logits included"


@exercise('03.4', "the batches of one epoch")
def check_batches(batch_indices):
    for n, bs in [(10, 4), (8, 4), (3, 5), (1, 1), (100, 32)]:
        got = batch_indices(n, bs, False, None)
        if got is Ellipsis or got is None: raise NotAttempted()
        got = [list(map(int, b)) for b in got]
        sizes = [len(b) for b in got]
        want = [min(bs, n - i) for i in range(0, n, bs)]
        if sizes != want:
            hint = ("the last batch may be smaller: it is not dropped" if sizes == want[:-1] or sum(sizes) < n
                    else "step through 0..n-1 by bs; the last batch holds what is left")
            raise Wrong(f"n={n}, bs={bs}: batch sizes {sizes}; expected {len(want)} batches", hint)
        if sum(got, []) != list(range(n)): raise Wrong(f"n={n}, bs={bs}, no shuffle: the indices are not 0..{n - 1} in order")
    first = [list(map(int, b)) for b in batch_indices(50, 8, True, torch.Generator().manual_seed(0))]
    again = [list(map(int, b)) for b in batch_indices(50, 8, True, torch.Generator().manual_seed(0))]
    if sorted(sum(first, [])) != list(range(50)):
        raise Wrong("n=50, bs=8, shuffled: some index is missing or repeated", "shuffle a permutation of 0..n-1 (torch.randperm), then cut it")
    if sum(first, []) == list(range(50)): raise Wrong("n=50, bs=8, shuffle=True: the indices came back in order")
    if first != again: raise Wrong("n=50, bs=8, shuffled twice with generators of the same seed: different batches",
                                   "draw the permutation with the generator you were given, so a seed repeats the epoch")
    return "right batch sizes on 5 cases, every index once, and a shuffle that a seeded generator repeats"


NOTEBOOK_ACC = 0.832                  # 03's basic loop: validation accuracy after one epoch (lr 0.1, batch 64)
PARAMETER_BUDGET = 784 * 50 + 50 + 50 * 10 + 10


@exercise('03.5', 'challenge: one epoch of the basic loop, a better validation accuracy', kind='challenge')
def check_one_epoch(model, x_valid, y_valid):
    if not isinstance(model, torch.nn.Module): raise Wrong(f"expected your trained model (an nn.Module), not {type(model).__name__}")
    params = list(model.parameters()) or [p for layer in getattr(model, 'layers', []) for p in layer.parameters()]
    count = sum(p.numel() for p in params)   # 03's MLP keeps its layers in a plain list, which parameters() does not see
    if count > PARAMETER_BUDGET: raise Wrong(f"{count:,} parameters, over the budget of {PARAMETER_BUDGET:,}", "keep 50 hidden units")
    with torch.no_grad(): acc = (model(x_valid).argmax(1) == y_valid).float().mean().item()
    budget = f"{count:,} parameters (at most {PARAMETER_BUDGET:,}), one epoch of plain SGD (no momentum)"
    if acc <= NOTEBOOK_ACC:
        raise Wrong(f"validation accuracy {acc:.4f}; the notebook's basic loop had {NOTEBOOK_ACC}",
                    "the learning rate and the batch size are yours to choose: how many steps does one epoch take?")
    return f"validation accuracy {acc:.4f}, above the notebook's {NOTEBOOK_ACC}", acc, NOTEBOOK_ACC, budget
