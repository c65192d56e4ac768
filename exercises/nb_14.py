"""Checks for the exercises of 14_backprop_ninja: every gradient line of the forward pass (14.1-14.4, the lecture's
exercise 1), two fused backward passes the notebook does not show (14.5, 14.6), and a training challenge (14.7)."""
import math
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from exercises import NotAttempted, Wrong, exercise

# For each part of the backward pass: the upstream gradient it starts from (given, from autograd), how the
# learner's function is called, and the gradients it must fill in, each with the hint for its usual mistake.
KEEPDIM = "a sum over the dimension the forward pass broadcast, with keepdim=True"
PARTS = {
    '14.1': ('loss -> logits, line by line', None, lambda fn, f, d, X, Y: fn(f, d, Y), {
        'logprobs': "only the target of each row reaches the loss, and the loss is a mean over the n rows",
        'probs': "d log(x) / dx = 1 / x",
        'counts_sum_inv': "counts_sum_inv was broadcast across each row of counts: " + KEEPDIM,
        'counts': "counts is used twice, in probs and in counts_sum: add both contributions",
        'counts_sum': "d x^-1 / dx = -x^-2",
        'norm_logits': "d exp(x) / dx = exp(x), which is counts",
        'logit_maxes': "logit_maxes was broadcast across each row, with a minus sign: " + KEEPDIM,
        'logits': "the logits reach the loss twice: through norm_logits and through the max (a one-hot of the argmax)"}),
    '14.2': ('logits -> bnraw: output layer, tanh, BatchNorm gain and bias', 'logits', lambda fn, f, d, X, Y: fn(f, d), {
        'h': "h @ W2: the gradient goes back through W2 transposed; only one arrangement has the right shape",
        'W2': "the input transposed times the output gradient; check the shape: (64, 27)",
        'b2': "b2 was broadcast over the batch: sum over dim 0",
        'hpreact': "tanh'(x) = 1 - tanh(x)^2, and tanh(x) is h, the output",
        'bngain': "bngain (1, 64) was broadcast over the batch: " + KEEPDIM,
        'bnraw': "bnraw is multiplied by the gain",
        'bnbias': "bnbias (1, 64) was broadcast over the batch: " + KEEPDIM}),
    '14.3': ('bnraw -> hprebn: BatchNorm piece by piece', 'bnraw', lambda fn, f, d, X, Y: fn(f, d), {
        'bndiff': "bndiff is used twice, in bnraw and in bndiff2: add both contributions",
        'bnvar_inv': "bnvar_inv (1, 64) was broadcast over the batch: " + KEEPDIM,
        'bnvar': "d (x + eps)^-0.5 / dx = -0.5 (x + eps)^-1.5",
        'bndiff2': "the variance divides by n - 1 (Bessel's correction), not n",
        'hprebn': "hprebn is used twice: directly in bndiff and through the mean",
        'bnmeani': "bnmeani (1, 64) was broadcast over the batch, with a minus sign: " + KEEPDIM}),
    '14.4': ('hprebn -> C: first layer, flattening, embedding', 'hprebn', lambda fn, f, d, X, Y: fn(f, d, X), {
        'embcat': "embcat @ W1: the gradient goes back through W1 transposed",
        'W1': "the input transposed times the output gradient; check the shape: (30, 64)",
        'b1': "b1 was broadcast over the batch: sum over dim 0 (its gradient is ~0 in front of BatchNorm, but not exactly)",
        'emb': "embcat is a view of emb: view the gradient back to emb's shape",
        'C': "a token can appear many times in a batch: add every position's gradient into its row (index_add_), never assign"}),
}


def fresh_case(seed, n, dtype=torch.float64):
    "Random parameters (the notebook's initialisation) and a random batch: nothing here is the notebook's data."
    from exp.nb_14 import init_ninja_params
    g = torch.Generator().manual_seed(seed)
    params = init_ninja_params(27, n_embd=10, n_hidden=64, block_size=3, generator=g, dtype=dtype)
    return params, torch.randint(0, 27, (n, 3), generator=g), torch.randint(0, 27, (n,), generator=g)


