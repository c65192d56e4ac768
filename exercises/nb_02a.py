"Checks for the exercises of 02a_why_sqrt5: the default init in numbers, PyTorch's reset of a layer, a block's std factor, an init matched to each activation."
import math, random

import torch
import torch.nn.functional as F
from torch import nn

from exercises import NotAttempted, Wrong, check_predictions, code_of, exercise


def fan_in(w): return w.shape[1] * math.prod(w.shape[2:])
def fan_out(w): return w.shape[0] * math.prod(w.shape[2:])
def leaky_gain(a): return math.sqrt(2. / (1 + a * a))
def close(x, y, rtol): return x is not None and math.isclose(x, y, rel_tol=rtol)


def as_number(v):
    "A float from a number, a 0-d tensor or array; None for anything else (a tuple, `...`)."
    try: return float(v)
    except (TypeError, ValueError, RuntimeError): return None


class keep_rng:
    "Seed PyTorch's global generator inside a check and give the notebook its own state back afterwards."
    def __enter__(self): self.state = torch.get_rng_state()
    def __exit__(self, *exc): torch.set_rng_state(self.state)


# ---- 02a.1: the default init in numbers ----

QUESTIONS = ('fan_in of nn.Conv2d(16, 32, 3).weight',
             'largest |w| a fresh nn.Linear(400, 10) can have',
             'std of the weights of a fresh nn.Linear(400, 10)',
             'std after a default-init layer + ReLU block, over the std before',
             'Var(w) of Kaiming for ReLU, over Var(w) of the default')


def truths():
    "The answers, from real layers and the derivation: fan_in of the conv, then bound, std, factor and ratio."
    with keep_rng(): n = fan_in(nn.Conv2d(16, 32, 3).weight)      # making a layer draws numbers: leave the notebook's generator as it was
    bound = math.sqrt(3) * leaky_gain(math.sqrt(5)) / math.sqrt(400)       # kaiming_uniform_ with a = sqrt(5)
    return dict(zip(QUESTIONS, (n, bound, bound / math.sqrt(3), math.sqrt(leaky_gain(math.sqrt(5)) ** 2 / 2), 2 / (1 / 3))))


def hint_for(question, value):
    "The hint for a wrong prediction: aimed at the mistake the value shows, when it shows one."
    v, q = as_number(value), QUESTIONS
    mistakes = {
        q[0]: [(288, "fan_in counts what feeds *one* output: the input channels times the kernel, not the output channels"),
               (16, "one output of a 3x3 conv sums over a 3x3 patch of every input channel, not one number per channel"),
               (9, "the kernel covers every input channel: count the channels too")],
        q[1]: [(0.05 / math.sqrt(3), "that is the std; the bound b of U(-b, b) is sqrt(3) times the std"),
               (math.sqrt(6 / 400), "that is Kaiming's bound for a plain ReLU (a = 0); PyTorch's default passes a = sqrt(5)")],
        q[2]: [(0.05, "that is the bound b; U(-b, b) has variance b^2 / 3"),
               (0.05 / 3, "U(-b, b) has *variance* b^2 / 3: take the square root for the std"),
               (math.sqrt(2 / 400), "that is Kaiming's std for ReLU; the default's gain is sqrt(1/3), not sqrt(2)")],
        q[3]: [(1 / 6, "1/6 is the factor on the variance (the second moment); the std's factor is its square root"),
               (1 / math.sqrt(3), "the ReLU also halves the second moment of what the layer gives it"),
               (1 / 3, "the layer gives n Var(w) = 1/3 of the second moment, the ReLU half of that, and the std is a square root")],
        q[4]: [(math.sqrt(6), "that is the ratio of the stds; square it for the variances"),
               (2, "the default's Var(w) is 1/(3 fan_in), not 1/fan_in")]}
    for wrong, hint in mistakes[question]:
        if v is not None and close(v, wrong, 0.01): return hint
    return {q[0]: "fan_in = in_channels x kh x kw: what one output sums over",
            q[1]: "b = sqrt(3) x gain / sqrt(fan_in), and a = sqrt(5) gives gain^2 = 2 / (1 + 5)",
            q[2]: "the std of U(-b, b) is b / sqrt(3)",
            q[3]: "the layer multiplies the second moment by n Var(w), the ReLU by 1/2; the std goes as the square root",
            q[4]: "Kaiming for ReLU: 2 / fan_in; the default: 1 / (3 fan_in)"}[question]


