# Reference solutions for the exercises of nbs/10a_tensor_autograd.ipynb.
# Each `# %% exercise ID` section replaces that exercise's starter cell (`run_notebook.py --solutions`).
# Try the exercise first: the check under it tells you what is wrong without giving the answer away.

# %% exercise 10a.1
predictions = {
    'a (3, 1), b (4,): (a * b).sum().backward(); a.grad.shape': (3, 1),       # a gradient has its tensor's shape
    'a (3, 1), b (4,): (a * b).sum().backward(); b.grad.shape': (4,),
    'a (3, 1), b (4,): (a * b).sum().backward(); a.grad[0, 0]': 4.0,          # a[0, 0] meets the 4 elements of b
    'a (5,), x (2, 3, 5): (a + x).sum().backward(); a.grad[0]': 6.0,          # 2 * 3 copies, gradient 1 each
    'a (4, 3): a.mean().backward(); a.grad[0, 0]': 1 / 12,
    'w (3, 2), x (8, 3): (x @ w).sum().backward(); w.grad[0, 0]': 8.0,        # x.T @ ones: a sum over the 8 rows
}

# %% exercise 10a.2
def my_unbroadcast(grad, shape):
    "Sum `grad` over the dimensions along which a tensor of `shape` was broadcast; a tensor of `shape`."
    lead = grad.ndim - len(shape)                     # the dimensions broadcasting added on the left
    if lead: grad = grad.sum(tuple(range(lead)))      # (a sum over () would sum over everything)
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(stretched, keepdim=True) if stretched else grad

# %% exercise 10a.3
def tanh_forward(ctx, a):
    "tanh of the torch tensor `a`; save on ctx what tanh_backward needs."
    out = a.tanh()
    ctx.save_for_backward(out)                        # the local derivative is written in the output: 1 - t²
    return out

def tanh_backward(ctx, grad):
    "The gradient for the input, from grad = d loss / d output, in the form Function.backward returns it."
    out, = ctx.saved
    return (grad * (1 - out ** 2),)

# %% exercise 10a.4
def pow_forward(ctx, a, b):
    "a ** b elementwise (a > 0), with broadcasting; save on ctx what pow_backward needs."
    out = a ** b
    ctx.save_for_backward(a, b, out)
    return out

def pow_backward(ctx, grad):
    "(d loss / d a, d loss / d b), each in its input's shape."
    a, b, out = ctx.saved
    need_a, need_b = ctx.needs_input_grad
    return ctx.reduce_to_inputs(grad * b * a ** (b - 1) if need_a else None,
                                grad * out * a.log() if need_b else None)