def grade_row(name, got, t, hint):
    "(state, note, maxdiff) of one gradient against autograd's `t.grad`, by the notebook's `cmp` (shapes first)."
    from exp.nb_14 import cmp
    if got is None or got is Ellipsis: return 'not attempted', '', None
    if not torch.is_tensor(got): return 'wrong', f"a {type(got).__name__}, not a tensor", None
    row = cmp(name, got.detach().to(t.grad.dtype), t)
    if math.isinf(row['maxdiff']): return 'wrong', f"{row['note']}: {hint}", None
    if row['maxdiff'] <= 1e-10 * max(1.0, t.grad.abs().max().item()): return 'correct', '', row['maxdiff']
    return 'wrong', hint, row['maxdiff']


def check_part(id, fn, forward):
    title, upstream, call, hints = PARTS[id]
    if forward is None: raise Wrong("pass the forward pass too: check_exercise(id, your_function, forward_by_hand)")
    rows, error = {}, None
    for seed, n in ((1, 32), (2, 13)):   # two fresh batches, one of an odd size, in float64 so rounding cannot hide a slip
        params, X, Y = fresh_case(seed, n)
        f = forward(params, X, Y)
        f.loss.backward()
        d = SimpleNamespace()
        if upstream: setattr(d, upstream, getattr(f, upstream).grad.clone())
        try: call(fn, f, d, X, Y)
        except NotImplementedError: raise
        except Exception as e: error = error or f"{type(e).__name__}: {str(e).splitlines()[0]}"   # grade what it filled in first
        for name, hint in hints.items():
            state, note, diff = grade_row(name, getattr(d, name, None), getattr(f, name), hint)
            if name not in rows or rows[name][0] == 'correct': rows[name] = (state, note, diff, n)
    states = [r[0] for r in rows.values()]
    if error is None and all(s == 'not attempted' for s in states): raise NotAttempted()
    table = gradient_table(rows)
    if error is None and all(s == 'correct' for s in states):
        return f"all {len(rows)} gradients equal autograd's (float64, batches of 32 and 13)\n{table}"
    wrong = [k for k, r in rows.items() if r[0] == 'wrong']
    raise Wrong((f"your function raised {error}; the gradients it had filled in by then:\n" if error else '')
                + f"{states.count('correct')} of {len(rows)} right"
                + (f"; to write: {', '.join(k for k, r in rows.items() if r[0] == 'not attempted')}" if 'not attempted' in states and not error else '')
                + f"\n{table}",
                f"start with the first wrong one, {wrong[0]}: the rows under it may only inherit its error" if wrong
                else "the line after the last one filled in raised: print the shapes it combines")


def gradient_table(rows):
    lines = [f"  {'gradient':<16}{'state':<15}{'max diff':<10}note"]
    for name, (state, note, diff, n) in rows.items():
        lines.append(f"  {name:<16}{state:<15}{'' if diff is None else f'{diff:.1e}':<10}{note}")
    return '\n'.join(lines)


for _id, (_title, *_) in PARTS.items():
    exercise(_id, _title)(lambda fn, forward=None, _id=_id: check_part(_id, fn, forward))


@exercise('14.5', 'fused backward: cross-entropy with label smoothing')
def check_smoothed_ce(backward):
    g = torch.Generator().manual_seed(5)
    for case in range(6):
        n, v = int(torch.randint(1, 40, (1,), generator=g)), int(torch.randint(2, 30, (1,), generator=g))
        eps = [0.0, 0.1, 0.3][case % 3]
        logits = (torch.randn(n, v, generator=g, dtype=torch.float64) * 3).requires_grad_()
        Y = torch.randint(0, v, (n,), generator=g)
        F.cross_entropy(logits, Y, label_smoothing=eps).backward()
        got = backward(logits.detach(), Y, eps)
        if got is Ellipsis or got is None: raise NotAttempted()
        shown = f"{n} examples, {v} classes, smoothing {eps}"
        if not torch.is_tensor(got) or tuple(got.shape) != (n, v):
            raise Wrong(f"{shown}: came back shape {tuple(getattr(got, 'shape', ()))}; expected ({n}, {v})")
        if torch.allclose(got, logits.grad, rtol=1e-9, atol=1e-12): continue
        if torch.allclose(got / n, logits.grad, rtol=1e-9, atol=1e-12): raise Wrong(f"{shown}: {n} times too large", "the loss is a mean over the batch: divide by n")
        if eps and torch.allclose(got.sum(1), torch.zeros(n, dtype=got.dtype), atol=1e-9):
            raise Wrong(f"{shown}: rows sum to zero but the values are off",
                        "PyTorch's smoothed target is (1 - eps) times the one-hot plus eps / classes on every class, the true one included")
        raise Wrong(f"{shown}: max difference from autograd {(got - logits.grad).abs().max().item():.2g}",
                    "the gradient is softmax minus the target distribution, over n; the target is no longer one-hot")
    return "equal to autograd through F.cross_entropy(..., label_smoothing=eps) on 6 random cases"


