"""Checks for the exercises of 16a_gpt_own_autograd: what the GPT's new ops send back (16a.1), and three ops of today's
transformers on the engine's `Function`: GELU (16a.2), cross-entropy with label smoothing (16a.3) and RMSNorm (16a.4),
each against torch.autograd in float64 on fresh random inputs."""
import math

import torch
import torch.nn.functional as F

from exercises import Wrong, check_predictions, exercise
from exercises.nb_10a import _as_number, call_backward, close, engine, make_op, off_by, run_both, shapes_of


# ---- 16a.1: predict what the new ops send back ----

def _embedding_grad(row):
    from exp.nb_16a import EmbeddingLookup, Tensor
    weight = Tensor(torch.randn(6, 3, dtype=torch.float64), requires_grad=True)
    EmbeddingLookup.apply(weight, torch.tensor([[0, 2, 2], [5, 2, 0]])).sum().backward()
    return weight.grad[row, 0].item()


def _softmax_of_sum_grad():
    from exp.nb_16a import Tensor
    s = Tensor(torch.randn(5, dtype=torch.float64), requires_grad=True)
    s.softmax(0).sum().backward()
    return s.grad[0].item()


def _masked(read):
    from exp.nb_16a import Tensor
    s = Tensor(torch.randn(4, dtype=torch.float64), requires_grad=True)
    w = s.masked_fill(torch.tensor([False, True, True, True]), float('-inf')).softmax(0)
    (w * torch.randn(4, dtype=torch.float64)).sum().backward()
    return read(w, s)


def _cross_entropy_grad(other):
    from exp.nb_16a import CrossEntropy, Tensor
    logits, targets = Tensor(torch.zeros(4, 5, dtype=torch.float64), requires_grad=True), torch.tensor([3, 0, 4, 1])
    CrossEntropy.apply(logits, targets).backward()
    return logits.grad[0, 1 if other else 3].item()


def _dropout_kept_grad():
    from exp.nb_16a import InvertedDropout, Tensor
    a = Tensor(torch.ones(1000, dtype=torch.float64), requires_grad=True)
    out = InvertedDropout.apply(a, 0.2, torch.Generator().manual_seed(16))
    out.sum().backward()
    return a.grad[out.data != 0][0].item()


WARM_UP = {   # the line as the learner reads it: (how to run it with exp.nb_16a's ops, hint)
    'weight (6, 3), idx [[0, 2, 2], [5, 2, 0]]: EmbeddingLookup.apply(weight, idx).sum().backward(); weight.grad[2, 0]': (
        lambda: _embedding_grad(2), "count how often idx picks row 2: each use sends its gradient back into that same row"),
    'the same; weight.grad[1, 0]': (
        lambda: _embedding_grad(1), "a row that no index picks takes no part in the output"),
    's (5,) random: s.softmax(0).sum().backward(); s.grad[0]': (
        _softmax_of_sum_grad, "the outputs of a softmax add up to the same number whatever s is: how fast does that sum move?"),
    "s (4,) random, mask [False, True, True, True]: w = s.masked_fill(mask, float('-inf')).softmax(0); w[0]": (
        lambda: _masked(lambda w, s: w.data[0].item()), "exp(-inf) is 0: what is left for the softmax to share out?"),
    'the same, then (w * c).sum().backward() for a random c; s.grad[1]': (
        lambda: _masked(lambda w, s: s.grad[1].item()), "MaskedFill's backward sends nothing through the places it filled"),
    'logits zeros (4, 5), targets [3, 0, 4, 1]: CrossEntropy.apply(logits, targets).backward(); logits.grad[0, 3]': (
        lambda: _cross_entropy_grad(False), "(softmax - onehot) / N: all-zero logits give each of the 5 classes the same probability"),
    'the same; logits.grad[0, 1]': (
        lambda: _cross_entropy_grad(True), "(softmax - onehot) / N, for a class that is not row 0's target: no onehot there"),
    'a (1000,) ones: out = InvertedDropout.apply(a, 0.2, generator); out.sum().backward(); a.grad of an element dropout kept': (
        _dropout_kept_grad, "a kept element was multiplied by 1/(1-p) in the forward, and the backward multiplies by the same mask"),
}


