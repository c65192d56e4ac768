"""Checks for the exercises of 10a_tensor_autograd: gradients under broadcasting, `unbroadcast` by hand, and two new
ops on the engine's `Function` (the lecture's tanh, and a power with a tensor exponent), each against torch.autograd."""
import math, numbers, random, re

import torch

from exercises import NotAttempted, Wrong, check_predictions, code_of, exercise


def engine(Function=None, Tensor=None):
    "The notebook's own `Function` and `Tensor` (the check line passes them), or exp.nb_10a's when either is missing."
    if Function is None or Tensor is None:
        from exp.nb_10a import Function, Tensor
    return Function, Tensor


# ---- 10a.1: predict gradients under broadcasting ----

def _ones_then_backward(shapes, loss, read, constants=()):
    "Tensors of ones of `shapes` (those in `constants` without grad), loss(...).backward(), then read(...)."
    from exp.nb_10a import Tensor
    ts = {name: Tensor(torch.ones(shape), requires_grad=name not in constants) for name, shape in shapes.items()}
    loss(**ts).backward()
    return read(**ts)


WARM_UP = {   # the line as the learner reads it: (how to run it, what kind of answer, hint)
    'a (3, 1), b (4,): (a * b).sum().backward(); a.grad.shape': (
        lambda: _ones_then_backward(dict(a=(3, 1), b=(4,)), lambda a, b: (a * b).sum(), lambda a, b: tuple(a.grad.shape)),
        'shape', "a gradient has the shape of its own tensor, whatever that tensor was broadcast to"),
    'a (3, 1), b (4,): (a * b).sum().backward(); b.grad.shape': (
        lambda: _ones_then_backward(dict(a=(3, 1), b=(4,)), lambda a, b: (a * b).sum(), lambda a, b: tuple(b.grad.shape)),
        'shape', "b was broadcast along a new first dimension; backward sums that dimension away again"),
    'a (3, 1), b (4,): (a * b).sum().backward(); a.grad[0, 0]': (
        lambda: _ones_then_backward(dict(a=(3, 1), b=(4,)), lambda a, b: (a * b).sum(), lambda a, b: a.grad[0, 0].item()),
        'number', "a[0, 0] is multiplied by every element of b; each of those uses passes back b's value: add them up"),
    'a (5,), x (2, 3, 5): (a + x).sum().backward(); a.grad[0]': (
        lambda: _ones_then_backward(dict(a=(5,), x=(2, 3, 5)), lambda a, x: (a + x).sum(), lambda a, x: a.grad[0].item(),
                                    constants=('x',)),
        'number', "each element of a is added to one element in every (2, 3) position of x; each use contributes 1"),
    'a (4, 3): a.mean().backward(); a.grad[0, 0]': (
        lambda: _ones_then_backward(dict(a=(4, 3)), lambda a: a.mean(), lambda a: a.grad[0, 0].item()),
        'number', "the mean divides the sum by the number of elements, and so does its gradient"),
    'w (3, 2), x (8, 3): (x @ w).sum().backward(); w.grad[0, 0]': (
        lambda: _ones_then_backward(dict(w=(3, 2), x=(8, 3)), lambda w, x: (x @ w).sum(), lambda w, x: w.grad[0, 0].item(),
                                    constants=('x',)),
        'number', "w[0, 0] multiplies x[n, 0] in every row n of the batch: its gradient is x.T @ grad, a sum over the rows"),
}


def _as_shape(v):
    if isinstance(v, (tuple, list, torch.Size)) and all(isinstance(n, int) and not isinstance(n, bool) for n in v): return tuple(v)
    return None


def _as_number(v):
    if isinstance(v, bool): return None
    if isinstance(v, numbers.Real): return float(v)
    if torch.is_tensor(v) and v.numel() == 1: return v.item()
    return None


@exercise('10a.1', 'predict: gradients under broadcasting', kind='predict')
def check_broadcast_predictions(answer):
    expected, hints = {}, {}
    for line, (run, kind, hint) in WARM_UP.items():
        truth = run()
        expected[line] = ((lambda v, t=truth: _as_shape(v) == t) if kind == 'shape' else
                          (lambda v, t=truth: _as_number(v) is not None and math.isclose(_as_number(v), t, rel_tol=1e-3)))
        hints[line] = hint
    return check_predictions(answer, expected, hints, "what the engine gives")


