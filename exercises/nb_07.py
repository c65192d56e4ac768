"""Checks for the exercises of 07_batchnorm: BatchNorm at tiny batches, the training-mode forward of BatchNorm2d, the
running statistics (PyTorch's conventions), and GroupNorm, each against PyTorch on fresh random inputs."""
import torch
import torch.nn.functional as F
from torch import nn

from exercises import NotAttempted, Wrong, check_predictions, code_of, exercise

# ---- 07.1: what BatchNorm does with a batch of one or two ----

def shape_or_error(make_layer, shape, training):
    layer = make_layer().train(training)
    try: return tuple(layer(torch.randn(shape, generator=torch.Generator().manual_seed(70))).shape)
    except (ValueError, RuntimeError): return 'error'


def two_row_magnitude():
    "|y| of BatchNorm1d's outputs in training mode on a random 2-row batch, when they all agree (to 1e-3)."
    y = nn.BatchNorm1d(4).train()(torch.randn(2, 4, generator=torch.Generator().manual_seed(71)) * 3 + 1).detach().abs()
    return round(y.mean().item(), 2) if (y - y.mean()).abs().max() < 1e-3 else None


def running_mean_ratio():
    layer, x = nn.BatchNorm1d(4).train(), torch.randn(8, 4, generator=torch.Generator().manual_seed(72)) + 2
    layer(x)
    return round((layer.running_mean / x.mean(0)).mean().item(), 2)


TINY_QUESTIONS = ('nn.BatchNorm1d(4).train() on a (1, 4) batch',
                  'nn.BatchNorm1d(4).eval() on a (1, 4) batch',
                  'nn.BatchNorm2d(4).train() on a (1, 4, 5, 5) batch',
                  'nn.BatchNorm1d(4).train() on any (2, 4) batch: |y| of every output, to 2 decimals',
                  'a fresh nn.BatchNorm1d(4) after one (8, 4) training batch: running_mean / the batch mean')


def tiny_truths():
    return dict(zip(TINY_QUESTIONS, (shape_or_error(lambda: nn.BatchNorm1d(4), (1, 4), True),
                                     shape_or_error(lambda: nn.BatchNorm1d(4), (1, 4), False),
                                     shape_or_error(lambda: nn.BatchNorm2d(4), (1, 4, 5, 5), True),
                                     two_row_magnitude(), running_mean_ratio())))


def as_answer(value):
    if isinstance(value, str): return value.strip().lower()
    if isinstance(value, torch.Size): return tuple(value)
    if isinstance(value, list): return tuple(value)
    return value


def same(value, truth):
    value = as_answer(value)
    if isinstance(truth, float): return isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value - truth) < 0.006
    return value == truth


def tiny_hint(question, value):
    q = TINY_QUESTIONS
    if question == q[0]: return "in training mode each channel's mean and variance come from the batch: what is the variance of one value?"
    if question == q[1]: return "eval mode normalises with the running statistics, not the batch's: the batch size no longer matters"
    if question == q[2]: return "BatchNorm2d takes each channel's statistics over N, H and W: how many values is that here?"
    if question == q[3]: return "two values per channel: the mean is halfway between them, and the biased std is half the distance between them"
    if same(value, 0.9): return "PyTorch's momentum is the weight of the *new* value (the opposite of an optimiser's momentum)"
    return "running_mean starts at 0 and moves toward the batch mean by the fraction `momentum` (0.1 by default)"


@exercise('07.1', 'predict: BatchNorm with a batch of one or two', kind='predict')
def check_tiny_batches(answer):
    truth = tiny_truths()
    expected = {q: (lambda v, q=q: same(v, truth[q])) for q in TINY_QUESTIONS}
    hints = {q: tiny_hint(q, answer.get(q)) for q in TINY_QUESTIONS} if isinstance(answer, dict) else {}
    return check_predictions(answer, expected, hints, "what PyTorch does (a shape as a tuple, 'error', or a number)") + (
        ": with two examples BatchNorm's output carries only their order, which is why batch statistics need a batch")


# ---- shared: fresh inputs whose channels have different means and scales, in float64 ----

def channel_input(g, shape):
    per_channel = (1, shape[1]) + (1,) * (len(shape) - 2)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * (torch.rand(per_channel, generator=g, dtype=torch.float64) * 4 + 0.2)
            + torch.randn(per_channel, generator=g, dtype=torch.float64) * 3)


def affine_params(g, c):
    return torch.rand(c, generator=g, dtype=torch.float64) + 0.5, torch.randn(c, generator=g, dtype=torch.float64)


def per_channel(t, ndim): return t.view((1, -1) + (1,) * (ndim - 2))


