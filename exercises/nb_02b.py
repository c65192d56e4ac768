"Checks for the exercises of 02b_initializing: fans and ratios in numbers, the moments of a ReLU, Kaiming for the backward pass, the std curve of a whole stack."
import math, random
from functools import cache

import torch
from torch import nn

from exercises import NotAttempted, Wrong, check_predictions, code_of, exercise
from exercises.nb_02a import as_number, close, fan_in, fan_out, keep_rng   # the same helpers as 02a's checks


def call(fn, shown, *args):
    "The learner's function on one input; an error becomes a Wrong that names the input."
    try: return fn(*args)
    except (NotImplementedError, NotAttempted): raise
    except Exception as e: raise Wrong(f"{shown}: your function raised {type(e).__name__}: {e}") from None


# ---- 02b.1: fans and variance ratios in numbers ----

QUESTIONS = ('fan_out of nn.Linear(784, 256).weight',
             'Xavier uniform bound b for nn.Linear(784, 256)',
             'variance ratio per layer: Xavier, square layers, a ReLU after each',
             'variance ratio per layer: Kaiming (Var(w) = 2/n_in), square layers, no ReLU',
             'variance ratio of one layer: Xavier, nn.Linear(256, 64), no ReLU')


def truths():
    with keep_rng(): w = nn.Linear(784, 256).weight                # making a layer draws numbers: leave the notebook's generator as it was
    xavier = lambda n_in, n_out: 2 / (n_in + n_out)                       # Var(w) of Glorot's init
    return dict(zip(QUESTIONS, (fan_out(w), math.sqrt(3 * xavier(784, 256)), 256 * xavier(256, 256) / 2,
                                256 * (2 / 256), 256 * xavier(256, 64))))


def hint_for(question, value):
    v, q = as_number(value), QUESTIONS
    mistakes = {
        q[0]: [(784, "nn.Linear stores its weight as (out_features, in_features): fan_out is the out side")],
        q[1]: [(math.sqrt(2 / 1040), "that is the std; the bound of U(-b, b) is sqrt(3) times the std"),
               (math.sqrt(6 / 784), "Glorot's bound uses both fans, n_in + n_out")],
        q[2]: [(1, "Xavier has no factor for the ReLU, which keeps only half of the second moment"),
               (0.25, "Xavier preserves the variance of a square linear layer exactly; only the ReLU's half is lost")],
        q[3]: [(1, "Kaiming's 2 is there to make up for the ReLU's half: with no ReLU there is nothing to make up for"),
               (math.sqrt(2), "the question is about variances, not stds")],
        q[4]: [(1, "Xavier preserves the forward variance only when n_in = n_out; here Var(w) = 2 / (n_in + n_out)"),
               (64 * 2 / 320, "going forward the variance is multiplied by n_in Var(w); n_out is the backward pass's fan")]}
    for wrong, hint in mistakes[question]:
        if v is not None and close(v, wrong, 0.01): return hint
    return {q[0]: "fan_out: how many outputs each input feeds",
            q[1]: "U(-b, b) has variance b^2 / 3, and Glorot's variance is 2 / (n_in + n_out)",
            q[2]: "per layer the second moment is multiplied by n_in Var(w), then halved by the ReLU",
            q[3]: "without a ReLU the ratio is n_in Var(w)",
            q[4]: "forward, the ratio of one layer is n_in Var(w)"}[question]


@exercise('02b.1', 'fans and variance ratios in numbers', kind='predict')
def check_numbers(answer):
    truth = truths()
    expected = {q: (lambda v, t=t: close(as_number(v), t, 0.01)) for q, t in truth.items()}
    hints = {q: hint_for(q, answer.get(q)) if isinstance(answer, dict) else '' for q in QUESTIONS}
    message = check_predictions(answer, expected, hints, "what the theory gives (to 1%)")
    return message + (". Xavier's compromise is exact only for square layers; Kaiming's 2 is exactly the ReLU's half, "
                      "and without a ReLU it doubles the variance every layer, as the last table measured")


# ---- 02b.2: the moments of a ReLU of a normal ----

@cache
def relu_moments_mc():
    "Mean, E[x^2] and variance of relu(z) for z ~ N(0, 1), from 2 million samples: the oracle."
    z = torch.randn(2_000_000, generator=torch.Generator().manual_seed(22), dtype=torch.float64).clamp_min(0)
    return z.mean().item(), z.pow(2).mean().item(), z.var().item()