# ---- 10a.2: unbroadcast by hand ----

def broadcast_cases(seed):
    "(shape, broadcast-to shape) pairs of every kind: unchanged, dims added on the left, size-1 dims stretched, both."
    rng = random.Random(seed)
    side = lambda: rng.randint(2, 5)
    cases = []
    for kind in ['same', 'left', 'stretch', 'both', 'scalar', 'all ones', 'kept one', 'middle']:
        if kind == 'same': shape = (side(), side()); out = shape
        elif kind == 'left': shape = (side(),); out = (side(), side()) + shape
        elif kind == 'stretch': shape = (side(), 1); out = (shape[0], side())
        elif kind == 'both': shape = (1, side()); out = (side(), side(), shape[1])
        elif kind == 'scalar': shape = (); out = (side(), side())
        elif kind == 'all ones': shape = (1, 1); out = (side(), side())
        elif kind == 'kept one': shape = (side(), 1, side()); out = (side(), shape[0], 1, shape[2])   # a 1 that stayed 1
        else: shape = (side(), 1, side()); out = (shape[0], side(), shape[2])
        cases.append((torch.Size(shape), torch.Size(out)))
    rng.shuffle(cases)
    return cases


def autograd_unbroadcast(grad, shape):
    "What torch.autograd gives a tensor of `shape` that was broadcast to grad's shape, for the upstream `grad`."
    a = torch.zeros(shape, dtype=grad.dtype, requires_grad=True)
    (a.expand(grad.shape) * grad).sum().backward()
    return a.grad


def _averaged(grad, shape):
    lead = grad.ndim - len(shape)
    g = grad.mean(tuple(range(lead))) if lead else grad
    dims = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.mean(dims, keepdim=True) if dims else g


@exercise('10a.2', 'my_unbroadcast: the backward of broadcasting')
def check_unbroadcast(my_unbroadcast):
    body = code_of(my_unbroadcast)
    if 'sum_to_size' in body:
        raise Wrong("your function calls torch's sum_to_size", "sum_to_size is this exercise in one call: write the sums yourself")
    if re.search(r'(?<![\w.])unbroadcast\s*\(', body):
        raise Wrong("your function calls the notebook's unbroadcast", "write the sums yourself, with torch's sum and reshape")
    g = torch.Generator().manual_seed(1010)
    for seed in range(3):
        for shape, out in broadcast_cases(seed):
            grad = torch.randn(out, generator=g, dtype=torch.float64)
            got = my_unbroadcast(grad.clone(), shape)
            if got is Ellipsis: raise NotAttempted()
            want = autograd_unbroadcast(grad, shape)
            shown = f"a tensor of shape {tuple(shape)} broadcast to {tuple(out)}"
            if not torch.is_tensor(got):
                raise Wrong(f"{shown}: came back {type(got).__name__}; expected a tensor of shape {tuple(shape)}",
                            "return the summed gradient")
            if got.shape != shape:
                found = f"{shown}: came back shape {tuple(got.shape)}; expected {tuple(shape)}"
                if got.numel() == want.numel() and torch.allclose(got.reshape(shape).to(want.dtype), want):
                    raise Wrong(found + " (the right numbers)", "keep the size-1 dimensions: sum them with keepdim=True, or reshape to `shape` at the end")
                if got.ndim > len(shape):
                    raise Wrong(found, "broadcasting adds dimensions on the left: sum those away too")
                if got.ndim == len(shape) and any(n == 1 and m != 1 for n, m in zip(shape, got.shape)):
                    raise Wrong(found, "a dimension of size 1 in `shape` that is larger in grad was stretched: sum over it")
                raise Wrong(found, "broadcasting aligns shapes on the right: compare grad's dimensions with `shape` from the last one backwards")
            if not torch.allclose(got.to(want.dtype), want, rtol=1e-10, atol=1e-10):
                found = f"{shown}: the right shape, values off by up to {(got.to(want.dtype) - want).abs().max().item():.3g}"
                if torch.allclose(got.to(want.dtype), _averaged(grad, shape), rtol=1e-10, atol=1e-10):
                    raise Wrong(found, "each copy of an element contributed its own gradient: add them, do not average")
                raise Wrong(found, "sum over every dimension that broadcasting added or stretched, and over no other")
    return "the same as torch.autograd on 24 fresh broadcasts: dimensions added on the left, size-1 dimensions stretched, both"


