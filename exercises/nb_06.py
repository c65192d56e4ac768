"""Checks for the exercises of 06_cnn_hooks_init: the shapes a stride-2 CNN gives (06.1), GeneralRelu and
Kaiming init by hand (06.2), a forward hook that counts dead channels (06.3), a convolution's backward pass as
unfold, matmuls and fold (06.4)."""
import re

import torch
import torch.nn.functional as F
from torch import nn

from exercises import NotAttempted, Wrong, check_predictions, code_of, exercise


def evaluate(expression, seed=0):
    "What an expression gives over notebook 06's names, with a seeded generator that leaves the learner's alone."
    from exp.nb_06 import GeneralRelu, conv, get_cnn_model, init_cnn
    names = dict(torch=torch, nn=nn, conv=conv, get_cnn_model=get_cnn_model, GeneralRelu=GeneralRelu, init_cnn=init_cnn)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with torch.no_grad(): return eval(expression, names)


def as_shape(value):
    if isinstance(value, torch.Size): return tuple(value)
    if isinstance(value, (tuple, list)) and all(isinstance(v, int) for v in value): return tuple(value)
    return value


def as_tensor(value):
    "A prediction as a float64 tensor, or None when it is not a number or a list of numbers."
    try: return torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError): return None


# 06.1: the shapes through stride-2 convolutions with padding ks//2 (the notebook's `conv`), and one without padding
SHAPE_QUESTIONS = ('conv(1, 8, ks=5)(torch.zeros(64, 1, 28, 28)).shape',
                   'nn.Conv2d(1, 8, 5, stride=2)(torch.zeros(64, 1, 28, 28)).shape',
                   'get_cnn_model()[:3](torch.zeros(64, 1, 28, 28)).shape',
                   'get_cnn_model()(torch.zeros(64, 1, 40, 40)).shape',
                   'sum(p.numel() for p in conv(8, 16).parameters())')


@exercise('06.1', 'predict the shapes through a stride-2 CNN', kind='predict')
def check_cnn_shapes(answer):
    truth = {q: as_shape(evaluate(q)) for q in SHAPE_QUESTIONS}
    expected = {q: (lambda v, t=t: as_shape(v) == t) for q, t in truth.items()}
    hints = {SHAPE_QUESTIONS[0]: "padding ks//2 keeps the size at stride 1; stride 2 then keeps every other position, the first included",
             SHAPE_QUESTIONS[1]: "with no padding a 5-wide window fits in 28 - 5 + 1 places; stride 2 keeps every other one, the first included",
             SHAPE_QUESTIONS[2]: "three stride-2 convolutions, 1 -> 8 -> 16 -> 32 channels; an odd size rounds up, since the first position counts",
             SHAPE_QUESTIONS[3]: "follow the size through all five stride-2 layers from 40: does the last one end on a 1x1 grid? "
                                 "nn.Flatten keeps channels x height x width",
             SHAPE_QUESTIONS[4]: "a convolution has nf x ni x ks x ks weights, plus one bias per output channel"}
    return check_predictions(answer, expected, hints, "what PyTorch gives (a shape as a tuple, a count as an int)")


# 06.2: GeneralRelu's three knobs and the standard deviations of three initialisations
RELU_QUESTIONS = ('GeneralRelu(leak=0.1, sub=0.4, maxv=6.)(torch.tensor([-20., 0.2, 8.]))',
                  'GeneralRelu(leak=0.1)(torch.randn(1_000_000)).mean()',
                  'init_cnn(nn.Conv2d(32, 64, 3)).weight.std()',
                  'init_cnn(nn.Conv2d(32, 64, 3), leak=1.).weight.std()',
                  'nn.Conv2d(32, 64, 3).weight.std()')


def close_to(value, truth, rtol, atol):
    v = as_tensor(value)
    return v is not None and v.shape == truth.shape and bool(torch.allclose(v, truth, rtol=rtol, atol=atol))


