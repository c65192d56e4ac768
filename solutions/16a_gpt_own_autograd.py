# Reference solutions for the exercises of nbs/16a_gpt_own_autograd.ipynb.
# Each `# %% exercise ID` section replaces that exercise's starter cell (`run_notebook.py --solutions`).
# Try the exercise first: the check under it tells you what is wrong without giving the answer away.

# %% exercise 16a.1
predictions = {
    'weight (6, 3), idx [[0, 2, 2], [5, 2, 0]]: EmbeddingLookup.apply(weight, idx).sum().backward(); weight.grad[2, 0]': 3,   # three uses
    'the same; weight.grad[1, 0]': 0,                                   # row 1 is never looked up
    's (5,) random: s.softmax(0).sum().backward(); s.grad[0]': 0,       # the sum is always 1: it does not move
    "s (4,) random, mask [False, True, True, True]: w = s.masked_fill(mask, float('-inf')).softmax(0); w[0]": 1,   # the only weight left
    'the same, then (w * c).sum().backward() for a random c; s.grad[1]': 0,   # no gradient through a filled place
    'logits zeros (4, 5), targets [3, 0, 4, 1]: CrossEntropy.apply(logits, targets).backward(); logits.grad[0, 3]': (1 / 5 - 1) / 4,
    'the same; logits.grad[0, 1]': 1 / 5 / 4,
    'a (1000,) ones: out = InvertedDropout.apply(a, 0.2, generator); out.sum().backward(); a.grad of an element dropout kept': 1 / 0.8,
}

# %% exercise 16a.2
def gelu_forward(ctx, a):
    "x Φ(x), elementwise, Φ the standard normal's cumulative distribution; save on ctx what gelu_backward needs."
    cdf = (1 + torch.erf(a / math.sqrt(2))) / 2
    ctx.save_for_backward(a, cdf)
    return a * cdf

def gelu_backward(ctx, grad):
    "The gradient for the input, from grad = d loss / d output, in the form Function.backward returns it."
    a, cdf = ctx.saved
    pdf = (-a * a / 2).exp() / math.sqrt(2 * math.pi)
    return (grad * (cdf + a * pdf),)                    # the product rule: Φ(x) + x φ(x)

# %% exercise 16a.3
def smoothed_ce_forward(ctx, logits, targets, smoothing):
    "The mean over the N rows of (N, C) logits of the cross-entropy with the target (1 - ε) onehot + ε / C."
    n, c = logits.shape
    logp = logits.log_softmax(-1)
    target = torch.full_like(logp, smoothing / c)
    target[torch.arange(n), targets] += 1 - smoothing
    ctx.save_for_backward(logp, target)
    return -(target * logp).sum(-1).mean()

def smoothed_ce_backward(ctx, grad):
    "(gradient for the logits, None for the targets, None for the smoothing)."
    logp, target = ctx.saved
    return (logp.exp() - target) * (grad / len(logp)), None, None

# %% exercise 16a.4
def rms_norm_forward(ctx, x, weight, eps):
    "x / sqrt(mean(x²) + eps) over the last dimension, times weight; save on ctx what rms_norm_backward needs."
    rstd = (x.square().mean(-1, keepdim=True) + eps).rsqrt()
    xhat = x * rstd
    ctx.save_for_backward(xhat, rstd, weight)
    return xhat * weight

def rms_norm_backward(ctx, grad):
    "(gradient for x, gradient for weight, None for eps)."
    xhat, rstd, weight = ctx.saved
    ghat = grad * weight
    gx = rstd * (ghat - xhat * (ghat * xhat).mean(-1, keepdim=True))   # layer norm's, without the mean term
    gw = (grad * xhat).reshape(-1, xhat.shape[-1]).sum(0)            # the weight is used at every position
    return gx, gw, None