@exercise('02a.1', 'the default init in numbers', kind='predict')
def check_numbers(answer):
    truth = truths()
    expected = {q: (lambda v, t=t: close(as_number(v), t, 0.01)) for q, t in truth.items()}   # 1%: rounding is fine
    hints = {q: hint_for(q, answer.get(q)) if isinstance(answer, dict) else '' for q in QUESTIONS}
    message = check_predictions(answer, expected, hints, "what the derivation gives (to 1%)")
    return message + (". Six times less variance than Kaiming's, and the ReLU halves what is left: 1/sqrt(6) per block, "
                      "which is what the conv and linear stacks above measured")


# ---- 02a.2: PyTorch's reset of a layer, weight and bias ----

def fresh_layers(rng):
    "Fresh (description, constructor) pairs: linear and conv layers, fan_in never equal to fan_out, one without a bias."
    i, o = rng.randint(40, 300), rng.randint(2, 30)
    c1, c2, k = rng.randint(2, 6), rng.randint(8, 24), rng.choice([3, 5])
    c3, c4 = rng.randint(2, 12), rng.randint(13, 20)
    return [(f"nn.Linear({i}, {o})", lambda: nn.Linear(i, o)),
            (f"nn.Conv2d({c1}, {c2}, {k})", lambda: nn.Conv2d(c1, c2, k)),
            (f"nn.Linear({o}, {i}, bias=False)", lambda: nn.Linear(o, i, bias=False)),
            (f"nn.Conv1d({c3}, {c4}, 7)", lambda: nn.Conv1d(c3, c4, 7)),
            (f"nn.Conv2d({c2}, {c1}, 1)", lambda: nn.Conv2d(c2, c1, 1))]


def scale_of(got, ref):
    "c when got == c * ref (the same draws with another bound), else None (other draws, or another distribution)."
    big = ref.abs() > 1e-3 * ref.abs().max()
    if not big.any(): return None
    c = (got[big] / ref[big]).median().item()
    return c if torch.allclose(got, c * ref, rtol=1e-4, atol=1e-6 * ref.abs().max().item()) else None


def bound_hint(c, w, what):
    "The hint for `what` (weight or bias) drawn with c times the right bound, aimed at the mistake c points to."
    kernel = math.prod(w.shape[2:])
    for wrong, hint in [(math.sqrt(fan_in(w) / fan_out(w)), "fan_out: nn.Linear stores (out, in), and fan_in is the in side, dimension 1"),
                        (math.sqrt(kernel) if kernel > 1 else None, "a conv's fan_in includes the kernel: in_channels x kernel size"),
                        (1 / math.sqrt(3), "the std, not the bound: U(-b, b) has std b / sqrt(3)"),
                        (math.sqrt(6), "Kaiming's bound for a plain ReLU (a = 0); the default passes a = sqrt(5)"),
                        (math.sqrt(2), "a gain of sqrt(2) on top")]:
        if wrong is not None and math.isclose(c, wrong, rel_tol=1e-3):
            return f"the {what} is drawn with {c:.3f} times the right bound: that looks like {hint}"
    return f"the {what} is drawn with {c:.3f} times the right bound: it should be 1/sqrt(fan_in)"