@exercise('06.2', 'predict GeneralRelu and three initialisations', kind='predict')
def check_relu_init(answer):
    truth = {q: evaluate(q).double() for q in RELU_QUESTIONS}
    q = RELU_QUESTIONS
    expected = {q[0]: lambda v: close_to(v, truth[q[0]], 0, 1e-4),
                q[1]: lambda v: close_to(v, truth[q[1]], 0, 0.01),            # a sample of a million: +-0.002
                **{k: (lambda v, k=k: close_to(v, truth[k], 0.05, 0)) for k in q[2:]}}   # 18,432 weights: +-1%
    hints = {q[0]: "negative inputs are multiplied by leak first, then sub is taken off everything, then the cap applies: in that order",
             q[1]: "E[max(x, 0)] = 1/sqrt(2 pi) for a standard normal x; the negative half adds leak times the mirror image of that",
             q[2]: "Kaiming: std sqrt(2 / fan_in), and a convolution's fan_in is ni x ks x ks (the inputs one output sums over)",
             q[3]: "the gain for a leaky ReLU of slope a is sqrt(2 / (1 + a^2)): with a = 1 the activation is the identity",
             q[4]: "PyTorch's default draws uniformly within +-1/sqrt(fan_in), and a uniform on [-b, b] has std b / sqrt(3)"}
    return check_predictions(answer, expected, hints, "within a few per cent of what PyTorch gives")


# 06.3: a forward hook recording the share of channels that sit at the floor for the whole batch
def activations():
    "A fresh activation of each kind the notebook uses (nn.LeakyReLU too: `is_relu` finds it)."
    from exp.nb_06 import GeneralRelu
    return [nn.ReLU(), GeneralRelu(sub=0.4), GeneralRelu(leak=0.1, sub=0.4, maxv=6.), nn.LeakyReLU(0.1), GeneralRelu(sub=0.2, maxv=6.)]


def share(mask): return mask.float().mean().item()


def channel_dead(dead_side):
    "Per channel (dim 1): is every example and every position on the dead side?"
    return dead_side.transpose(0, 1).reshape(dead_side.shape[1], -1).all(1)


def named(mod):
    "An activation as it was made: GeneralRelu(sub=0.4) rather than PyTorch's bare GeneralRelu()."
    knobs = [f"{k}={getattr(mod, k)}" for k in ('leak', 'sub', 'maxv') if getattr(mod, k, None) is not None]
    return f"{type(mod).__name__}({', '.join(knobs)})" if type(mod).__name__ == 'GeneralRelu' else repr(mod)


def dead_case(case, g, acts):
    "A small linear (even cases) or conv (odd cases) model with the two activations `acts`, biases spread so some channels die."
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(case)
        d0, d1, d2 = (int(torch.randint(2, 12, (1,))) for _ in range(3))
        if case % 2 == 0:
            layers, shown = [nn.Linear(d0, d1), nn.Linear(d1, d2)], f"Linear({d0}, {d1}) ... Linear({d1}, {d2})"
            def batch(n): return torch.randn(n, d0, generator=g)
        else:
            layers, shown = [nn.Conv2d(d0, d1, 3, padding=1), nn.Conv2d(d1, d2, 3, padding=1)], f"Conv2d({d0}, {d1}, 3) ... Conv2d({d1}, {d2}, 3)"
            def batch(n): return torch.randn(n, d0, 4, 4, generator=g)
        for layer in layers:
            with torch.no_grad(): layer.bias.copy_(torch.randn(layer.bias.shape) * 2)   # a bias of -2 keeps most of a channel down
    model = nn.Sequential(layers[0], acts[0], layers[1], acts[1])
    return model, batch, f"a Sequential({shown.split(' ... ')[0]}, {named(acts[0])}, {shown.split(' ... ')[1]}, {named(acts[1])})"