# ---- 10a.3 and 10a.4: new ops on the engine's Function ----

def make_op(name, methods, Function):
    "A Function subclass from the learner's (forward, backward) pair."
    if not (isinstance(methods, (tuple, list)) and len(methods) == 2 and all(callable(m) for m in methods)):
        raise Wrong(f"expected the pair (forward, backward) of functions; came back {type(methods).__name__}",
                    "pass the two functions you wrote, as in the check line")
    forward, backward = methods
    if 'autograd' in code_of(backward) or '.backward(' in code_of(backward):
        raise Wrong("your backward calls autograd", "write the local derivative yourself: the engine is what we are building")
    return type(name, (Function,), {'forward': forward, 'backward': backward})


def run_both(expr_ours, expr_torch, inputs, requires, Tensor, g):
    """`expr` with our engine (inputs needing a gradient as Tensors, others as constants) and with torch.autograd, the
    output weighted by fresh random numbers: (output, reference, our gradients, torch's gradients, weights kept intact)."""
    ours = [Tensor(x.clone(), requires_grad=True) if r else x.clone() for x, r in zip(inputs, requires)]
    theirs = [x.clone().requires_grad_(r) for x, r in zip(inputs, requires)]
    out, ref = expr_ours(*ours), expr_torch(*theirs)
    weights = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    kept = weights.clone()
    out.backward(weights)
    ref.backward(kept.clone())
    grads = [o.grad if r else None for o, r in zip(ours, requires)]
    refs = [t.grad if r else None for t, r in zip(theirs, requires)]
    return out.data, ref.detach(), grads, refs, torch.equal(weights, kept)


def shapes_of(xs): return ', '.join(str(tuple(x.shape)) for x in xs)


def call_backward(Op, inputs, requires, Tensor, g):
    "Apply the op once and call its backward by hand: (ctx, output, upstream gradient, what backward returned)."
    args = [Tensor(x.clone(), requires_grad=True) if r else x.clone() for x, r in zip(inputs, requires)]
    out = Op.apply(*args)
    if out.data is None: raise Wrong("forward returned None", "return the output tensor")
    if not torch.is_tensor(out.data):
        raise Wrong(f"forward returned {type(out.data).__name__}", "forward works on torch tensors and returns one")
    upstream = torch.randn(out.shape, generator=g, dtype=torch.float64)
    try: returned = out._ctx.backward(upstream.clone())
    except AttributeError as e:   # reduce_to_inputs(None, ...) for an input that needs a gradient
        if "'NoneType'" not in str(e): raise
        raise Wrong(f"backward raised AttributeError: {e}: a None where an input needs a gradient",
                    "every input whose ctx.needs_input_grad is True must get a tensor") from None
    if torch.is_tensor(returned):
        raise Wrong("backward returned a bare tensor", "return one gradient per input, in a tuple, even for one input: (g,)")
    if not isinstance(returned, (tuple, list)) or len(returned) != len(inputs):
        raise Wrong(f"backward returned {returned if not isinstance(returned, (tuple, list)) else f'{len(returned)} values'} "
                    f"for {len(inputs)} input(s)", "return one gradient per input, in the order forward received them")
    return out, upstream, returned


def off_by(got, want):
    "' by up to X' when `got` is a tensor of want's shape, else what came back instead."
    if not torch.is_tensor(got): return f" (came back {type(got).__name__})"
    if got.shape != want.shape: return f" (came back shape {tuple(got.shape)}, expected {tuple(want.shape)})"
    return f" by up to {(got.to(want.dtype) - want).abs().max().item():.3g}"


def close(a, b, nan=False):
    "`a` is a tensor of b's shape and values (NaN equal to NaN when `nan`: to recognise a mistake that makes NaN)."
    return (a is not None and torch.is_tensor(a) and a.shape == b.shape
            and torch.allclose(a.to(b.dtype), b, rtol=1e-7, atol=1e-9, equal_nan=nan))


