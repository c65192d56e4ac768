# Reference solutions for the exercises of nbs/03_minibatch_training.ipynb.
# Each `# %% exercise ID` section replaces that exercise's starter cell (`run_notebook.py --solutions`).
# Try the exercise first: the check under it tells you what is wrong without giving the answer away.

# %% exercise 03.1
float32_exp = {
    'torch.tensor(88.).exp()': 'finite',     # e^88 = 1.7e38, just under float32's 3.4e38
    'torch.tensor(89.).exp()': 'inf',        # e^89 = 4.5e38 overflows
    'torch.tensor(-100.).exp()': 'finite',   # 3.8e-44: a subnormal, with few significant bits
    'torch.tensor(-104.).exp()': '0',        # below the smallest subnormal, 1.4e-45
}

# %% exercise 03.2
def my_log_softmax(x):
    "log softmax over the last axis, shifted by the row max so that nothing overflows."
    a = x.max(-1, keepdim=True).values
    return x - (a + (x - a).exp().sum(-1, keepdim=True).log())

# %% exercise 03.3
def my_cross_entropy(logits, targets):
    "Mean over the batch of minus the log-probability of each example's target."
    logp = my_log_softmax(logits)
    return -logp[range(len(targets)), targets].mean()

# %% exercise 03.4
def batch_indices(n, bs, shuffle=False, generator=None):
    "The index batches of one epoch over n items: bs at a time, the last one smaller; shuffled with `generator`."
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    return [order[i:i + bs] for i in range(0, n, bs)]

# %% exercise 03.5
set_seed()
challenger = MLP(m, nh, c)
lr_c, bs_c = 0.1, 32                        # the same rate, batches half as big: twice the steps in one epoch
for i in range(0, n, bs_c):
    xb, yb = x_train[i:i + bs_c], y_train[i:i + bs_c]
    loss = loss_func(challenger(xb), yb)
    loss.backward()
    with torch.no_grad():
        for l in challenger.layers:
            if hasattr(l, 'weight'):
                l.weight -= l.weight.grad * lr_c
                l.bias -= l.bias.grad * lr_c
                l.weight.grad.zero_()
                l.bias.grad.zero_()