@exercise('06.3', 'a hook that records the share of dead channels')
def check_dead_hook(record_dead_channels):
    from exp.nb_06 import Hooks
    g = torch.Generator().manual_seed(63)
    kinds = activations()
    for case in range(6):
        acts = [kinds[case % len(kinds)], kinds[(case + 2) % len(kinds)]]
        model, batch, shown = dead_case(case, g, acts)
        seen = [[], []]   # the (input, output) of each activation, at each training forward
        def keep(hook, mod, inp, outp):
            if mod.training: seen[acts.index(mod)].append((inp[0].detach(), outp.detach()))
        with Hooks(acts, record_dead_channels) as theirs, Hooks(acts, keep):
            for shift in (0.0, 1.5, -1.0, 0.5):        # shifted batches: a different share every time
                x = batch(int(torch.randint(2, 9, (1,), generator=g))) + shift
                model(x)
                if shift == 1.5: model.eval(); model(x - 3); model.train()   # an evaluation forward: not to be recorded
        for i, hook in enumerate(theirs):
            if not hasattr(hook, 'dead'):
                raise Wrong(f"{shown}: after 4 training forwards, the hook on {named(acts[i])} has no attribute `dead`",
                            "make the list on the first call (`if not hasattr(hook, 'dead')`), as append_stats makes hook.stats")
            got = hook.dead
            if got is Ellipsis or (isinstance(got, list) and any(v is Ellipsis for v in got)): raise NotAttempted()
            if not isinstance(got, list):
                raise Wrong(f"{shown}: hook.dead is a {type(got).__name__}, not a list", "one number appended per training forward")
            if len(got) == 5:
                raise Wrong(f"{shown}: 5 records for 4 training forwards and 1 in eval mode",
                            "skip the forwards made in eval mode (`mod.training` is False there), as append_stats does")
            if len(got) != 4:
                raise Wrong(f"{shown}: {len(got)} record(s) after 4 training forwards",
                            "append one number per training forward; make the list only on the first call, never again")
            try: got = [float(v) for v in got]
            except (TypeError, ValueError, RuntimeError):
                raise Wrong(f"{shown}: hook.dead holds {type(hook.dead[0]).__name__}s, not single numbers",
                            "record one share per forward: the share of channels, as a float (`.item()`)")
            records = seen[i]
            sub = getattr(acts[i], 'sub', None) or 0.0
            right = [share(channel_dead(inp <= 0)) for inp, _ in records]
            tol = [1e-6] * len(records)   # shares of a few channels: any real difference is at least 1/channels
            def same(values): return all(abs(a - b) <= t for a, b, t in zip(got, values, tol))
            if same(right): continue
            table = ', '.join(f"{v:.3f}" for v in got)
            message = f"{shown}: the hook on {named(acts[i])} recorded [{table}]; these are not the shares of dead channels"
            if same([share(inp <= 0) for inp, _ in records]) or same([share(out <= -sub) for _, out in records]):
                raise Wrong(message, "that is the share of activations at the floor (what FloorStats records): a channel counts "
                                     "only when it is at the floor for every example and every position of the batch")
            if sub and same([share(channel_dead(out == 0)) for _, out in records]):
                raise Wrong(message, f"this activation subtracts sub={sub}: a dead unit outputs -sub (or leak*x - sub), not 0; "
                                     "look at the module's input, or compare the output with -sub")
            if same([share(channel_dead(inp < 0)) for inp, _ in records]) or same([share(channel_dead(out < -sub)) for _, out in records]):
                raise Wrong(message, "a dead ReLU unit sits exactly on its floor: count it with <=, not <")
            if same([share((inp <= 0).transpose(0, 1).reshape(inp.shape[1], -1).any(1)) for inp, _ in records]):
                raise Wrong(message, "that counts a channel as soon as one of its units is at the floor: it must be all of them")
            if records[0][0].dim() == 4 and same([share((inp <= 0).all(0)) for inp, _ in records]):
                raise Wrong(message, "a channel of a convolution is all its positions together: reduce over the batch and "
                                     "the height and width, then take the share over the channels")
            if same([1 - v for v in right]):
                raise Wrong(message, "that is the share of channels still alive somewhere: count the others")
            raise Wrong(message, "a unit is on the dead side when the activation's input is <= 0 (`inp` is a tuple, its first "
                                 "item is the tensor); a channel is dead when all its units, over the batch and every position, are")
    return "right on 6 fresh two-layer models, linear and convolutional, each activation kind of the notebook, eval forwards skipped"


