# Reference solutions for the exercises of nbs/02b_initializing.ipynb.
# Each `# %% exercise ID` section replaces that exercise's starter cell (`run_notebook.py --solutions`).
# Try the exercise first: the check under it tells you what is wrong without giving the answer away.

# %% exercise 02b.1
predictions = {
    'fan_out of nn.Linear(784, 256).weight': 256,                          # weight is (out, in): dimension 0
    'Xavier uniform bound b for nn.Linear(784, 256)': math.sqrt(6 / (784 + 256)),   # sqrt(3) x std
    'variance ratio per layer: Xavier, square layers, a ReLU after each': 0.5,      # n Var(w) = 1, the ReLU halves
    'variance ratio per layer: Kaiming (Var(w) = 2/n_in), square layers, no ReLU': 2,   # nothing to make up for
    'variance ratio of one layer: Xavier, nn.Linear(256, 64), no ReLU': 256 * 2 / (256 + 64),   # n_in Var(w) = 1.6
}

# %% exercise 02b.2
def relu_moments(sigma):
    "(mean, E[x^2], variance) of relu(z) for z ~ N(0, sigma^2)."
    mean = sigma / math.sqrt(2 * math.pi)      # the integral of z phi(z) over z > 0
    second = sigma ** 2 / 2                     # by symmetry, half of E[z^2]
    return mean, second, second - mean ** 2     # Var = E[x^2] - mean^2

# %% exercise 02b.3
def kaiming_fan_out_(w):
    "Fill w in place from N(0, 2 / fan_out): the gradient keeps its variance going back through a ReLU layer."
    with torch.no_grad():
        return w.normal_(0., math.sqrt(2 / fan_out(w)))   # fan_out: dimension 0 of (out, in, ...), times the kernel

# %% exercise 02b.4
def predicted_stds(widths, init, relu=True, x_std=1.):
    "The std of each linear layer's output in a bias-free stack of these widths, from the theory alone."
    var_w = {'default': lambda n_in, n_out: 1 / (3 * n_in),          # U(+-1/sqrt(n_in))
             'xavier': lambda n_in, n_out: 2 / (n_in + n_out),
             'kaiming': lambda n_in, n_out: 2 / n_in}[init]
    second_moment, stds = x_std ** 2, []                # E[x^2] of the input, zero-mean
    for n_in, n_out in zip(widths, widths[1:]):
        var_z = n_in * var_w(n_in, n_out) * second_moment
        stds.append(math.sqrt(var_z))
        second_moment = var_z / 2 if relu else var_z    # a ReLU keeps half of E[z^2], mean included
    return stds
