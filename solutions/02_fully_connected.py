# Reference solutions for the exercises of nbs/02_fully_connected.ipynb.
# Each `# %% exercise ID` section replaces that exercise's starter cell (`run_notebook.py --solutions`).
# Try the exercise first: the check under it tells you what is wrong without giving the answer away.

# %% exercise 02.1
grad_shapes = {
    'x.g': (64, 784),                                  # every gradient has the shape of its tensor
    'w.g': (784, 50),
    'b.g': (50,),
    'out.g (for mse of a (64, 1) output)': (64, 1),    # mse_grad keeps the output's unit axis
}

# %% exercise 02.2
def numeric_grad(f, x, h=1e-4):
    "d f / d x by central differences, one entry of x at a time; x is left as it was."
    grad = torch.zeros_like(x)
    for i in range(x.numel()):
        up, down = x.clone(), x.clone()                # nudge copies, never x itself
        up.view(-1)[i] += h
        down.view(-1)[i] -= h
        grad.view(-1)[i] = (f(up) - f(down)) / (2 * h)   # the error is O(h^2), not O(h)
    return grad

# %% exercise 02.3
def weight_grad(inp, out_g):
    "dL/dw for out = inp @ w + b: the sum over the samples of the outer product inp[i] (column) x out_g[i] (row)."
    return (inp[:, :, None] * out_g[:, None, :]).sum(0)

# %% exercise 02.4
class Sigmoid(Module):
    "sigmoid(x) = 1 / (1 + exp(-x)), with its backward pass."
    def forward(self, inp): return 1 / (1 + torch.exp(-inp))
    def bwd(self, out, inp): inp.g = out * (1 - out) * out.g   # the derivative, written with the output
