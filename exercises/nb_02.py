"Checks for the exercises of 02_fully_connected: gradient shapes, finite differences, the weight gradient as outer products, a layer's backward."
import torch

from exercises import NotAttempted, Wrong, check_predictions, code_of, exercise

# 02.1: the shapes of the gradients of out = lin(x, w, b) and of the loss mse(out, y)
GRAD_SHAPES = {'x.g': (64, 784), 'w.g': (784, 50), 'b.g': (50,), 'out.g (for mse of a (64, 1) output)': (64, 1)}


@exercise('02.1', 'predict the shapes of the gradients', kind='predict')
def check_grad_shapes(answer):
    x, w, b = torch.randn(64, 784, requires_grad=True), torch.randn(784, 50, requires_grad=True), torch.randn(50, requires_grad=True)
    (x @ w + b).sum().backward()
    out = torch.randn(64, 1, requires_grad=True)
    (out.squeeze(-1) - torch.randn(64)).pow(2).mean().backward()
    truth = dict(zip(GRAD_SHAPES, (x.grad.shape, w.grad.shape, b.grad.shape, out.grad.shape)))
    expected = {k: (lambda v, t=tuple(t): isinstance(v, (tuple, list, torch.Size)) and tuple(v) == t) for k, t in truth.items()}
    hints = {'x.g': "a gradient has the shape of the thing it is the gradient of",
             'w.g': "the weights' gradient has the weights' shape, (n_in, n_out)",
             'b.g': "the bias is one number per output unit, broadcast over the batch",
             'out.g (for mse of a (64, 1) output)': "mse_grad stores the gradient in the output's own shape, keeping its unit axis"}
    return check_predictions(answer, expected, hints, "the gradient's shape")


def smooth_functions(g):
    "Fresh smooth scalar functions of a tensor, with random coefficients: (description, f, shape)."
    a, b = torch.randn(3, 4, generator=g, dtype=torch.float64), torch.randn(5, generator=g, dtype=torch.float64)
    c = torch.randn(2, 3, 2, generator=g, dtype=torch.float64)
    return [('sum(sin(x) * a)', lambda x: (x.sin() * a).sum(), (3, 4)),
            ('sum(exp(x / 3) * b) + sum(x^3)', lambda x: (torch.exp(x / 3) * b).sum() + (x ** 3).sum(), (5,)),
            ('sum(tanh(x * c))^2', lambda x: torch.tanh(x * c).sum() ** 2, (2, 3, 2))]


@exercise('02.2', 'numeric_grad: central finite differences')
def check_numeric_grad(numeric_grad):
    g = torch.Generator().manual_seed(2)
    for name, f, shape in smooth_functions(g):
        x = torch.randn(shape, generator=g, dtype=torch.float64)
        before = x.clone()
        got = numeric_grad(f, x, 1e-4)
        if got is Ellipsis or got is None: raise NotAttempted()
        if not torch.equal(x, before):
            raise Wrong(f"f = {name}: numeric_grad changed x", "put each entry back after nudging it (or nudge a copy)")
        xr = x.clone().requires_grad_()
        f(xr).backward()
        if not torch.is_tensor(got) or tuple(got.shape) != shape:
            raise Wrong(f"f = {name} at a random x of shape {shape}: came back shape {tuple(getattr(got, 'shape', ()))}",
                        "one partial derivative per entry of x: the gradient has x's shape")
        err = (got - xr.grad).abs().max().item()
        if err <= 1e-6: continue
        forward = one_sided(f, x, 1e-4)
        if torch.allclose(got, forward, rtol=1e-9, atol=1e-12):
            raise Wrong(f"f = {name}: off from autograd by {err:.1e}, the error of a one-sided difference",
                        "(f(x + h) - f(x)) / h is only first-order accurate; the central difference (f(x + h) - f(x - h)) / 2h "
                        "cancels the second-order term")
        raise Wrong(f"f = {name} at a random x of shape {shape}: off from autograd by {err:.1e}",
                    "nudge one entry at a time, by +h and -h, and divide the difference by 2h")
    return ("within 1e-6 of autograd on 3 random smooth functions, x left as it was. Autograd costs about one forward and "
            "one backward pass; this costs two forward passes per entry of x: a check, never a way to train")