@exercise('02a.2', "default_init_: PyTorch's init of a fresh layer, weight and bias")
def check_default_init(default_init_):
    code = code_of(default_init_)
    for banned in ('reset_parameters', 'Linear(', 'Conv1d(', 'Conv2d(', 'Conv3d(', 'deepcopy'):
        if banned in code: raise Wrong(f"your function uses `{banned}`",
                                       "the exercise is to draw the weight and the bias yourself, not to let a new layer do it")
    rng = random.Random(2)
    with keep_rng():
        for k, (shown, make) in enumerate(fresh_layers(rng)):
            seed = 1000 + k
            torch.manual_seed(seed); ref = make()                # PyTorch's own init from this seed ...
            torch.manual_seed(seed + 1); layer = make()          # ... a layer holding other numbers ...
            before = layer.weight.detach().clone()
            torch.manual_seed(seed)                              # ... re-initialised by your function from the same seed
            try: out = default_init_(layer)
            except (NotImplementedError, NotAttempted): raise
            except RuntimeError as e:
                if 'leaf Variable' in str(e):
                    raise Wrong(f"{shown}: filling a parameter in place raised: {e}",
                                "a parameter takes in-place fills only under torch.no_grad(); the torch.nn.init functions do that for you") from None
                raise Wrong(f"{shown}: your function raised RuntimeError: {e}") from None
            except Exception as e: raise Wrong(f"{shown}: your function raised {type(e).__name__}: {e}",
                                               "a layer made with bias=False has layer.bias None" if 'NoneType' in str(e) else '') from None
            if out is Ellipsis: raise NotAttempted()
            w, wr = layer.weight.detach(), ref.weight.detach()
            if torch.equal(w, before):
                raise Wrong(f"{shown}: the layer's weight did not change",
                            "fill the layer's own weight and bias in place (torch.nn.init functions work in place); a new tensor or layer is not seen")
            if not torch.allclose(w, wr, rtol=1e-6, atol=1e-9):
                c = scale_of(w, wr)
                raise Wrong(f"{shown}, weight of shape {tuple(w.shape)}: not what PyTorch draws from the same seed "
                            f"(max |w| {w.abs().max().item():.4f}; the bound is 1/sqrt(fan_in) = {1 / math.sqrt(fan_in(w)):.4f})",
                            bound_hint(c, w, 'weight') if c is not None else
                            "draw the weight first, with one uniform draw over the whole tensor (kaiming_uniform_ with a = sqrt(5))")
            if ref.bias is None: continue
            b, br = layer.bias.detach(), ref.bias.detach()
            if torch.allclose(b, br, rtol=1e-6, atol=1e-9): continue
            if b.abs().max() == 0:
                raise Wrong(f"{shown}: the bias came back all zeros", "PyTorch's default does not zero the bias: it draws it uniformly too")
            c = scale_of(b, br)
            raise Wrong(f"{shown}: the weight is right, the bias (shape {tuple(b.shape)}, max |b| {b.abs().max().item():.4f}) is not "
                        "what PyTorch draws after it", bound_hint(c, w, 'bias') if c is not None else
                        "after the weight, one uniform draw over the whole bias, within +-1/sqrt(fan_in) of the weight")
    return ("identical to PyTorch's own init on 5 fresh layers (linear, 1-d and 2-d conv, one without a bias). The bias is drawn "
            "within +-1/sqrt(fan_in), the same bound as the weight and with no gain: it is the old rule, untouched by Kaiming")


# ---- 02a.3: the std factor of a (layer, leaky ReLU) block, from the layer's weight ----

def weight_cases(rng, g):
    "Fresh weights from different inits, Linear and conv shapes, each with the negative slope of the activation after it."
    def uniform(shape, b): return (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) * b
    def normal(shape, std): return torch.randn(shape, generator=g, dtype=torch.float64) * std
    i, o, std = rng.randint(150, 400), rng.randint(20, 80), round(rng.uniform(0.02, 0.2), 3)
    return [(f"nn.Linear({i}, {o})'s default init", uniform((o, i), 1 / math.sqrt(i)), 0.),
            ("a Conv2d(16, 32, 3) weight, Kaiming normal", normal((32, 16, 3, 3), math.sqrt(2 / 144)), round(rng.uniform(0.25, 0.5), 2)),
            (f"a ({o}, {i}) weight, normal with std {std}", normal((o, i), std), 1.),
            ("a Conv2d(8, 20, 5) weight, Xavier uniform", uniform((20, 8, 5, 5), math.sqrt(6 / (200 + 500))), round(rng.uniform(0.25, 0.5), 2)),
            (f"a ({i}, {o}) weight, normal with std 1", normal((i, o), 1.), 0.),
            ("a Conv1d(6, 40, 7) weight, uniform in +-0.3", uniform((40, 6, 7), 0.3), round(rng.uniform(0.2, 0.4), 2))]


def block_factor(w, slope):
    "The factor on the rms: sqrt(fan_in x E[w^2] x (1 + slope^2) / 2)."
    return math.sqrt(fan_in(w) * w.pow(2).mean().item() * (1 + slope ** 2) / 2)


def measured_factor(w, slope, g):
    "rms(leaky_relu(layer(x))) / rms(x) on a fresh unit-normal input: what the block does to real numbers."
    if w.dim() == 2: x = torch.randn(3000, w.shape[1], generator=g, dtype=w.dtype); y = x @ w.T
    elif w.dim() == 3: x = torch.randn(200, w.shape[1], 30, generator=g, dtype=w.dtype); y = F.conv1d(x, w)
    else: x = torch.randn(100, w.shape[1], 14, 14, generator=g, dtype=w.dtype); y = F.conv2d(x, w)
    return (F.leaky_relu(y, slope).pow(2).mean().sqrt() / x.pow(2).mean().sqrt()).item()