@exercise('10a.3', "Tanh: the lecture's op, forward and backward")
def check_tanh(methods, Function=None, Tensor=None):
    Function, Tensor = engine(Function, Tensor)
    Tanh = make_op('Tanh', methods, Function)
    g = torch.Generator().manual_seed(1013)
    # one use, backward called by hand: the usual mistakes are told apart here
    for case in range(3):
        x = torch.randn(int(torch.randint(2, 5, (1,), generator=g)), int(torch.randint(2, 6, (1,), generator=g)),
                        generator=g, dtype=torch.float64) * 1.5
        out, upstream, (got,) = call_backward(Tanh, [x], [True], Tensor, g)
        shown = f"x of shape {tuple(x.shape)}"
        t = x.tanh()
        if not close(out.data, t):
            raise Wrong(f"{shown}: forward gave values off by up to {(out.data - t).abs().max().item():.3g}", "forward returns tanh of its input")
        want = upstream * (1 - t ** 2)
        if close(got, want): continue
        if not torch.is_tensor(got): raise Wrong(f"{shown}: backward returned ({type(got).__name__},)", "return the input's gradient, a tensor")
        found = f"{shown}, upstream gradient random: the gradient differs from torch.autograd's{off_by(got, want)}"
        for wrong, hint in [(1 - t ** 2, "the chain rule: multiply the local derivative by the gradient that comes in"),
                            (upstream * (1 - x ** 2), "the derivative is 1 - t² with t the *output* tanh(a), not the input"),
                            (upstream * (1 - t), "square the output: 1 - t²"),
                            (upstream * (1 + t ** 2), "check the sign: tanh flattens out, so its slope is below 1")]:
            if close(got, wrong, nan=True): raise Wrong(found, hint)
        raise Wrong(found, "d tanh(a)/da = 1 - tanh(a)²: save the output in forward, use it in backward, times grad")
    # inside bigger graphs, with broadcasting and matrix products, on fresh shapes
    for case in range(4):
        n, k, m = (int(v) for v in torch.randint(1, 6, (3,), generator=g))
        x, w = torch.randn(n, k, generator=g, dtype=torch.float64), torch.randn(k, m, generator=g, dtype=torch.float64)
        c, b = torch.randn(k, generator=g, dtype=torch.float64), torch.randn(m, generator=g, dtype=torch.float64)
        for name, expr, inputs in [
                ('tanh(x) * c, c broadcast over the rows', lambda tanh, x, c: tanh(x) * c, [x, c]),
                ('tanh(x @ w + b), a layer of tanh neurons', lambda tanh, x, w, b: tanh(x @ w + b), [x, w, b]),
                ('tanh(tanh(x) @ w)', lambda tanh, x, w: tanh(tanh(x) @ w), [x, w])]:
            data, ref, grads, refs, intact = run_both(lambda *a: expr(Tanh.apply, *a), lambda *a: expr(torch.tanh, *a),
                                                      inputs, [True] * len(inputs), Tensor, g)
            shown = f"{name}, shapes {shapes_of(inputs)}"
            if not intact:
                raise Wrong(f"{shown}: your backward changed the gradient it was given, in place",
                            "compute a new tensor (grad * ...), never grad.mul_(...): the engine may hand one tensor to several ops")
            if not close(data, ref): raise Wrong(f"{shown}: the output differs from torch's", "forward returns tanh of its input")
            for i, (mine, theirs) in enumerate(zip(grads, refs)):
                if not close(mine, theirs):
                    raise Wrong(f"{shown}: the gradient of input {i} differs from torch.autograd's",
                                "the op alone was right: does backward use what forward saved for *this* use (on ctx), not a global?")
    return "the same values and gradients as torch.tanh under torch.autograd, alone and inside 12 fresh graphs"