@exercise('16a.1', "predict: what the GPT's new ops send back", kind='predict')
def check_op_predictions(answer):
    expected, hints = {}, {}
    for line, (run, hint) in WARM_UP.items():
        truth = run()
        expected[line] = lambda v, t=truth: _as_number(v) is not None and math.isclose(_as_number(v), t, rel_tol=1e-3, abs_tol=1e-9)
        hints[line] = hint
    return check_predictions(answer, expected, hints, "what the engine gives")


# ---- shared by 16a.2-16a.4 ----

def _gauss(g, *shape, scale=1.):
    return torch.randn(shape, generator=g, dtype=torch.float64) * scale


def _side(g, low=2, high=6): return int(torch.randint(low, high, (1,), generator=g))


def _backward_by_hand(Op, inputs, options, upstream):
    "Apply Op to `inputs` (the first needs a gradient unless a tensor says otherwise) and call its backward by hand."
    out = Op.apply(*inputs, *options)
    if not torch.is_tensor(out.data): raise Wrong(f"forward returned {type(out.data).__name__}", "forward returns a torch tensor")
    returned = out._ctx.backward(upstream.clone()) if out._ctx is not None else None
    n = len(inputs) + len(options)
    if torch.is_tensor(returned):
        raise Wrong("backward returned a bare tensor", "return one gradient per argument of forward, in a tuple: None for the numbers")
    if not isinstance(returned, (tuple, list)) or len(returned) != n:
        raise Wrong(f"backward returned {returned if not isinstance(returned, (tuple, list)) else f'{len(returned)} values'} "
                    f"for forward's {n} arguments", "return one gradient per argument of forward, in order: None for the numbers")
    return out, returned


def _first_matching(got, found, mistakes, last_hint):
    "Raise Wrong(found, the hint of the first usual mistake `got` equals), or the general hint."
    for wrong, hint in mistakes:
        if close(got, wrong, nan=True): raise Wrong(found, hint)
    raise Wrong(found, last_hint)


def _in_graphs(Op, cases, Tensor, g, what, mistake_hint):
    "Run the op inside bigger expressions against torch: values, every gradient, the upstream gradient left intact."
    for name, ours, theirs, inputs in cases:
        data, ref, grads, refs, intact = run_both(lambda *a: ours(Op.apply, *a), theirs, inputs, [True] * len(inputs), Tensor, g)
        shown = f"{name}, shapes {shapes_of(inputs)}"
        if not intact:
            raise Wrong(f"{shown}: your backward changed the gradient it was given, in place",
                        "compute a new tensor (grad * ...), never grad.mul_(...): the engine may hand one tensor to several ops")
        if not close(data, ref): raise Wrong(f"{shown}: the output differs from {what}'s{off_by(data, ref)}", mistake_hint)
        for i, (mine, want) in enumerate(zip(grads, refs)):
            if not close(mine, want):
                raise Wrong(f"{shown}: the gradient of input {i} differs from torch.autograd's{off_by(mine, want)}",
                            "the op alone was right: does backward use what forward saved for *this* use (on ctx), not a global?")


# ---- 16a.2: GELU ----

def _phi(x): return (-x * x / 2).exp() / math.sqrt(2 * math.pi)
def _Phi(x): return (1 + torch.erf(x / math.sqrt(2))) / 2


