# Reference solutions for the exercises of nbs/06_cnn_hooks_init.ipynb.
# Each `# %% exercise ID` section replaces that exercise's starter cell (`run_notebook.py --solutions`).
# Try the exercise first: the check under it tells you what is wrong without giving the answer away.

# %% exercise 06.1
predicted_shapes = {
    'conv(1, 8, ks=5)(torch.zeros(64, 1, 28, 28)).shape': (64, 8, 14, 14),              # padded: 28 / 2
    'nn.Conv2d(1, 8, 5, stride=2)(torch.zeros(64, 1, 28, 28)).shape': (64, 8, 12, 12),  # 24 positions, every other one
    'get_cnn_model()[:3](torch.zeros(64, 1, 28, 28)).shape': (64, 32, 4, 4),            # 28 -> 14 -> 7 -> 4 (7 rounds up)
    'get_cnn_model()(torch.zeros(64, 1, 40, 40)).shape': (64, 40),                      # 40 -> 20 -> 10 -> 5 -> 3 -> 2: 10 x 2 x 2
    'sum(p.numel() for p in conv(8, 16).parameters())': 1168,                           # 16 x 8 x 3 x 3 weights + 16 biases
}

# %% exercise 06.2
predicted_values = {
    'GeneralRelu(leak=0.1, sub=0.4, maxv=6.)(torch.tensor([-20., 0.2, 8.]))': [-2.4, -0.2, 6.0],   # leak, sub, then the cap
    'GeneralRelu(leak=0.1)(torch.randn(1_000_000)).mean()': 0.9 / math.sqrt(2 * math.pi),         # (1 - leak) E[max(x, 0)]
    'init_cnn(nn.Conv2d(32, 64, 3)).weight.std()': math.sqrt(2 / (32 * 3 * 3)),                   # fan_in = 288
    'init_cnn(nn.Conv2d(32, 64, 3), leak=1.).weight.std()': math.sqrt(1 / (32 * 3 * 3)),          # gain sqrt(2 / (1 + 1))
    'nn.Conv2d(32, 64, 3).weight.std()': 1 / math.sqrt(3 * 32 * 3 * 3),                           # uniform on +-1/sqrt(fan_in)
}

# %% exercise 06.3
def record_dead_channels(hook, mod, inp, outp):
    "Append to `hook.dead` the share of channels at the floor for every example and position of the batch; training forwards only."
    if not mod.training: return                       # evaluation batches would mix two regimes, as in append_stats
    if not hasattr(hook, 'dead'): hook.dead = []
    # The input decides it for every kind: ReLU outputs 0 there, GeneralRelu leak*x - sub <= -sub.
    dead_side = inp[0] <= 0
    per_channel = dead_side.transpose(0, 1).reshape(dead_side.shape[1], -1).all(1)   # channel first, then all the rest
    hook.dead.append(per_channel.float().mean().item())

# %% exercise 06.4
def conv2d_backward(x, weight, grad_out, stride=1, padding=0):
    "The gradients of F.conv2d(x, weight, bias, stride, padding) for the upstream `grad_out`: (grad_x, grad_weight, grad_bias)."
    n, _, h, w = x.shape
    co, _, kh, kw = weight.shape
    cols = F.unfold(x, (kh, kw), padding=padding, stride=stride)   # (n, ci*kh*kw, L): the forward's columns
    g = grad_out.reshape(n, co, -1)                                  # (n, co, L): one column per output position
    grad_bias = g.sum((0, 2))                                        # the bias was added at every position of every example
    grad_weight = (g @ cols.transpose(1, 2)).sum(0).view_as(weight) # as for a linear layer, per example, then added up
    grad_cols = weight.view(co, -1).t() @ g                          # the backward multiplies by the transpose
    grad_x = F.fold(grad_cols, (h, w), (kh, kw), padding=padding, stride=stride)   # columns back to their windows, overlaps added
    return grad_x, grad_weight, grad_bias