def exact_moments(sigma):
    mean = sigma / math.sqrt(2 * math.pi)
    return mean, sigma ** 2 / 2, sigma ** 2 / 2 - mean ** 2


MOMENT_NAMES = ('the mean', 'E[x^2]', 'the variance')
MOMENT_MISTAKES = {
    0: [(lambda s: s * math.sqrt(2 / math.pi), "that is the mean of |z|: a ReLU zeroes the negative half, it does not fold it over"),
        (lambda s: s / 2, "the mean of the positive half is not half the std: integrate z times the normal density over z > 0"),
        (lambda s: s ** 2 / math.sqrt(2 * math.pi), "sigma is the std; the mean scales with sigma, not sigma^2")],
    1: [(lambda s: s ** 2, "a ReLU keeps E[z^2] only on the positive half: by symmetry, half of it"),
        (lambda s: s / 2, "E[x^2] is in the units of a variance: it scales with sigma^2"),
        (lambda s: s ** 2 / 4, "E[relu(z)^2] is half of E[z^2], not (sigma / 2)^2"),
        (lambda s: exact_moments(s)[2], "that is the variance; E[x^2] keeps the mean in: Var + mean^2")],
    2: [(lambda s: s ** 2 / 2, "that is E[x^2]; the variance takes the square of the mean off it, and a ReLU's mean is not 0"),
        (lambda s: s ** 2 / 4, "the variance is E[x^2] - mean^2, with mean sigma / sqrt(2 pi)")],
}


@exercise('02b.2', 'relu_moments: the mean, second moment and variance of relu(z)')
def check_relu_moments(relu_moments):
    mc = relu_moments_mc()
    rng = random.Random(22)
    sigmas = [round(rng.uniform(0.05, 0.5), 3), round(rng.uniform(1.5, 4), 3), 1.0, round(rng.uniform(5, 40), 2)]
    for sigma in sigmas:
        got = call(relu_moments, f"relu_moments({sigma})", sigma)
        if got is Ellipsis or got is None: raise NotAttempted()
        values = [as_number(v) for v in got] if isinstance(got, (tuple, list)) else []
        if len(values) != 3 or None in values:
            raise Wrong(f"relu_moments({sigma}) returned {got!r}; expected three numbers (mean, E[x^2], variance)")
        sampled = [mc[0] * sigma, mc[1] * sigma ** 2, mc[2] * sigma ** 2]   # relu(sigma z) = sigma relu(z)
        for k, (v, want) in enumerate(zip(values, sampled)):
            if close(v, want, 0.01): continue
            hint = next((h for f, h in MOMENT_MISTAKES[k] if not close(f(sigma), want, 0.01) and close(v, f(sigma), 0.01)),
                        ["integrate z phi(z) over z > 0", "by symmetry, half of E[z^2]", "Var = E[x^2] - mean^2"][k])
            raise Wrong(f"relu_moments({sigma}): {MOMENT_NAMES[k]} came back {v:.5g}; 2 million samples of relu(z), z ~ N(0, {sigma}^2), "
                        f"give {want:.5g}", hint)
    return ("right for sigma from 0.05 to 40, against 2 million samples. The next layer sees E[x^2] = sigma^2 / 2, mean included: "
            "that half is Kaiming's 2. The variance alone, about 0.34 sigma^2, would have asked for a factor 2.9")


# ---- 02b.3: Kaiming normal for the backward pass (mode fan_out) ----

def weight_shapes(rng):
    a, b = rng.randint(200, 400), rng.randint(30, 90)
    return [(b, a), (a, b), (32, 8, 3, 3), (48, 12, 5)]


def grad_stds(widths, init_, g, batch=512):
    "Bias-free Linear+ReLU layers of these widths, each weight filled by init_: the gradient's std at every layer's input, and the forward stds."
    layers = [nn.Linear(n_in, n_out, bias=False) for n_in, n_out in zip(widths, widths[1:])]
    with torch.no_grad():
        for l in layers: init_(l.weight)
    x = torch.randn(batch, widths[0], generator=g).requires_grad_()
    inputs, forward_std = [x], []
    for l in layers:
        z = l(x)
        forward_std.append(z.std().item())
        x = z.relu()
        if l is not layers[-1]: x.retain_grad(); inputs.append(x)
    x.backward(torch.randn(x.shape, generator=g))          # a unit-variance gradient from above, as 02b sends back
    return [t.grad.std().item() for t in inputs], forward_std