@exercise('16a.2', 'GELU: the activation of GPT-2 and nanoGPT, forward and backward')
def check_gelu(methods, Function=None, Tensor=None):
    Function, Tensor = engine(Function, Tensor)
    Gelu = make_op('Gelu', methods, Function)
    g = torch.Generator().manual_seed(1602)
    for case in range(3):
        x = _gauss(g, _side(g), _side(g), scale=2.)
        a = Tensor(x.clone(), requires_grad=True)
        upstream = _gauss(g, *x.shape)
        out, (got,) = _backward_by_hand(Gelu, [a], [], upstream)
        shown = f"x of shape {tuple(x.shape)}"
        want_out = F.gelu(x)
        if not close(out.data, want_out):
            if close(out.data, F.gelu(x, approximate='tanh')):
                raise Wrong(f"{shown}: forward gave tanh-approximated values, off by up to {(out.data - want_out).abs().max().item():.3g}",
                            "the exact GELU is x Φ(x) with Φ(x) = (1 + erf(x/√2)) / 2 (torch's default, approximate='none')")
            raise Wrong(f"{shown}: forward gave values off by up to {(out.data - want_out).abs().max().item():.3g}",
                        "GELU(x) = x Φ(x), Φ the standard normal's cumulative distribution: (1 + erf(x/√2)) / 2")
        want = upstream * (_Phi(x) + x * _phi(x))
        if close(got, want): continue
        if not torch.is_tensor(got): raise Wrong(f"{shown}: backward returned ({type(got).__name__},)", "return the input's gradient, a tensor")
        _first_matching(got, f"{shown}, upstream gradient random: the gradient differs from torch.autograd's{off_by(got, want)}",
                        [(_Phi(x) + x * _phi(x), "the chain rule: multiply the local derivative by the gradient that comes in"),
                         (upstream * _Phi(x), "the product rule: x Φ(x) has two factors that move with x, so two terms"),
                         (upstream * x * _phi(x), "the product rule: x Φ(x) has two factors that move with x, so two terms"),
                         (upstream * _phi(x), "φ is the derivative of Φ, not of x Φ(x): use the product rule")],
                        "d/dx x Φ(x) = Φ(x) + x φ(x), with φ(x) = exp(-x²/2) / √(2π), times grad")
    for case in range(3):
        n, k, m = _side(g, 1), _side(g, 1), _side(g, 1)
        x, w, b, c = _gauss(g, n, k), _gauss(g, k, m), _gauss(g, m), _gauss(g, k)
        _in_graphs(Gelu, [('gelu(x @ w + b), a layer of GELU neurons', lambda op, x, w, b: op(x @ w + b),
                           lambda x, w, b: F.gelu(x @ w + b), [x, w, b]),
                          ('gelu(x) * c, c broadcast over the rows', lambda op, x, c: op(x) * c, lambda x, c: F.gelu(x) * c, [x, c]),
                          ('gelu(gelu(x) @ w)', lambda op, x, w: op(op(x) @ w), lambda x, w: F.gelu(F.gelu(x) @ w), [x, w])],
                   Tensor, g, 'F.gelu', "forward returns x Φ(x)")
    return "the same values and gradients as F.gelu under torch.autograd, alone and inside 9 fresh graphs"


# ---- 16a.3: cross-entropy with label smoothing ----

def _smoothed_cases(g):
    "Fresh (logits, targets, smoothing): a few rows and classes, large and small logits, smoothing 0 included."
    cases = []
    for i, smoothing in enumerate([0.1, 0.25, 0.0, 0.05]):
        n, c = _side(g, 1, 7), _side(g, 2, 9)
        cases.append((_gauss(g, n, c, scale=3. if i % 2 else 1.), torch.randint(0, c, (n,), generator=g), smoothing))
    return cases


