# Reference solutions for the exercises of nbs/02a_why_sqrt5.ipynb.
# Each `# %% exercise ID` section replaces that exercise's starter cell (`run_notebook.py --solutions`).
# Try the exercise first: the check under it tells you what is wrong without giving the answer away.

# %% exercise 02a.1
predictions = {
    'fan_in of nn.Conv2d(16, 32, 3).weight': 16 * 3 * 3,                  # in_channels x kh x kw
    'largest |w| a fresh nn.Linear(400, 10) can have': 1 / math.sqrt(400),   # a = sqrt(5): the bound is 1/sqrt(fan_in)
    'std of the weights of a fresh nn.Linear(400, 10)': 1 / math.sqrt(3 * 400),   # U(-b, b) has std b / sqrt(3)
    'std after a default-init layer + ReLU block, over the std before': 1 / math.sqrt(6),   # n Var(w) = 1/3, ReLU 1/2
    'Var(w) of Kaiming for ReLU, over Var(w) of the default': 6,           # (2 / n) / (1 / (3 n))
}

# %% exercise 02a.2
def default_init_(layer):
    "Re-initialise an nn.Linear or nn.Conv* in place, as PyTorch does when it makes one: the weight, then the bias."
    torch.nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5))   # bound 1/sqrt(fan_in), as derived above
    if layer.bias is not None:
        bound = 1 / math.sqrt(fan_in(layer.weight))                 # the same bound, with no gain
        torch.nn.init.uniform_(layer.bias, -bound, bound)           # drawn after the weight: same seed, same numbers

# %% exercise 02a.3
def block_std_factor(weight, slope):
    "How much a layer with this weight, followed by a leaky ReLU of negative slope `slope`, multiplies the rms of its input."
    second_moment_kept = (1 + slope ** 2) / 2          # a leaky ReLU keeps the positive half, and slope^2 of the other
    return math.sqrt(fan_in(weight) * weight.pow(2).mean().item() * second_moment_kept)

# %% exercise 02a.4
def init_for_activations_(layers):
    "Kaiming-uniform init for each Linear/Conv in `layers`, matched to the activation that follows it; zero biases."
    for i, layer in enumerate(layers):
        if not isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d)): continue
        after = layers[i + 1] if i + 1 < len(layers) else None
        if isinstance(after, nn.LeakyReLU): a = after.negative_slope
        elif isinstance(after, nn.ReLU): a = 0.
        else: a = 1.                        # no activation: a 'leaky ReLU' of slope 1 is the identity, gain 1
        torch.nn.init.kaiming_uniform_(layer.weight, a=a)
        if layer.bias is not None: torch.nn.init.zeros_(layer.bias)
