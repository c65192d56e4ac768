"""Checks for the exercises of 13_activations_batchnorm: the loss at step 0 and tanh saturation (13.1), Kaiming's
initialisation for tanh (13.2), a BatchNorm folded into the Linear before it for inference (13.3), and a challenge on
the first 2,000 steps (13.4)."""
import math

import torch

from exercises import NotAttempted, Wrong, check_predictions, exercise


def saturated_share(std, limit=0.97):
    "P(|tanh(x)| > limit) for x ~ N(0, std²): both tails beyond atanh(limit)."
    return math.erfc(math.atanh(limit) / (std * math.sqrt(2)))


def near_number(value, target, tol):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value - target) <= tol


UNIFORM_27 = 'loss at step 0 of a model that gives all 27 characters the same probability'
UNIFORM_65 = 'the same for the 65 characters of Tiny Shakespeare (notebook 16)'
SATURATED_1 = 'share of tanh outputs with |t| > 0.97 when the pre-activations are N(0, 1)'
SATURATED_3 = 'the same when the pre-activations are N(0, 3²), standard deviation 3'


@exercise('13.1', 'predict: the loss at step 0 and the share of saturated tanh units', kind='predict')
def check_start_predictions(answer):
    loss_hint = "with all V probabilities equal, the target gets 1/V, and the loss is minus its natural logarithm"
    tail_hint = ("|tanh(x)| > 0.97 means |x| > atanh(0.97); count both tails of the normal distribution "
                 "(math.erfc does it, or draw a million samples with torch.randn)")
    expected = {UNIFORM_27: lambda v: near_number(v, math.log(27), 0.005),
                UNIFORM_65: lambda v: near_number(v, math.log(65), 0.005),
                SATURATED_1: lambda v: near_number(v, saturated_share(1), 0.004),
                SATURATED_3: lambda v: near_number(v, saturated_share(3), 0.01)}
    hints = {UNIFORM_27: loss_hint, UNIFORM_65: loss_hint, SATURATED_1: tail_hint,
             SATURATED_3: tail_hint + "; with standard deviation 3 the same |x| is a third as many deviations out"}
    message = check_predictions(answer, expected, hints, "within rounding of the true value (give a share as a fraction, 0.5 for 50%)")
    return (message + f". A uniform guess is the loss to expect at step 0, whatever the vocabulary; at N(0, 3²) already "
            f"{saturated_share(3):.0%} of the outputs pass almost no gradient back (notebook 12's start, at a standard "
            f"deviation of about 5.4, had 68%)")


KAIMING_CASES = ((7, 3000, 1), (30, 1000, 2), (123, 400, 3), (500, 200, 4))


@exercise('13.2', 'kaiming_tanh: a weight for x @ W with the standard deviation a tanh layer needs')
def check_kaiming_tanh(kaiming_tanh):
    for fan_in, fan_out, seed in KAIMING_CASES:
        w = kaiming_tanh(fan_in, fan_out, torch.Generator().manual_seed(seed))
        if w is None or w is Ellipsis: raise NotAttempted()
        shown = f"kaiming_tanh({fan_in}, {fan_out}, generator)"
        if not torch.is_tensor(w):
            raise Wrong(f"{shown}: came back {type(w).__name__}; expected a tensor")
        if tuple(w.shape) == (fan_out, fan_in) and fan_in != fan_out:
            raise Wrong(f"{shown}: shape {tuple(w.shape)}, nn.Linear's layout",
                        "our Linear computes x @ weight, so weight is (fan_in, fan_out)")
        if tuple(w.shape) != (fan_in, fan_out):
            raise Wrong(f"{shown}: shape {tuple(w.shape)}; expected ({fan_in}, {fan_out})")
        if not w.is_floating_point(): raise Wrong(f"{shown}: dtype {w.dtype}; expected floating point numbers")
        w = w.detach().double()
        again = kaiming_tanh(fan_in, fan_out, torch.Generator().manual_seed(seed))
        if not torch.equal(w, again.detach().double()):
            raise Wrong(f"{shown}: two calls with generators seeded alike gave different weights",
                        "draw the numbers with the generator you are given (torch.randn(..., generator=generator))")
        want = (5 / 3) / math.sqrt(fan_in)
        std, mean = w.std().item(), w.mean().item()
        if abs(mean) > 5 * want / math.sqrt(w.numel()):
            raise Wrong(f"{shown}: mean {mean:.4f}; the weights should be centred on 0",
                        "draw from a distribution with mean 0, such as the standard normal, and only scale it")
        if abs(std / want - 1) <= 0.03: continue
        got = f"{shown}: standard deviation {std:.4f}, expected {want:.4f}"
        mistakes = [(1 / math.sqrt(fan_in), "the gain is missing: tanh squashes, and Kaiming multiplies by 5/3 to make up for it"),
                    (math.sqrt(2) / math.sqrt(fan_in), "sqrt(2) is ReLU's gain; tanh's is 5/3 (nn.init.calculate_gain('tanh'))"),
                    ((5 / 3) / fan_in, "divide by the square root of fan_in: the variance of a sum of fan_in terms is fan_in times theirs"),
                    ((5 / 3) / math.sqrt(fan_out), "the scale comes from the number of inputs each output sums, fan_in, not fan_out"),
                    (5 / 3, "the gain alone is not enough: divide by sqrt(fan_in) too"),
                    ((5 / 3) ** 2 / math.sqrt(fan_in), "5/3 is the gain of the standard deviation: use it once, not squared")]
        for std_of_mistake, hint in mistakes:
            if abs(std / std_of_mistake - 1) <= 0.03: raise Wrong(got, hint)
        raise Wrong(got, "the standard deviation is gain / sqrt(fan_in), with tanh's gain 5/3")
    stds = deep_tanh_stds(kaiming_tanh)
    return (f"the right standard deviation on {len(KAIMING_CASES)} fresh shapes. Ten tanh layers of 200 units initialised "
            f"with it keep the spread of their outputs between {min(stds):.2f} and {max(stds):.2f}")