@exercise('16a.3', 'cross-entropy with label smoothing: a fused op')
def check_smoothed_cross_entropy(methods, Function=None, Tensor=None):
    Function, Tensor = engine(Function, Tensor)
    Smoothed = make_op('SmoothedCrossEntropy', methods, Function)
    g = torch.Generator().manual_seed(1603)
    for logits, targets, eps in _smoothed_cases(g):
        n, c = logits.shape
        shown = f"logits of shape {(n, c)}, smoothing {eps}"
        upstream = _gauss(g)
        out, returned = _backward_by_hand(Smoothed, [Tensor(logits.clone(), requires_grad=True), targets], [eps], upstream)
        got = returned[0]
        want_out = F.cross_entropy(logits, targets, label_smoothing=eps)
        if not close(out.data, want_out):
            logp = logits.log_softmax(-1)
            nll = -logp[torch.arange(n), targets]
            found = f"{shown}: the loss is {float(out.data):.6g}, torch's {want_out.item():.6g}"
            for wrong, hint in [(((1 - eps) * nll - eps * logp.sum(-1)).mean(),
                                 "the smoothed part is the *mean* of -log p over the C classes, not their sum"),
                                ((nll - eps * logp.mean(-1)).mean(), "the target's share is 1 - ε, not 1"),
                                (((1 - eps) * nll - eps / (c - 1) * (logp.sum(-1) - logp[torch.arange(n), targets])).mean(),
                                 "torch spreads ε over all C classes, the target among them: ε / C each"),
                                (((1 - eps) * nll - eps * logp.mean(-1)).sum(), "the loss is a mean over the N rows")]:
                if close(out.data, wrong): raise Wrong(found, hint)
            raise Wrong(found, "the target distribution is (1 - ε) onehot + ε / C; the loss is its cross-entropy with softmax(logits), averaged over rows")
        if any(r is not None for r in returned[1:]):
            raise Wrong(f"{shown}: backward returned a gradient for the targets or the smoothing", "integers and numbers get None")
        soft, onehot = logits.softmax(-1), F.one_hot(targets, c).to(logits.dtype)
        want = upstream * (soft - ((1 - eps) * onehot + eps / c)) / n
        if close(got, want): continue
        if not torch.is_tensor(got): raise Wrong(f"{shown}: backward returned {type(got).__name__} for the logits", "return a tensor of the logits' shape")
        _first_matching(got, f"{shown}, upstream gradient random: the logits' gradient differs from torch.autograd's{off_by(got, want)}",
                        [((soft - ((1 - eps) * onehot + eps / c)) / n, "the chain rule: multiply by the gradient that comes in"),
                         (upstream * (soft - onehot) / n, "the backward of the smoothed target: softmax minus the *smoothed* target"),
                         (upstream * (soft - ((1 - eps) * onehot + eps / c)), "the loss is a mean over the N rows, so is its gradient"),
                         (upstream * (soft - (onehot + eps / c)) / n, "the target's share is 1 - ε, not 1"),
                         (upstream * (soft - ((1 - eps) * onehot + eps / (c - 1) * (1 - onehot))) / n,
                          "torch spreads ε over all C classes, the target among them: ε / C each")],
                        "softmax(logits) minus the smoothed target, (1 - ε) onehot + ε / C, divided by N, times grad")
    for logits, targets, eps in _smoothed_cases(g)[:2]:
        w = _gauss(g, logits.shape[1], logits.shape[1])
        _in_graphs(Smoothed, [('the loss of (x @ w)', lambda op, x, w: op(x @ w, targets, eps),
                               lambda x, w: F.cross_entropy(x @ w, targets, label_smoothing=eps), [logits, w])],
                   Tensor, g, 'F.cross_entropy', "the loss is cross_entropy with label_smoothing=ε")
    return "the same loss and gradients as F.cross_entropy(label_smoothing=ε) under torch.autograd on 6 fresh cases, ε = 0 included"


# ---- 16a.4: RMSNorm ----

def _rms_cases(g):
    "Fresh (x, weight, eps): 1-d, 2-d and 3-d inputs (a batch of sequences), weights far from 1, two eps."
    inputs = [(_gauss(g, _side(g, 3, 9), scale=2.), 1e-6), (_gauss(g, _side(g), _side(g, 3, 9)), 1e-5),
              (_gauss(g, _side(g), _side(g), _side(g, 3, 9), scale=0.5), 1e-6), (_gauss(g, 2, _side(g, 3, 9)) * 1e-3, 1e-5)]
    return [(x, _gauss(g, x.shape[-1]) + 1, eps) for x, eps in inputs]


