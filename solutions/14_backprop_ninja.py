# Reference solutions for the exercises of nbs/14_backprop_ninja.ipynb.
# Each `# %% exercise ID` section replaces that exercise's starter cell (`run_notebook.py --solutions`).
# Try the exercise first: the check under it tells you which gradients are right, without giving them away.
# Notation: d.x is dloss/dx; f.x is the forward value of x.

# %% exercise 14.1
def backward_cross_entropy(f, d, Yb):
    "loss -> logits, in the steps of the forward pass; fills in `d`."
    n = len(Yb)
    d.logprobs = torch.zeros_like(f.logprobs)
    d.logprobs[range(n), Yb] = -1.0 / n                                 # loss = -mean of the picked log-probs
    d.probs = (1.0 / f.probs) * d.logprobs                              # d log x = 1/x
    d.counts_sum_inv = (f.counts * d.probs).sum(1, keepdim=True)        # broadcast over the row: sum it back
    d.counts = f.counts_sum_inv * d.probs                               # first use of counts
    d.counts_sum = -f.counts_sum ** -2 * d.counts_sum_inv               # d x^-1 = -x^-2
    d.counts = d.counts + torch.ones_like(f.counts) * d.counts_sum      # second use of counts, through the sum
    d.norm_logits = f.counts * d.counts                                 # d exp x = exp x
    d.logit_maxes = -d.norm_logits.sum(1, keepdim=True)                 # broadcast, with a minus sign
    d.logits = d.norm_logits.clone()                                    # first path
    d.logits = d.logits + F.one_hot(f.logits.max(1).indices, num_classes=f.logits.shape[1]) * d.logit_maxes   # through the max

# %% exercise 14.2
def backward_layer2(f, d):
    "logits -> bnraw: the output layer, tanh and BatchNorm's gain and bias; fills in `d`."
    d.h = d.logits @ f.W2.T
    d.W2 = f.h.T @ d.logits
    d.b2 = d.logits.sum(0)
    d.hpreact = (1.0 - f.h ** 2) * d.h                                  # tanh' = 1 - tanh^2, from the output
    d.bngain = (f.bnraw * d.hpreact).sum(0, keepdim=True)
    d.bnraw = f.bngain * d.hpreact
    d.bnbias = d.hpreact.sum(0, keepdim=True)

# %% exercise 14.3
def backward_batchnorm(f, d, eps=1e-5):
    "bnraw -> hprebn, through mean, difference, square, variance and inverse square root; fills in `d`."
    n = f.hprebn.shape[0]
    d.bndiff = f.bnvar_inv * d.bnraw
    d.bnvar_inv = (f.bndiff * d.bnraw).sum(0, keepdim=True)
    d.bnvar = (-0.5 * (f.bnvar + eps) ** -1.5) * d.bnvar_inv
    d.bndiff2 = 1.0 / (n - 1) * torch.ones_like(f.bndiff2) * d.bnvar    # Bessel: the forward divided by n - 1
    d.bndiff = d.bndiff + 2 * f.bndiff * d.bndiff2                      # second use of bndiff
    d.hprebn = d.bndiff.clone()
    d.bnmeani = -d.bndiff.sum(0, keepdim=True)
    d.hprebn = d.hprebn + 1.0 / n * torch.ones_like(f.hprebn) * d.bnmeani   # second use of hprebn, through the mean

# %% exercise 14.4
def backward_layer1(f, d, Xb):
    "hprebn -> C: the first layer, the flattening and the embedding lookup; fills in `d`."
    d.embcat = d.hprebn @ f.W1.T
    d.W1 = f.embcat.T @ d.hprebn
    d.b1 = d.hprebn.sum(0)
    d.emb = d.embcat.view(f.emb.shape)
    d.C = torch.zeros_like(f.C).index_add_(0, Xb.view(-1), d.emb.view(-1, f.C.shape[1]))   # repeated tokens add up

# %% exercise 14.5
def cross_entropy_smoothed_backward(logits, Y, smoothing):
    "d F.cross_entropy(logits, Y, label_smoothing=smoothing) / d logits: softmax minus the smoothed target, over n."
    n, classes = logits.shape
    target = torch.full_like(logits, smoothing / classes)               # eps / classes on every class ...
    target[torch.arange(n), Y] += 1 - smoothing                         # ... and 1 - eps more on the true one
    return (F.softmax(logits, 1) - target) / n

# %% exercise 14.6
def layernorm_backward(dout, gain, var_inv, xhat):
    "dloss/dx for y = gain * xhat + bias, xhat = (x - x.mean(1)) * var_inv with the biased variance over the features."
    dxhat = dout * gain                                                 # the gain varies along the normalised axis
    dim = dout.shape[1]
    return var_inv / dim * (dim * dxhat - dxhat.sum(1, keepdim=True) - xhat * (dxhat * xhat).sum(1, keepdim=True))

# %% exercise 14.7
g = torch.Generator().manual_seed(2147483647)
my_params = init_ninja_params(vocab_size, n_embd=10, n_hidden=200, block_size=block_size, generator=g)
my_steps = pick(20_000, QUICK_ITERS)
for i in range(my_steps):                                               # the notebook's run, with its decay moved
    ix = torch.randint(0, len(Xtr), (32,), generator=g)                 # into the budget: 0.1, then 0.01 halfway
    manual_step(my_params, Xtr[ix], Ytr[ix], 0.1 if i < my_steps // 2 else 0.01)