@exercise('10a.4', 'Pow: a tensor exponent, with broadcasting')
def check_pow(methods, Function=None, Tensor=None):
    Function, Tensor = engine(Function, Tensor)
    Pow = make_op('TensorPow', methods, Function)
    g = torch.Generator().manual_seed(1014)
    positive = lambda *shape: torch.rand(shape, generator=g, dtype=torch.float64) * 2 + 0.2
    normal = lambda *shape: torch.randn(shape, generator=g, dtype=torch.float64)
    # same shapes, backward called by hand: the usual mistakes are told apart here
    for case in range(3):
        shape = tuple(int(v) for v in torch.randint(2, 5, (2,), generator=g))
        a, b = positive(*shape), normal(*shape)
        out, upstream, got = call_backward(Pow, [a, b], [True, True], Tensor, g)
        shown = f"a, b of shape {shape}, upstream gradient random"
        if not close(out.data, a ** b): raise Wrong(f"{shown}: forward's values differ from a ** b", "forward returns a ** b")
        want = (upstream * b * a ** (b - 1), upstream * a ** b * a.log())
        if close(got[0], want[0]) and close(got[1], want[1]): continue
        if close(got[0], want[1]) and close(got[1], want[0]):
            raise Wrong(f"{shown}: the two gradients came back swapped", "return (gradient for a, gradient for b), in the order forward received them")
        if any(x is None for x in got):
            raise Wrong(f"{shown}: backward returned None for an input that needs a gradient",
                        "both inputs require a gradient here (ctx.needs_input_grad is (True, True))")
        if not close(got[0], want[0]):
            found = f"{shown}: the gradient for a differs from torch.autograd's{off_by(got[0], want[0])}"
            for wrong, hint in [(b * a ** (b - 1), "the chain rule: multiply the local derivative by the gradient that comes in"),
                                (upstream * b * a ** b, "d a^b/da = b a^(b-1): the power drops by one"),
                                (upstream * a ** (b - 1), "d a^b/da = b a^(b-1): the exponent comes down as a factor")]:
                if close(got[0], wrong, nan=True): raise Wrong(found, hint)
            raise Wrong(found, "d a^b/da = b a^(b-1), times grad")
        found = f"{shown}: the gradient for b differs from torch.autograd's{off_by(got[1], want[1])}"
        for wrong, hint in [(a ** b * a.log(), "the chain rule: multiply the local derivative by the gradient that comes in"),
                            (upstream * a ** b * b.log(), "d a^b/db = a^b ln a: the log of the base, not of the exponent"),
                            (upstream * b * a ** (b - 1) * a.log(), "d a^b/db = a^b ln a: the exponent does not come down here")]:
            if close(got[1], wrong, nan=True): raise Wrong(found, hint)
        raise Wrong(found, "d a^b/db = a^b ln a, times grad")
    # broadcasting in every direction, and inputs that need no gradient
    for case in range(2):
        s = lambda: int(torch.randint(2, 5, (1,), generator=g))
        n, k, m = s(), s(), s()
        for sa, sb in [((n, 1), (k,)), ((), (n, k)), ((n, 1, k), (m, 1)), ((k,), (n, k)), ((n, k), (n, k))]:
            a, b = positive(*sa), normal(*sb)
            for requires in [(True, True), (True, False), (False, True)]:
                shown = f"a of shape {sa}, b of shape {sb}" + {(True, True): '', (True, False): ', b a constant',
                                                               (False, True): ', a a constant'}[requires]
                args = [Tensor(x.clone(), requires_grad=True) if r else x.clone() for x, r in zip((a, b), requires)]
                out = Pow.apply(*args)
                returned = out._ctx.backward(torch.ones(out.shape, dtype=torch.float64))
                for x, r, gx in zip((a, b), requires, returned):
                    if r and gx is None:
                        raise Wrong(f"{shown}: backward returned None for an input that needs a gradient",
                                    "ctx.needs_input_grad says which inputs need a gradient, in the order of forward's arguments")
                    if r and torch.is_tensor(gx) and gx.shape != x.shape:
                        raise Wrong(f"{shown}: backward returned a gradient of shape {tuple(gx.shape)} for an input of shape {tuple(x.shape)}",
                                    "an input broadcast to the output's shape gets the sum of its copies' gradients: "
                                    "ctx.reduce_to_inputs(grad_a, grad_b) sums each back to its input's shape")
                data, ref, grads, refs, intact = run_both(lambda x, y: Pow.apply(x, y), lambda x, y: x ** y, [a, b], list(requires), Tensor, g)
                if not intact:
                    raise Wrong(f"{shown}: your backward changed the gradient it was given, in place",
                                "compute new tensors (grad * ...), never grad.mul_(...): the engine may hand one tensor to several ops")
                if not close(data, ref): raise Wrong(f"{shown}: forward's values differ from a ** b", "forward returns a ** b")
                for name, mine, theirs in zip('ab', grads, refs):
                    if theirs is not None and not close(mine, theirs):
                        raise Wrong(f"{shown}: the gradient for {name} differs from torch.autograd's",
                                    "it was right without broadcasting: sum each gradient back to its input's shape (ctx.reduce_to_inputs)")
    return "the same values and gradients as torch.autograd's a ** b on 30 fresh cases: broadcasting every way, constants on either side"
