# Reference solutions for the exercises of nbs/13_activations_batchnorm.ipynb.
# Each `# %% exercise ID` section replaces that exercise's starter cell (`run_notebook.py --solutions`).
# Try the exercise first: the check under it tells you what is off, without giving the answer away.

# %% exercise 13.1
cut = math.atanh(0.97)                                                  # |tanh(x)| > 0.97 exactly when |x| > cut
predictions = {
    'loss at step 0 of a model that gives all 27 characters the same probability': math.log(27),
    'the same for the 65 characters of Tiny Shakespeare (notebook 16)': math.log(65),
    'share of tanh outputs with |t| > 0.97 when the pre-activations are N(0, 1)': math.erfc(cut / 2 ** 0.5),
    'the same when the pre-activations are N(0, 3²), standard deviation 3': math.erfc(cut / 3 / 2 ** 0.5),
}

# %% exercise 13.2
def kaiming_tanh(fan_in, fan_out, generator=None):
    "A (fan_in, fan_out) weight for x @ W, drawn from N(0, std²) with std = (5/3) / sqrt(fan_in)."
    return torch.randn((fan_in, fan_out), generator=generator) * (5 / 3) / fan_in ** 0.5

# %% exercise 13.3
def fold_batchnorm(linear, bn):
    "(weight, bias) of one layer x @ weight + bias equal to bn(linear(x)) with bn in eval mode."
    scale = bn.weight.detach() / (bn.running_var + bn.eps).sqrt()      # one factor per output feature (column)
    bias = torch.zeros_like(bn.running_mean) if linear.bias is None else linear.bias.detach()
    return linear.weight.detach() * scale, (bias - bn.running_mean) * scale + bn.bias.detach()

# %% exercise 13.4
g = torch.Generator().manual_seed(2147483647)
my_params = init_fixed(g)
my_steps = pick(2_000, QUICK_ITERS)
def my_lr(step): return 0.2 if step < my_steps // 2 else 0.05         # start higher, then come down
train_lm(lambda X: mlp_lm_logits(my_params, X), my_params, Xtr, Ytr, my_steps, my_lr, generator=g)