def normalised(x, dims, eps, unbiased=False, eps_inside=True):
    mean, var = x.mean(dims, keepdim=True), x.var(dims, keepdim=True, unbiased=unbiased)
    return (x - mean) / ((var + eps).sqrt() if eps_inside else var.sqrt() + eps)


def close(a, b): return torch.is_tensor(a) and a.shape == b.shape and torch.allclose(a, b, rtol=1e-7, atol=1e-9)


def returned(got, what):
    if got is Ellipsis: raise NotAttempted()
    if got is None: raise Wrong(f"your function returned None; expected {what}", "did the function end without `return`?")
    return got


def banned(fn, names, instead):
    code = code_of(fn)
    for name in names:
        if name in code: raise Wrong(f"your function uses `{name}`", instead)


def called(fn, shown, hint, *args, **kwargs):
    "fn(*args), turning a shape error into a Wrong with the exercise's hint about broadcasting."
    try: return fn(*args, **kwargs)
    except NotImplementedError: raise
    except RuntimeError as e:
        raise Wrong(f"{shown}: your code raised RuntimeError: {str(e).splitlines()[0]}", hint) from None


def same_gradients(got, want, leaves):
    "Do `got` and `want` (functions of `leaves`) give the same gradients for a random linear loss?"
    w = torch.randn(want.shape, generator=torch.Generator().manual_seed(9), dtype=want.dtype)
    if not got.requires_grad: return False
    g1 = torch.autograd.grad((got * w).sum(), leaves, allow_unused=True)
    g2 = torch.autograd.grad((want * w).sum(), leaves)
    return all(a is not None and torch.allclose(a, b, rtol=1e-6, atol=1e-9) for a, b in zip(g1, g2))


NORM_CALLS = ('batch_norm', 'BatchNorm', 'layer_norm', 'LayerNorm', 'instance_norm', 'InstanceNorm', 'group_norm', 'GroupNorm')
GRAPH_HINT = ("the mean and variance are part of the graph: compute them without torch.no_grad() or .detach(), "
              "so the gradient flows through them too")


# ---- 07.2: the training-mode forward of BatchNorm2d ----

BN_SHAPES = [(8, 3, 5, 5), (1, 4, 3, 7), (5, 1, 2, 2), (16, 6, 1, 1), (3, 5, 4, 6), (2, 2, 9, 1)]
BN_MISTAKES = [
    (dict(dims=(0, 2, 3), unbiased=True), "the unbiased variance",
     "normalise with the biased variance (divide by m = N*H*W); the unbiased one is only stored in running_var"),
    (dict(dims=(0,)), "statistics over the batch only, separately at each pixel",
     "one mean and one variance per channel, shared by the batch and every pixel: reduce over dims (0, 2, 3)"),
    (dict(dims=(0, 1, 2, 3)), "one mean and variance for the whole tensor",
     "one mean and one variance per *channel*: reduce over every dim except 1, dims (0, 2, 3)"),
    (dict(dims=(1, 2, 3)), "statistics per sample (that is LayerNorm)",
     "BatchNorm takes its statistics across the batch: reduce over dims (0, 2, 3), not over each sample"),
    (dict(dims=(2, 3)), "statistics per sample and channel (that is InstanceNorm)",
     "the batch dimension belongs in the reduction too: dims (0, 2, 3)"),
    (dict(dims=(0, 2, 3), eps_inside=False), "eps added after the square root",
     "eps goes inside the square root: sqrt(var + eps)"),
]


@exercise('07.2', 'batchnorm_forward: BatchNorm2d in training mode')
def check_batchnorm_forward(batchnorm_forward):
    banned(batchnorm_forward, NORM_CALLS, "write the normalisation with tensor operations: mean, var, sqrt")
    g = torch.Generator().manual_seed(72)
    shape_hint = "view weight and bias as (1, C, 1, 1), and keep the statistics' dims (keepdim=True), so they broadcast per channel"
    for i, shape in enumerate(BN_SHAPES):
        eps = 0.1 if i == 4 else 1e-5   # one case with a large eps: the argument must be used
        x = channel_input(g, shape).requires_grad_()
        weight, bias = (p.requires_grad_() for p in affine_params(g, shape[1]))
        before = x.detach().clone()
        shown = f"x of shape {shape}, eps {eps}"
        got = returned(called(batchnorm_forward, shown, shape_hint, x, weight, bias, eps=eps), "the normalised tensor")
        want = F.batch_norm(x, None, None, weight, bias, training=True, eps=eps)
        if not torch.equal(x.detach(), before): raise Wrong(f"{shown}: your function changed x in place", "compute a new tensor; leave x as it was")
        if not torch.is_tensor(got) or got.shape != want.shape:
            raise Wrong(f"{shown}: came back shape {tuple(getattr(got, 'shape', ()))}; expected {shape}", shape_hint)
        if close(got, want):
            if not same_gradients(got, want, (x, weight, bias)): raise Wrong(f"{shown}: the right output with the wrong gradients", GRAPH_HINT)
            continue
        xd, w, b = x.detach(), per_channel(weight.detach(), 4), per_channel(bias.detach(), 4)
        for kwargs, what, hint in BN_MISTAKES:
            if close(got.detach(), normalised(xd, eps=eps, **kwargs) * w + b): raise Wrong(f"{shown}: {what}", hint)
        if close(got.detach(), normalised(xd, (0, 2, 3), eps)):
            raise Wrong(f"{shown}: normalised, but not scaled and shifted", "then multiply by weight and add bias, one of each per channel")
        if close(got.detach(), normalised(xd, (0, 2, 3), 1e-5) * w + b):
            raise Wrong(f"{shown}: eps 1e-5 was used", "use the eps argument")
        raise Wrong(f"{shown}: the right shape, the wrong values (max difference {(got.detach() - want.detach()).abs().max().item():.2g})",
                    "y = weight * (x - mean) / sqrt(var + eps) + bias, with the mean and biased variance of each channel over (N, H, W)")
    return (f"equal to F.batch_norm(training=True) on {len(BN_SHAPES)} fresh shapes (a batch of 1, one channel, 1x1 images), "
            "outputs and gradients")


