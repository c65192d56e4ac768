# Reference solutions for the exercises of nbs/15_wavenet.ipynb.
# Each `# %% exercise ID` section replaces that exercise's starter cell (`run_notebook.py --solutions`).
# Try the exercise first: the check under it tells you what is wrong without giving the answer away.

# %% exercise 15.1
# The tree: embedding 27 * 16 = 432; level 1: Linear(32, 96) without bias 3,072 + BatchNorm 2 * 96 = 192;
# levels 2 to 4: Linear(192, 96) 18,432 + 192 each; output Linear(96, 27) 2,592 + 27 bias.
# Flat: 432 + Linear(256, 96) 24,576 + 192 + 2,619.
size_predictions = {
    'parameters of hierarchical_lm(27, BatchNorm1d, n_embd=16, n_hidden=96, n_levels=4)': 432 + 3_264 + 3 * 18_624 + 2_619,
    'characters of context that tree reads': 2 ** 4,
    'parameters of flat_lm(27, 16, BatchNorm1d, n_embd=16, n_hidden=96)': 432 + 24_576 + 192 + 2_619,
}

# %% exercise 15.2
def flatten_consecutive(x, n):
    "(..., T, C) -> (..., T // n, n * C): each n neighbouring vectors side by side; (..., n * C) when one group is left."
    *lead, T, C = x.shape
    out = x.reshape(*lead, T // n, n * C)              # neighbours are already adjacent in memory: a view
    return out.squeeze(-2) if out.shape[-2] == 1 else out

# %% exercise 15.3
def causal_conv(x, weight, dilation):
    "(N, C_in, L) -> (N, C_out, L): tap i of `weight` (C_out, C_in, k) reads x[p - (k - 1 - i) * dilation], zeros before the start."
    k, L = weight.shape[-1], x.shape[-1]
    padded = torch.cat([x.new_zeros(*x.shape[:-1], (k - 1) * dilation), x], dim=-1)
    out = 0
    for i in range(k):
        shifted = padded[..., i * dilation: i * dilation + L]          # x[p - (k - 1 - i) * dilation] for every p
        out = out + weight[:, :, i] @ shifted                            # (C_out, C_in) @ (N, C_in, L)
    return out

# %% exercise 15.4
conv_predictions = {
    'dilations of the 4 convolutions, level 1 first': [1, 2, 4, 8],
    "'.' tokens to add on the left of '.' + name": 1 + 2 + 4 + 8,
    'level-2 nodes shared by the trees of positions j and j + 4': 3,     # j's end at j-12, j-8, j-4, j; j+4's at j-8, j-4, j, j+4
    'hidden nodes computed per prediction, window by window': 8 + 4 + 2 + 1,
    'hidden nodes computed per prediction, as convolutions over a long name': 4,
}