@exercise('02b.3', 'kaiming_fan_out_: a normal init that keeps the gradients at unit scale')
def check_fan_out(kaiming_fan_out_):
    if 'kaiming' in code_of(kaiming_fan_out_):
        raise Wrong("your function calls a kaiming_ function", "the exercise is to work out the std yourself: normal_ and the weight's shape")
    rng, g = random.Random(23), torch.Generator().manual_seed(23)
    with keep_rng():
        torch.manual_seed(23)
        for shape in weight_shapes(rng):
            w = torch.full(shape, float('nan'))
            out = call(kaiming_fan_out_, f"a weight of shape {shape}", w)
            if out is Ellipsis: raise NotAttempted()
            if w.isnan().any():
                raise Wrong(f"a weight of shape {shape}: it still holds the NaNs it came in with",
                            "fill `w` in place (w.normal_(...)); a new tensor is not seen by the layer that owns w")
            want = math.sqrt(2 / fan_out(w))
            std, mean = w.std().item(), w.mean().item()
            if abs(mean) > 5 * std / math.sqrt(w.numel()):
                raise Wrong(f"a weight of shape {shape}: mean {mean:.4f}, std {std:.4f}; expected mean 0", "normal_(0, std): centred on zero")
            if close(std, want, 0.04): continue
            ratio = std / want
            mistakes = [(math.sqrt(fan_out(w) / fan_in(w)), "that is fan_in: the weight is stored (out, in, ...), so the outputs are dimension 0"),
                        (1 / math.sqrt(2), "going back, a ReLU passes the gradient only where its input was positive: half of it, which the 2 makes up for"),
                        (math.sqrt(2 / fan_out(w)), "normal_ takes the std, the square root of the variance 2 / fan_out"),
                        (math.sqrt(math.prod(shape[2:])) if len(shape) > 2 else None, "a conv's fan_out includes the kernel: out_channels x kernel size")]
            hint = next((h for c, h in mistakes if c is not None and not close(c, 1, 0.04) and close(ratio, c, 0.04)),
                        "Var(w) = 2 / fan_out, the count of outputs each input feeds")
            raise Wrong(f"a weight of shape {shape}: std {std:.5f}, which does not keep the backward variance", hint)
        widths = [rng.randint(200, 400), rng.randint(40, 80), rng.randint(200, 300), rng.randint(40, 80), rng.randint(100, 200)]
        grads, forward = grad_stds(widths, kaiming_fan_out_, g)
    ratios = [b / a for a, b in zip(grads[1:], grads)]          # each layer's input against the next one's
    if not all(0.75 < r < 1.33 for r in ratios):
        raise Wrong(f"in a ReLU stack of widths {widths}, the gradient's std at each layer's input was "
                    f"{', '.join(f'{s:.3f}' for s in grads)}: expected about the same at every layer", "Var(w) = 2 / fan_out")
    fwd = [b / a for a, b in zip(forward, forward[1:])]
    return (f"the right std on 4 shapes (linear and conv). In a ReLU stack of widths {widths}, autograd's gradient at each "
            f"layer's input has std {', '.join(f'{s:.2f}' for s in grads)}: steady. Forward, the same init multiplies the std by "
            f"{', '.join(f'{r:.2f}' for r in fwd)} per layer: sqrt(n_in / n_out). Unless layers are square, one init cannot "
            "keep both passes at unit scale; PyTorch's kaiming_normal_ defaults to fan_in, the forward pass")


# ---- 02b.4: the std of every layer of a stack, predicted ----

VAR_W = {'default': lambda n_in, n_out: 1 / (3 * n_in),
         'xavier': lambda n_in, n_out: 2 / (n_in + n_out),
         'kaiming': lambda n_in, n_out: 2 / n_in}


def theory(widths, init, relu, x_std, var_w=None, relu_keeps=0.5, first_halved=False, output='std'):
    "The std of each linear layer's output (before its ReLU); the keyword arguments make the usual mistakes."
    var_w = var_w or VAR_W[init]
    m2 = x_std ** 2 * (0.5 if first_halved and relu else 1)          # the second moment of the input to the first layer
    out = []
    for n_in, n_out in zip(widths, widths[1:]):
        var_z = n_in * var_w(n_in, n_out) * m2
        out.append({'std': math.sqrt(var_z), 'var': var_z, 'relu_std': math.sqrt(var_z * (0.5 - 0.5 / math.pi)) if relu else math.sqrt(var_z)}[output])
        m2 = var_z * relu_keeps if relu else var_z
    return out