def deep_tanh_stds(kaiming_tanh, width=200, depth=10):
    "The standard deviation of each layer's tanh output in a stack initialised with kaiming_tanh (a message, not a check)."
    g = torch.Generator().manual_seed(13)
    x, stds = torch.randn(1000, width, generator=g), []
    for _ in range(depth):
        x = torch.tanh(x @ kaiming_tanh(width, width, g).detach().float())
        stds.append(x.std().item())
    return stds


def fold_cases():
    "Fresh Linear + BatchNorm1d pairs in eval mode: our layers and PyTorch's, square and not, with and without bias."
    from torch import nn
    from exp.nb_13 import BatchNorm1d, Linear
    g = torch.Generator().manual_seed(1313)
    cases = []
    for fan_in, fan_out, bias, eps, ours in ((16, 16, True, 0.1, True), (30, 20, True, 1e-5, True),
                                             (12, 25, False, 1e-3, False), (9, 9, True, 0.5, False)):
        linear = Linear(fan_in, fan_out, bias=bias, generator=g).double()
        bn = (BatchNorm1d(fan_out, eps=eps) if ours else nn.BatchNorm1d(fan_out, eps=eps)).double()
        with torch.no_grad():
            if bias: linear.bias.copy_(torch.randn(fan_out, generator=g, dtype=torch.float64))
            bn.weight.copy_(torch.rand(fan_out, generator=g, dtype=torch.float64) * 2 + 0.2)
            bn.bias.copy_(torch.randn(fan_out, generator=g, dtype=torch.float64))
            bn.running_mean = torch.randn(fan_out, generator=g, dtype=torch.float64) * 3
            bn.running_var = torch.rand(fan_out, generator=g, dtype=torch.float64) * 4 + 0.05
        bn.eval()
        x = torch.randn(50, fan_in, generator=g, dtype=torch.float64)
        cases.append((linear, bn, x))
    return cases


def folded_variants(linear, bn):
    "The usual mistakes, each as the (weight, bias) it gives, with its hint."
    W, gamma, beta = linear.weight.detach(), bn.weight.detach(), bn.bias.detach()
    b = torch.zeros(W.shape[1], dtype=W.dtype) if linear.bias is None else linear.bias.detach()
    mean, var, eps = bn.running_mean, bn.running_var, bn.eps
    def fold(scale, shift_b=b, mean=mean): return W * scale, (shift_b - mean) * scale + beta
    return [(fold(gamma / var.sqrt()), "eps belongs under the square root, with the running variance: sqrt(running_var + eps)"),
            (fold(gamma / (var + eps)), "divide by the standard deviation, the square root of running_var + eps"),
            (fold(gamma * (var + eps).sqrt()), "the layer divides by the standard deviation; it does not multiply"),
            (fold(gamma / (var + eps).sqrt(), mean=torch.zeros_like(mean)), "the running mean is subtracted before scaling: it moves into the bias"),
            (fold(gamma / (var + eps).sqrt(), shift_b=torch.zeros_like(b)), "the Linear's own bias goes through the normalisation too, shifted and scaled with the rest"),
            ((W * gamma / (var + eps).sqrt(), (b - mean) * gamma / (var + eps).sqrt()), "beta, the BatchNorm's bias, is added at the end"),
            ((W * (gamma / (var + eps).sqrt())[:, None], (b - mean) * gamma / (var + eps).sqrt() + beta) if W.shape[0] == W.shape[1] else None,
             "weight is (fan_in, fan_out): output feature j is column j, so scale the columns, not the rows")]