BLOCK_MISTAKES = [
    (lambda w, s: block_factor(w, s) ** 2, "that is the factor on the second moment (the variance); the std's factor is its square root"),
    (lambda w, s: block_factor(w, s) / math.sqrt((1 + s * s) / 2),
     "the activation keeps only part of the second moment: half for a ReLU, (1 + slope^2) / 2 for a leaky one"),
    (lambda w, s: math.sqrt(fan_in(w) * w.pow(2).mean().item() * (1 + s) / 2),
     "a leaky ReLU multiplies the negative half by the slope, so its second moment by slope^2"),
    (lambda w, s: math.sqrt(fan_in(w) * w.pow(2).mean().item() * 2 / (1 + s * s)),
     "the activation *loses* second moment: it multiplies by (1 + slope^2) / 2; Kaiming's gain is what makes up for it"),
    (lambda w, s: block_factor(w, s) * math.sqrt(fan_out(w) / fan_in(w)),
     "fan_out: nn.Linear and nn.Conv2d store (out, in, ...), and what feeds one output is dimension 1 (times the kernel)"),
    (lambda w, s: block_factor(w, s) / math.sqrt(math.prod(w.shape[2:])), "a conv output sums over in_channels x kernel positions"),
    (lambda w, s: math.sqrt(fan_in(w) * w.std().item() * (1 + s * s) / 2), "the formula takes n Var(w), not n std(w)"),
]


@exercise('02a.3', 'block_std_factor: what a layer and its leaky ReLU do to the std')
def check_block_factor(block_std_factor):
    g = torch.Generator().manual_seed(3)
    cases = weight_cases(random.Random(3), g)
    for shown, w, slope in cases:
        try: got = block_std_factor(w.clone(), slope)
        except (NotImplementedError, NotAttempted): raise
        except Exception as e: raise Wrong(f"{shown}, slope {slope}: your function raised {type(e).__name__}: {e}") from None
        if got is Ellipsis or got is None: raise NotAttempted()
        value = as_number(got)
        if value is None: raise Wrong(f"{shown}, slope {slope}: came back {type(got).__name__}; expected one number")
        want = block_factor(w, slope)
        if close(value, want, 0.02): continue
        hint = next((h for f, h in BLOCK_MISTAKES if not close(f(w, slope), want, 0.02) and close(value, f(w, slope), 0.02)),
                    "sqrt(fan_in x Var(w)) for the layer, times the square root of the share of the second moment the activation keeps")
        raise Wrong(f"{shown}, followed by a leaky ReLU of slope {slope}: you predict {value:.4f}; measured on 3,000 random "
                    f"inputs, the block multiplies the rms by {measured_factor(w, slope, g):.4f}", hint)
    w = cases[0][1]
    return (f"right on 6 fresh weights (4 inits, linear and conv, slopes 0 to 1). On nn.Linear's default weight with a ReLU: "
            f"predicted {block_factor(w, 0.):.4f}, measured {measured_factor(w, 0., torch.Generator().manual_seed(0)):.4f} "
            f"(1/sqrt(6) = {1 / math.sqrt(6):.4f})")


# ---- 02a.4: an init matched to the activation after each layer ----

def activation_slope(module):
    "The negative slope of an activation module (ReLU 0, LeakyReLU its own), or None for a module that is not one."
    if isinstance(module, nn.ReLU): return 0.
    if isinstance(module, nn.LeakyReLU): return module.negative_slope
    return None


def describe(module): return 'nothing (a layer or the end of the stack)' if module is None else repr(module)


def fresh_stacks(rng):
    "Default-init stacks (lists of modules) where ReLUs, leaky ReLUs of fresh slopes and no activation at all follow the layers."
    s = [round(rng.uniform(0.4, 0.8), 2) for _ in range(3)]
    w = [rng.randint(80, 200) for _ in range(6)]
    c = rng.randint(20, 28)
    linear = [nn.Linear(w[0], w[1]), nn.ReLU(), nn.Linear(w[1], w[2]), nn.LeakyReLU(s[0]), nn.Linear(w[2], w[3], bias=False),
              nn.Linear(w[3], w[4]), nn.ReLU(), nn.Linear(w[4], w[5])]
    conv = [nn.Conv2d(3, c, 3), nn.LeakyReLU(s[1]), nn.Conv2d(c, c, 3), nn.ReLU(), nn.Conv2d(c, c, 3, bias=False),
            nn.Conv2d(c, c, 3), nn.LeakyReLU(s[2])]
    return [('a linear stack', linear, (500, w[0])), ('a conv stack', conv, (64, 3, 16, 16))]


