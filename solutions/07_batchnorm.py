# Reference solutions for the exercises of nbs/07_batchnorm.ipynb.
# Each `# %% exercise ID` section replaces that exercise's starter cell (`run_notebook.py --solutions`).
# Try the exercise first: the check under it tells you what is wrong without giving the answer away.

# %% exercise 07.1
tiny_batches = {
    'nn.BatchNorm1d(4).train() on a (1, 4) batch': 'error',             # one value per channel: its variance is 0
    'nn.BatchNorm1d(4).eval() on a (1, 4) batch': (1, 4),               # eval uses the running statistics
    'nn.BatchNorm2d(4).train() on a (1, 4, 5, 5) batch': (1, 4, 5, 5),  # 25 values per channel: enough
    'nn.BatchNorm1d(4).train() on any (2, 4) batch: |y| of every output, to 2 decimals': 1.0,   # (a - b) / |a - b|
    'a fresh nn.BatchNorm1d(4) after one (8, 4) training batch: running_mean / the batch mean': 0.1,   # 0.9 * 0 + 0.1 * mean
}

# %% exercise 07.2
def batchnorm_forward(x, weight, bias, eps=1e-5):
    "BatchNorm2d in training mode: each channel normalised by its mean and biased variance over (N, H, W)."
    mean = x.mean((0, 2, 3), keepdim=True)                   # (1, C, 1, 1): one per channel
    var = x.var((0, 2, 3), keepdim=True, unbiased=False)     # biased: divided by m = N*H*W
    xhat = (x - mean) / (var + eps).sqrt()
    return xhat * weight.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)

# %% exercise 07.3
def update_running(running_mean, running_var, x, momentum=0.1):
    "(new running_mean, new running_var) after a training batch `x` of shape (N, C, ...), by PyTorch's conventions."
    dims = [0] + list(range(2, x.ndim))                      # every dim except the channels
    m = x.numel() // x.shape[1]                              # values per channel
    mean, var = x.mean(dims), x.var(dims, unbiased=False)
    new_mean = (1 - momentum) * running_mean + momentum * mean                # momentum weighs the *new* value
    new_var = (1 - momentum) * running_var + momentum * var * m / (m - 1)     # stored unbiased
    return new_mean, new_var

# %% exercise 07.4
def group_norm(x, num_groups, weight, bias, eps=1e-5):
    "GroupNorm of an (N, C, ...) batch: each sample's C channels in `num_groups` consecutive groups, each normalised."
    n, c = x.shape[:2]
    xg = x.reshape(n, num_groups, -1)                        # a group: C/G consecutive channels, every position
    mean, var = xg.mean(-1, keepdim=True), xg.var(-1, keepdim=True, unbiased=False)
    xhat = ((xg - mean) / (var + eps).sqrt()).reshape(x.shape)
    shape = (1, c) + (1,) * (x.ndim - 2)                     # the affine is per channel, not per group
    return xhat * weight.view(shape) + bias.view(shape)