# 06.4: the backward pass of a convolution, by hand, against autograd on F.conv2d
BANNED = re.compile(r'\bconv2d\b|\bConv2d\b|conv_transpose|\bautograd\b|\bbackward\b|\.grad\b|\bconvolution\b')


def conv_cases(g):
    "(n, ci, co, h, w, kh, kw, stride, padding): fixed ones first (one channel, odd sizes, the notebook's 5x5), then random."
    fixed = [(1, 1, 1, 5, 5, 3, 3, 1, 0), (2, 3, 4, 8, 8, 3, 3, 2, 1), (2, 1, 8, 28, 28, 5, 5, 2, 2), (2, 4, 3, 7, 9, 2, 3, 1, 0),
             (3, 2, 5, 11, 10, 3, 1, 3, 1)]
    def r(lo, hi): return int(torch.randint(lo, hi + 1, (1,), generator=g))
    rand = []
    for _ in range(5):
        kh, kw, p = r(1, 5), r(1, 5), r(0, 2)
        rand.append((r(1, 3), r(1, 4), r(1, 5), r(max(kh - 2 * p, 1), 12), r(max(kw - 2 * p, 1), 12), kh, kw, r(1, 3), p))
    return fixed + rand


@exercise('06.4', "a convolution's backward pass by hand")
def check_conv_backward(conv2d_backward):
    code = code_of(conv2d_backward)
    found = BANNED.search(code)
    if found: raise Wrong(f"your function uses `{found.group()}`", "the exercise is to do it with F.unfold, matmuls and F.fold")
    g = torch.Generator().manual_seed(64)
    for n, ci, co, h, w, kh, kw, s, p in conv_cases(g):
        x = torch.randn(n, ci, h, w, generator=g, dtype=torch.float64, requires_grad=True)
        weight = torch.randn(co, ci, kh, kw, generator=g, dtype=torch.float64, requires_grad=True)
        bias = torch.randn(co, generator=g, dtype=torch.float64, requires_grad=True)
        out = F.conv2d(x, weight, bias, stride=s, padding=p)
        grad_out = torch.randn(out.shape, generator=g, dtype=torch.float64)
        expected = torch.autograd.grad(out, (x, weight, bias), grad_out)
        shown = f"x {tuple(x.shape)}, weight {tuple(weight.shape)}, stride {s}, padding {p}"
        try: got = conv2d_backward(x.detach(), weight.detach(), grad_out, stride=s, padding=p)
        except RuntimeError as e:
            if any(word in str(e).lower() for word in ('fold', 'col2im', 'sliding blocks')):   # F.fold's own complaints
                raise Wrong(f"{shown}: your code raised {str(e).splitlines()[0]}",
                            "F.fold needs the input's (h, w) and the same kernel size, padding and stride as the unfold")
            raise
        if got is Ellipsis or got is None: raise NotAttempted()
        if not isinstance(got, (tuple, list)) or len(got) != 3 or not all(torch.is_tensor(t) for t in got):
            raise Wrong(f"{shown}: came back a {type(got).__name__}, not three tensors", "return (grad_x, grad_weight, grad_bias)")
        for name, mine, truth, hint in zip(
                ('grad_x', 'grad_weight', 'grad_bias'), got, expected,
                ("each column of the input's gradient is W^T times that position's upstream gradient; F.fold puts every "
                 "column back into its window, adding where windows overlap",
                 "per example, the upstream gradient (co, L) times the unfolded columns transposed; the weights are shared by "
                 "every example, so add the batch's contributions",
                 "the bias is added at every position of every example: sum the upstream gradient over all of them")):
            if tuple(mine.shape) != tuple(truth.shape):
                raise Wrong(f"{shown}: {name} came back shape {tuple(mine.shape)}; expected {tuple(truth.shape)}", hint)
            if not torch.allclose(mine.double(), truth, rtol=1e-7, atol=1e-9):
                message = f"{shown}: {name} has the right shape, but values off by up to {(mine - truth).abs().max().item():.3g}"
                raise Wrong(message, hint)
    return "all three gradients equal autograd's on 10 cases: several channels, non-square kernels, strides 1 to 3, padding 0 to 2"