# ---- 07.3: the running statistics ----

RUNNING_SHAPES = [(8, 3), (4, 5, 6), (6, 3, 4, 4), (1, 2, 2, 1), (2, 4, 3, 3)]


def reference_layer(x, momentum, mean, var):
    layer = (nn.BatchNorm2d if x.ndim == 4 else nn.BatchNorm1d)(x.shape[1], momentum=momentum).double().train()
    with torch.no_grad(): layer.running_mean.copy_(mean); layer.running_var.copy_(var)
    return layer


def running_variant(mean, var, x, momentum, backwards=False, biased=False, fresh=False, std=False):
    dims = [0] + list(range(2, x.ndim))
    batch_mean, batch_var = x.mean(dims), x.var(dims, unbiased=not biased)
    if std: batch_var = batch_var.sqrt()
    if fresh: return batch_mean, batch_var
    w = 1 - momentum if backwards else momentum
    return (1 - w) * mean + w * batch_mean, (1 - w) * var + w * batch_var


RUNNING_MISTAKES = [
    (dict(backwards=True), "momentum used the other way round",
     "PyTorch's momentum is the weight of the *new* batch value: (1 - momentum) * old + momentum * batch"),
    (dict(biased=True), "the biased batch variance stored", "running_var stores the *unbiased* variance, the biased one times m / (m - 1), m = N*H*W"),
    (dict(backwards=True, biased=True), "momentum the other way round, and the biased variance",
     "two slips: momentum is the weight of the new value, and running_var stores the unbiased variance"),
    (dict(fresh=True), "the batch statistics alone", "a running average mixes the old value with the batch's: (1 - momentum) * old + momentum * batch"),
    (dict(std=True), "a standard deviation stored as the variance", "running_var is a variance: no square root"),
]


@exercise('07.3', 'update_running: the running mean and variance')
def check_update_running(update_running):
    g = torch.Generator().manual_seed(73)
    for i, shape in enumerate(RUNNING_SHAPES):
        momentum = [0.1, 0.3, 0.01, 0.5, 0.1][i]
        c = shape[1]
        mean, var = torch.randn(c, generator=g, dtype=torch.float64), torch.rand(c, generator=g, dtype=torch.float64) + 0.5
        layer = reference_layer(channel_input(g, shape), momentum, mean, var)
        for step in range(3):   # three batches in a row, each update starting from the learner's previous one
            x = channel_input(g, shape)
            shown = f"batch {step + 1} of shape {shape}, momentum {momentum}"
            got = returned(called(update_running, shown, "reduce over every dim except 1 to get one value per channel",
                                  mean.clone(), var.clone(), x.clone(), momentum=momentum), "the pair (new_mean, new_var)")
            layer(x)
            if not (isinstance(got, tuple) and len(got) == 2 and all(torch.is_tensor(t) for t in got)):
                raise Wrong(f"{shown}: came back {type(got).__name__}; expected the pair (new_mean, new_var)")
            if any(t.shape != (c,) for t in got):
                raise Wrong(f"{shown}: came back shapes {[tuple(t.shape) for t in got]}; expected ({c},) each",
                            "one value per channel: reduce over every dim except 1 (dims 0, 2, 3 for images)")
            right = close(got[0], layer.running_mean), close(got[1], layer.running_var)
            if all(right):
                mean, var = got
                continue
            which = ' and '.join(name for name, ok in zip(('new_mean', 'new_var'), right) if not ok)
            for kwargs, what, hint in RUNNING_MISTAKES:   # the wrong one(s) match a usual mistake, the other is right
                wm, wv = running_variant(mean, var, x, momentum, **kwargs)
                if (right[0] or close(got[0], wm)) and (right[1] or close(got[1], wv)): raise Wrong(f"{shown}: {which} wrong: {what}", hint)
            raise Wrong(f"{shown}: {which} not what nn.BatchNorm{'2' if len(shape) == 4 else '1'}d stores",
                        "new = (1 - momentum) * old + momentum * batch value, with the batch's unbiased variance for running_var")
    return (f"equal to nn.BatchNorm1d/2d's running statistics over three batches in a row, on {len(RUNNING_SHAPES)} fresh shapes and "
            "momentums (a batch with only 2 values per channel included)")