@exercise('13.3', 'fold_batchnorm: a BatchNorm in eval mode folded into the Linear before it')
def check_fold(fold_batchnorm):
    cases = fold_cases()
    for linear, bn, x in cases:
        kind = 'our' if type(bn).__module__.startswith('exp') else "PyTorch's"
        shown = (f"Linear({linear.weight.shape[0]}, {linear.weight.shape[1]}, bias={linear.bias is not None}) then {kind} "
                 f"BatchNorm1d with eps {bn.eps:g} in eval mode")
        before = [t.detach().clone() for t in (*linear.parameters(), *bn.parameters(), bn.running_mean, bn.running_var)]
        got = fold_batchnorm(linear, bn)
        if got is None or got is Ellipsis: raise NotAttempted()
        after = [t.detach() for t in (*linear.parameters(), *bn.parameters(), bn.running_mean, bn.running_var)]
        if not all(torch.equal(a, b) for a, b in zip(before, after)):
            raise Wrong(f"{shown}: your function changed the layers' own tensors in place",
                        "build new tensors (weight * scale makes one) and leave the two layers as they were")
        if not isinstance(got, (tuple, list)) or len(got) != 2 or not all(torch.is_tensor(t) for t in got):
            raise Wrong(f"{shown}: came back {type(got).__name__}; expected (weight, bias), two tensors")
        W, b = (t.detach().double() for t in got)
        if tuple(W.shape) != tuple(linear.weight.shape) or tuple(b.shape) != (linear.weight.shape[1],):
            raise Wrong(f"{shown}: shapes {tuple(W.shape)} and {tuple(b.shape)}; expected {tuple(linear.weight.shape)} and "
                        f"({linear.weight.shape[1]},)", "the folded layer has the Linear's shapes: a weight (fan_in, fan_out) and one bias per output")
        with torch.no_grad(): want = bn(linear(x))
        if torch.allclose(x @ W + b, want, rtol=1e-9, atol=1e-9): continue
        for variant, hint in folded_variants(linear, bn):
            if variant is not None and torch.allclose(W, variant[0], rtol=1e-9, atol=1e-12) and torch.allclose(b, variant[1], rtol=1e-9, atol=1e-12):
                raise Wrong(f"{shown}: x @ weight + bias differs from the two layers by up to {(x @ W + b - want).abs().max().item():.3g}", hint)
        raise Wrong(f"{shown}: x @ weight + bias differs from the two layers by up to {(x @ W + b - want).abs().max().item():.3g}",
                    "write out what the BatchNorm does to one output column in eval mode, with its running statistics, and collect the terms")
    return (f"x @ weight + bias equals the Linear followed by the BatchNorm in eval mode on {len(cases)} fresh pairs: at inference "
            f"the normalisation costs nothing. In training mode there is nothing to fold, since the statistics change with every batch")


NOTEBOOK_DEV_2K = 2.3573   # 13's run: dev loss of the fixed start after 2,000 steps at lr 0.1 (full mode)
CHALLENGE_STEPS = 2_000
SHAPES = ((27, 10), (30, 200), (200,), (200, 27), (27,))


@exercise('13.4', 'challenge: a lower dev loss than the fixed start after 2,000 steps', kind='challenge')
def check_challenge(params, Xdev, Ydev):
    import torch.nn.functional as F
    if not isinstance(params, (list, tuple)) or len(params) != 5 or not all(torch.is_tensor(p) for p in params):
        raise Wrong("expected the 5 trained tensors C, W1, b1, W2, b2 of notebook 12's model (init_mlp_lm's order)")
    shapes = tuple(tuple(p.shape) for p in params)
    if shapes != SHAPES:
        raise Wrong(f"shapes {shapes}; the challenge keeps notebook 12's model, {SHAPES}",
                    "change how the model starts and how it is trained, not its size")
    C, W1, b1, W2, b2 = (p.detach() for p in params)
    with torch.no_grad():
        dev = F.cross_entropy(torch.tanh(C[Xdev].view(len(Xdev), -1) @ W1 + b1) @ W2 + b2, Ydev).item()
    budget = f"notebook 12's model (11,897 parameters), {CHALLENGE_STEPS:,} steps of batch 32, plain SGD"
    if not math.isfinite(dev) or round(dev, 4) >= NOTEBOOK_DEV_2K:   # lower at the four decimals the notebook shows
        raise Wrong(f"dev loss {dev:.4f}; the fixed start had {NOTEBOOK_DEV_2K} after {CHALLENGE_STEPS:,} steps",
                    "2,000 steps is a short run: does the learning rate have to stay at 0.1 all the way?")
    return f"dev loss {dev:.4f}, below the fixed start's {NOTEBOOK_DEV_2K} at {CHALLENGE_STEPS:,} steps", dev, NOTEBOOK_DEV_2K, budget