def weight_layers(stack):
    "(index, layer, the activation after it or None, the activation before it or None) for each Linear and Conv."
    out = []
    for i, m in enumerate(stack):
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            after = stack[i + 1] if i + 1 < len(stack) and activation_slope(stack[i + 1]) is not None else None
            before = stack[i - 1] if i > 0 and activation_slope(stack[i - 1]) is not None else None
            out.append((i, m, after, before))
    return out


def gain_for(act): return 1. if act is None else leaky_gain(activation_slope(act))


def block_rms(stack, x):
    "The rms of the input, then of the activations after each block (a layer and the activation after it, if any)."
    rms = [x.pow(2).mean().sqrt().item()]
    with torch.no_grad():
        for i, m in enumerate(stack):
            x = m(x)
            if activation_slope(m) is not None or (i + 1 == len(stack) or activation_slope(stack[i + 1]) is None):
                rms.append(x.pow(2).mean().sqrt().item())
    return rms


@exercise('02a.4', 'init_for_activations_: each layer initialised for the activation after it')
def check_init_stack(init_for_activations_):
    rng, g = random.Random(4), torch.Generator().manual_seed(4)
    results = []
    with keep_rng():
        torch.manual_seed(4)
        for shown, stack, input_shape in fresh_stacks(rng):
            try: out = init_for_activations_(stack)
            except (NotImplementedError, NotAttempted): raise
            except Exception as e: raise Wrong(f"{shown}: your function raised {type(e).__name__}: {e}") from None
            if out is Ellipsis: raise NotAttempted()
            layers = weight_layers(stack)
            implied = [layer.weight.detach().std().item() * math.sqrt(fan_in(layer.weight)) for _, layer, _, _ in layers]
            wanted = [gain_for(after) for _, _, after, _ in layers]
            if not all(close(v, t, 0.03) for v, t in zip(implied, wanted)):
                k = next(k for k, (v, t) in enumerate(zip(implied, wanted)) if not close(v, t, 0.03))
                i, layer, after, before = layers[k]
                w, v, want = layer.weight.detach(), implied[k], wanted[k]
                def everywhere(gains): return all(close(a, b, 0.03) for a, b in zip(implied, gains))
                if everywhere([leaky_gain(math.sqrt(5))] * len(layers)): hint = "the weights still have PyTorch's default init"
                elif everywhere([gain_for(b) for _, _, _, b in layers]):
                    hint = "each layer got the gain for the activation *before* it; the gain makes up for the one its output goes through"
                elif close(v, leaky_gain(0.), 0.03):
                    hint = ("a leaky ReLU keeps (1 + slope^2) / 2 of the second moment, not half: pass its slope as `a`" if after is not None
                            else "nothing after this layer halves its output, so it needs a gain of 1: which `a` gives that?")
                elif w.dim() > 2 and close(v, want * math.sqrt(math.prod(w.shape[2:])), 0.03): hint = "a conv's fan_in includes the kernel"
                else: hint = "std(w) = gain / sqrt(fan_in), with the gain of the activation after the layer (leaky_gain of its slope)"
                raise Wrong(f"{shown}, module {i} ({layer}), followed by {describe(after)}: std(w) x sqrt(fan_in) = {v:.3f}, "
                            "which is not the gain that activation needs", hint)
            for i, layer, _, _ in layers:
                if layer.bias is not None and layer.bias.detach().abs().max() > 0:
                    raise Wrong(f"{shown}, module {i} ({layer}): its bias is not zero",
                                "set the biases to zero, as the notebook's stacks leave them out: a random bias adds a floor to the std")
            rms = block_rms(stack, torch.randn(*input_shape, generator=g))
            per_block = math.exp(sum(math.log(b / a) for a, b in zip(rms, rms[1:])) / (len(rms) - 1))
            if not (0.85 < per_block < 1.15 and 0.5 < rms[-1] / rms[0] < 2):
                raise Wrong(f"{shown}: the rms after each block on a fresh input was {', '.join(f'{r:.3f}' for r in rms)}; "
                            "expected it to stay about the same", "each weight's std should be gain / sqrt(fan_in)")
            results.append(f"{shown}: " + ' -> '.join(f"{r:.2f}" for r in rms))
    return ("every weight has the gain of the activation after it, and the rms holds on fresh inputs, block by block:\n"
            + '\n'.join(results) + "\n(a = 1 gives a gain of 1: the 'leaky ReLU' of slope 1 is the identity)")