STACK_MISTAKES = [
    (dict(relu_keeps=1.), "a ReLU keeps half the second moment of its input: E[relu(z)^2] = Var(z) / 2"),
    (dict(relu_keeps=0.5 - 0.5 / math.pi), "the next layer sees E[x^2], the mean included, not the variance of the ReLU's output"),
    (dict(first_halved=True), "the input goes straight into the first layer; the first ReLU comes after it"),
    (dict(output='var'), "return stds, the square roots of the variances"),
    (dict(output='relu_std'), "the std of each linear layer's own output, before its ReLU"),
    (dict(var_w=lambda n_in, n_out: 1 / n_in), "Var(w) = 1/n_in is neither: the default's U(+-1/sqrt(n_in)) has variance 1/(3 n_in), "
                                               "Xavier's 2/(n_in + n_out)"),
    (dict(var_w=lambda n_in, n_out: 1 / (3 * n_out)), "the default's variance is 1/(3 fan_in): n_in, the inputs of the layer"),
    (dict(var_w=lambda n_in, n_out: 2 / n_out), "Kaiming for the forward pass uses fan_in: 2 / n_in"),
]


def stack_cases(rng):
    def widths(k): return [rng.randint(16, 512) for _ in range(k)]
    return [([784, 256, 256, 256, 256], 'default', True, 1.),
            (widths(6), 'xavier', True, 1.),
            (widths(8), 'kaiming', False, 1.),
            (widths(5), 'xavier', False, round(rng.uniform(0.2, 3), 2)),
            (widths(7), 'default', False, 1.),
            (widths(9), 'kaiming', True, round(rng.uniform(0.2, 3), 2)),
            (widths(4), 'xavier', True, round(rng.uniform(0.2, 3), 2))]


def measured(widths, init, relu, x_std, g, batch=2000):
    "The same stack built and run: each linear layer's output std, with weights drawn from the init's distribution."
    x = torch.randn(batch, widths[0], generator=g, dtype=torch.float64) * x_std
    stds = []
    for n_in, n_out in zip(widths, widths[1:]):
        w = torch.randn(n_in, n_out, generator=g, dtype=torch.float64) * math.sqrt(VAR_W[init](n_in, n_out))
        x = x @ w
        stds.append(x.std().item())
        if relu: x = x.relu()
    return stds


@exercise('02b.4', "predicted_stds: every layer's std of a deep stack, before running it")
def check_predicted_stds(predicted_stds):
    rng, g = random.Random(24), torch.Generator().manual_seed(24)
    for widths, init, relu, x_std in stack_cases(rng):
        shown = f"predicted_stds({widths}, {init!r}, relu={relu}, x_std={x_std})"
        got = call(predicted_stds, shown, list(widths), init, relu, x_std)
        if got is Ellipsis or got is None: raise NotAttempted()
        try: values = [float(v) for v in got]
        except (TypeError, ValueError, RuntimeError): raise Wrong(f"{shown} returned {type(got).__name__}; expected a list of numbers") from None
        want = theory(widths, init, relu, x_std)
        if len(values) != len(want):
            raise Wrong(f"{shown}: {len(values)} numbers came back; expected {len(want)}, one per linear layer (len(widths) - 1)")
        if all(close(v, t, 1e-4) for v, t in zip(values, want)): continue
        k = next(i for i, (v, t) in enumerate(zip(values, want)) if not close(v, t, 1e-4))
        hint = next((h for kw, h in STACK_MISTAKES
                     if not all(close(a, b, 1e-4) for a, b in zip(theory(widths, init, relu, x_std, **kw), want))
                     and all(close(a, b, 1e-4) for a, b in zip(theory(widths, init, relu, x_std, **kw), values))),
                    "layer by layer: Var(z) = n_in Var(w) E[x^2], and E[x^2] after a ReLU is half of Var(z)")
        real = measured(widths, init, relu, x_std, g)
        raise Wrong(f"{shown}: layer {k + 1} came back {values[k]:.4g}; the stack built and run on 2,000 random inputs "
                    f"gives {real[k]:.4g} there", hint)
    widths = [784, 256, 64, 256, 64]
    real, want = measured(widths, 'xavier', True, 1., g), theory(widths, 'xavier', True, 1.)
    return ("right on 7 fresh stacks. Built and run, Xavier with ReLUs on widths 784-256-64-256-64: measured "
            + ', '.join(f"{r:.3f}" for r in real) + "; predicted " + ', '.join(f"{t:.3f}" for t in want)
            + ". Fifty layers need no run to know they are dead")