@exercise('16a.4', "RMSNorm: layer norm without the mean, one fused op")
def check_rms_norm(methods, Function=None, Tensor=None):
    Function, Tensor = engine(Function, Tensor)
    RMSNorm = make_op('RMSNorm', methods, Function)
    g = torch.Generator().manual_seed(1604)
    for x, w, eps in _rms_cases(g):
        d = x.shape[-1]
        shown = f"x of shape {tuple(x.shape)}, eps {eps}"
        upstream = _gauss(g, *x.shape)
        out, returned = _backward_by_hand(RMSNorm, [Tensor(x.clone(), requires_grad=True), Tensor(w.clone(), requires_grad=True)], [eps], upstream)
        want_out = F.rms_norm(x, (d,), w, eps)
        if not close(out.data, want_out):
            found = f"{shown}: forward gave values off by up to {(out.data - want_out).abs().max().item() if out.data.shape == x.shape else float('nan'):.3g}"
            if out.data.shape == x.shape and close(out.data, F.layer_norm(x, (d,), w, None, eps)):
                raise Wrong(found, "RMSNorm does not subtract the mean: divide x itself by √(mean(x²) + ε)")
            if out.data.shape == x.shape and close(out.data, x / (x.square().mean(-1, keepdim=True).sqrt() + eps) * w):
                raise Wrong(found, "ε goes inside the square root, with the mean of the squares")
            raise Wrong(found, "x / √(mean(x²) + ε) over the last dimension, times weight")
        gx, gw = returned[0], returned[1]
        if returned[2] is not None: raise Wrong(f"{shown}: backward returned a gradient for eps", "a number gets None")
        r = (x.square().mean(-1, keepdim=True) + eps).rsqrt()
        xhat, ghat = x * r, upstream * w
        want_x = r * (ghat - xhat * (ghat * xhat).mean(-1, keepdim=True))
        want_w = (upstream * xhat).reshape(-1, d).sum(0)
        if not close(gx, want_x):
            if not torch.is_tensor(gx): raise Wrong(f"{shown}: backward returned {type(gx).__name__} for x", "return a tensor of x's shape")
            _first_matching(gx, f"{shown}, upstream gradient random: x's gradient differs from torch.autograd's{off_by(gx, want_x)}",
                            [(r * ghat, "r = 1/√(mean(x²) + ε) depends on x too: every element of a row moves every output of it"),
                             (r * (upstream - xhat * (upstream * xhat).mean(-1, keepdim=True)), "the gradient passes through the weight first: ĝ = grad * weight"),
                             (r * (ghat - ghat.mean(-1, keepdim=True) - xhat * (ghat * xhat).mean(-1, keepdim=True)),
                              "that is layer norm's backward: RMSNorm subtracts no mean, so there is no mean term")],
                            "with r = 1/√(mean(x²) + ε), x̂ = x r and ĝ = grad * weight: dx = r (ĝ - x̂ mean(ĝ x̂))")
        if not close(gw, want_w):
            if torch.is_tensor(gw) and gw.shape != w.shape:
                raise Wrong(f"{shown}: the weight's gradient has shape {tuple(gw.shape)}, the weight {tuple(w.shape)}",
                            "the weight is used at every position of every row: sum its gradient over all dimensions but the last")
            _first_matching(gw, f"{shown}: the weight's gradient differs from torch.autograd's{off_by(gw, want_w)}",
                            [((upstream * x).reshape(-1, d).sum(0), "the weight multiplies the *normalised* x̂ = x r, not x")],
                            "the weight multiplies x̂: its gradient is grad * x̂, summed over every position")
    for x, w, eps in _rms_cases(g)[1:3]:
        m = _gauss(g, x.shape[-1], 3)
        _in_graphs(RMSNorm, [('rms_norm(x, w) @ m', lambda op, x, w, m: op(x, w, eps) @ m,
                              lambda x, w, m: F.rms_norm(x, x.shape[-1:], w, eps) @ m, [x, w, m]),
                             ('rms_norm(rms_norm(x, w), w): the weight used twice', lambda op, x, w: op(op(x, w, eps), w, eps),
                              lambda x, w: F.rms_norm(F.rms_norm(x, x.shape[-1:], w, eps), x.shape[-1:], w, eps), [x, w])],
                   Tensor, g, 'F.rms_norm', "x / √(mean(x²) + ε) over the last dimension, times weight")
    return "the same values and gradients as F.rms_norm under torch.autograd on 8 fresh cases, 1-d to 3-d, weight used twice"