# ---- 07.4: GroupNorm ----

GROUP_CASES = [((4, 6, 5, 5), 3), ((2, 8, 3, 7), 2), ((1, 4, 6, 6), 4), ((3, 6, 4, 4), 1), ((5, 6, 10), 2), ((4, 8), 4), ((2, 12, 3, 3), 6)]


def group_variant(x, groups, eps, interleaved=False, unbiased=False, over_batch=False, eps_inside=True):
    n, c = x.shape[:2]
    if interleaved: xg = x.reshape(n, c // groups, groups, -1).transpose(1, 2).reshape(n, groups, -1)
    else: xg = x.reshape(n, groups, -1)
    dims = (0, 2) if over_batch else (2,)
    y = normalised(xg, dims, eps, unbiased, eps_inside)
    if interleaved: y = y.reshape(n, groups, c // groups, -1).transpose(1, 2)
    return y.reshape(x.shape)


GROUP_MISTAKES = [
    (dict(interleaved=True), "channels taken into groups the wrong way (channel c in group c % G)",
     "a group is C/G *consecutive* channels: channels 0 to C/G - 1 form group 0; view x as (N, G, -1)"),
    (dict(unbiased=True), "the unbiased variance", "normalise with the biased variance: divide by the number of values in the group"),
    (dict(over_batch=True), "statistics taken across the batch too", "GroupNorm normalises each sample on its own: never reduce over dim 0"),
    (dict(eps_inside=False), "eps added after the square root", "eps goes inside the square root: sqrt(var + eps)"),
]


@exercise('07.4', 'group_norm: GroupNorm, between LayerNorm and InstanceNorm')
def check_group_norm(group_norm):
    banned(group_norm, NORM_CALLS, "write the normalisation with tensor operations: view, mean, var, sqrt")
    g = torch.Generator().manual_seed(74)
    shape_hint = ("view x as (N, G, -1) for the statistics, back to x's shape after, then weight and bias "
                  "viewed as (1, C, 1, ...) per channel")
    for i, (shape, groups) in enumerate(GROUP_CASES):
        eps = 0.1 if i == 1 else 1e-5
        x = channel_input(g, shape).requires_grad_()
        weight, bias = (p.requires_grad_() for p in affine_params(g, shape[1]))
        shown = f"x of shape {shape}, {groups} group{'s' * (groups > 1)}, eps {eps}"
        got = returned(called(group_norm, shown, shape_hint, x, groups, weight, bias, eps=eps), "the normalised tensor")
        want = F.group_norm(x, groups, weight, bias, eps=eps)
        if not torch.is_tensor(got) or got.shape != want.shape:
            raise Wrong(f"{shown}: came back shape {tuple(getattr(got, 'shape', ()))}; expected {shape}", shape_hint)
        if close(got, want):
            if not same_gradients(got, want, (x, weight, bias)): raise Wrong(f"{shown}: the right output with the wrong gradients", GRAPH_HINT)
            continue
        xd, w, b = x.detach(), per_channel(weight.detach(), len(shape)), per_channel(bias.detach(), len(shape))
        for kwargs, what, hint in GROUP_MISTAKES:
            if close(got.detach(), group_variant(xd, groups, eps, **kwargs) * w + b): raise Wrong(f"{shown}: {what}", hint)
        if close(got.detach(), group_variant(xd, groups, eps)):
            raise Wrong(f"{shown}: normalised, but not scaled and shifted", "then multiply by weight and add bias, one of each per *channel*")
        raise Wrong(f"{shown}: the right shape, the wrong values (max difference {(got.detach() - want.detach()).abs().max().item():.2g})",
                    "each sample's channels split into G consecutive groups; each group normalised by its own mean and biased variance")
    return (f"equal to F.group_norm on {len(GROUP_CASES)} fresh cases, outputs and gradients. One group normalises each sample "
            "over all its channels (LayerNorm over (C, H, W), with a per-channel affine); C groups, each channel on its own "
            "(InstanceNorm). It never looks across the batch, so it works at batch size 1 and is the same in training and evaluation")