def one_sided(f, x, h):
    out = torch.zeros_like(x)
    for i in range(x.numel()):
        xp = x.clone(); xp.view(-1)[i] += h
        out.view(-1)[i] = (f(xp) - f(x)) / h
    return out


@exercise('02.3', 'the weight gradient as a sum of per-sample outer products')
def check_outer_products(weight_grad):
    code = code_of(weight_grad)
    for banned in ('@', 'matmul', 'einsum', '.mm(', '.t()', '.T'):
        if banned in code: raise Wrong(f"your function uses `{banned}`", "build the outer products by broadcasting, then sum them")
    g = torch.Generator().manual_seed(3)
    for n, n_in, n_out in [(1, 3, 2), (5, 4, 1), (7, 2, 6), (64, 10, 5)]:
        inp, out_g = torch.randn(n, n_in, generator=g, dtype=torch.float64), torch.randn(n, n_out, generator=g, dtype=torch.float64)
        got = weight_grad(inp, out_g)
        if got is Ellipsis or got is None: raise NotAttempted()
        want = inp.T @ out_g
        shown = f"inp ({n}, {n_in}), out.g ({n}, {n_out})"
        if not torch.is_tensor(got) or tuple(got.shape) != (n_in, n_out):
            raise Wrong(f"{shown}: came back shape {tuple(getattr(got, 'shape', ()))}; expected ({n_in}, {n_out}), the weights' shape",
                        "sample i contributes inp[i] (a column, n_in) times out.g[i] (a row, n_out)")
        if torch.allclose(got, want): continue
        if torch.allclose(got, want / n): raise Wrong(f"{shown}: the mean of the outer products",
                                                      "a sum over the samples: the 1/N is already inside out.g (mse_grad divided by N)")
        raise Wrong(f"{shown}: the right shape, the wrong values",
                    "inp[:, :, None] * out_g[:, None, :] is one outer product per sample; sum them over the samples")
    return "equal to inp.t() @ out.g on 4 shapes: the matrix product is this sum, done by BLAS without building the outer products"


@exercise('02.4', "a Sigmoid layer's backward pass")
def check_sigmoid(Sigmoid):
    g = torch.Generator().manual_seed(4)
    for shape in [(4, 3), (16, 1), (2, 7)]:
        x = (torch.randn(shape, generator=g, dtype=torch.float64) * 3)
        layer = Sigmoid()
        out = layer(x)
        if out is Ellipsis or out is None: raise NotAttempted()
        s = 1 / (1 + torch.exp(-x))
        if not torch.is_tensor(out) or out.shape != x.shape or not torch.allclose(out, s):
            raise Wrong(f"forward on a random {shape} input: not 1 / (1 + exp(-x))")
        upstream = torch.randn(shape, generator=g, dtype=torch.float64)
        out.g = upstream
        layer.backward()
        if not torch.is_tensor(getattr(x, 'g', None)):
            raise Wrong(f"after backward() on a {shape} input, inp.g is not set", "bwd stores the input's gradient in inp.g")
        xr = x.clone().requires_grad_()
        (torch.sigmoid(xr) * upstream).sum().backward()
        if torch.allclose(x.g, xr.grad): continue
        if torch.allclose(x.g, s * (1 - s)): raise Wrong(f"{shape}: the local derivative alone", "multiply by out.g, the gradient arriving from above (the chain rule)")
        if torch.allclose(x.g, s * (1 - x) * upstream): raise Wrong(f"{shape}: sigmoid(x) * (1 - x) * out.g",
                                                                    "the derivative is s (1 - s) with s the *output*, which bwd receives as `out`")
        raise Wrong(f"{shape}: inp.g differs from autograd's by {(x.g - xr.grad).abs().max().item():.2g}",
                    "d sigmoid / dx = sigmoid(x) (1 - sigmoid(x)): written with the output, no exp is needed")
    return "forward and backward equal torch.sigmoid and autograd on 3 random inputs"