@exercise('14.6', 'fused backward: LayerNorm')
def check_layernorm(backward):
    g = torch.Generator().manual_seed(6)
    for case in range(5):
        n, dim = int(torch.randint(1, 20, (1,), generator=g)), int(torch.randint(2, 40, (1,), generator=g))
        x = (torch.randn(n, dim, generator=g, dtype=torch.float64) * 2 + 1).requires_grad_()
        gain = torch.rand(dim, generator=g, dtype=torch.float64) + 0.5
        dout = torch.randn(n, dim, generator=g, dtype=torch.float64)
        (F.layer_norm(x, (dim,), gain, None, eps=1e-5) * dout).sum().backward()
        var_inv = (x.detach().var(1, keepdim=True, unbiased=False) + 1e-5).rsqrt()
        xhat = (x.detach() - x.detach().mean(1, keepdim=True)) * var_inv
        got = backward(dout, gain, var_inv, xhat)
        if got is Ellipsis or got is None: raise NotAttempted()
        shown = f"{n} rows of {dim} features"
        if not torch.is_tensor(got) or tuple(got.shape) != (n, dim):
            raise Wrong(f"{shown}: came back shape {tuple(getattr(got, 'shape', ()))}; expected ({n}, {dim})",
                        "the sums run over the features (dim 1), with keepdim=True")
        if torch.allclose(got, x.grad, rtol=1e-8, atol=1e-10): continue
        factored = gain * var_inv / dim * (dim * dout - dout.sum(1, keepdim=True) - xhat * (dout * xhat).sum(1, keepdim=True))
        if torch.allclose(got, factored, rtol=1e-8, atol=1e-10):
            raise Wrong(f"{shown}: the BatchNorm formula with the gain taken out of the sums",
                        "in LayerNorm the gain varies along the normalised dimension: multiply dout by the gain first, then normalise's backward")
        raise Wrong(f"{shown}: max difference from autograd {(got - x.grad).abs().max().item():.2g}",
                    "normalise over dim 1 with the biased variance (divide by the number of features): no Bessel factor")
    return "equal to autograd through F.layer_norm on 5 random cases"


NOTEBOOK_DEV_20K = 2.2302         # 14's run: dev loss after 20,000 of its steps (lr 0.1, 200 hidden units)
PARAMETER_BUDGET = 12_297


@exercise('14.7', 'challenge: a lower dev loss in 20,000 hand-backpropagated steps', kind='challenge')
def check_challenge(params, Xtr, Xdev, Ydev):
    from exp.nb_14 import ninja_bn_stats, ninja_eval_loss
    if not isinstance(params, (list, tuple)) or len(params) != 7 or not all(torch.is_tensor(p) for p in params):
        raise Wrong("expected the 7 trained tensors C, W1, b1, W2, b2, bngain, bnbias (NINJA_PARAMS order)")
    count = sum(p.numel() for p in params)
    if count > PARAMETER_BUDGET:
        raise Wrong(f"{count:,} parameters, over the budget of {PARAMETER_BUDGET:,}", "keep 200 hidden units or fewer")
    dev = ninja_eval_loss([p.detach() for p in params], Xdev, Ydev, ninja_bn_stats([p.detach() for p in params], Xtr))
    budget = f"{count:,} parameters (at most {PARAMETER_BUDGET:,}), 20,000 steps of batch 32 with your own backward pass"
    if not math.isfinite(dev) or dev >= NOTEBOOK_DEV_20K:
        raise Wrong(f"dev loss {dev:.4f}; the notebook's run had {NOTEBOOK_DEV_20K} after 20,000 steps", "what did the notebook do at step 50,000?")
    return f"dev loss {dev:.4f}, below the notebook's {NOTEBOOK_DEV_20K} at 20,000 steps", dev, NOTEBOOK_DEV_20K, budget
