# Reference solutions for the exercises of nbs/02c_numpy_from_scratch.ipynb.
# Each `# %% exercise ID` section replaces that exercise's starter cell (`run_notebook.py --solutions`).
# Try the exercise first: the check under it tells you what is wrong without giving the answer away.

# %% exercise 02c.1
predictions = {
    'np.max(h, 0).shape, for h of shape (128, 64)': (64,),             # the largest of each column, over the batch
    'np.maximum(h, 0).shape, for h of shape (128, 64)': (128, 64),     # elementwise: the ReLU
    'dw1.shape, for x of shape (128, 784) and w1 of shape (784, 128)': (784, 128),   # w1's own shape
    'dz[0] for a batch of 4 whose row 0 has softmax [0.7, 0.2, 0.1] and label 0': [-0.075, 0.05, 0.025],   # ([.7,.2,.1] - [1,0,0]) / 4
    'how many times smaller (-onehot * lsm).mean() is than the NLL, with 10 classes': 10,   # N x 10 entries, N of them nonzero
    'how many times too large each step is with stale_bs = 4 and batches of 64': 16,        # 64 / 4
}

# %% exercise 02c.2
def loss_and_grads_bias(x, y, w1, b1, w2, b2):
    "The stream's network with a bias in each layer: mean NLL loss and the gradients of w1, b1, w2, b2."
    n = len(x)
    h = x @ w1 + b1                       # b1 (H,) broadcasts over the batch
    r = np.maximum(h, 0)
    z = r @ w2 + b2
    lsm = log_softmax(z)
    loss = -lsm[np.arange(n), y].mean()
    onehot = np.zeros_like(z); onehot[np.arange(n), y] = 1
    dz = (np.exp(lsm) - onehot) / n       # the 1/N of the mean is in dz ...
    dh = (dz @ w2.T) * (h > 0)            # ... and the ReLU passes gradient where h > 0
    return loss, x.T @ dh, dh.sum(0), r.T @ dz, dz.sum(0)   # ... so a bias, broadcast over the batch, sums it

# %% exercise 02c.3
def agrees_with_teacher(grads, x, y, w1, w2):
    "True when grads(x, y, w1, w2) gives PyTorch's loss and gradients for the stream's network, to float32 rounding."
    loss, dw1, dw2 = grads(x, y, w1, w2)
    t1, t2 = torch.tensor(w1, requires_grad=True), torch.tensor(w2, requires_grad=True)
    logits = (torch.from_numpy(x) @ t1).relu() @ t2        # the teacher, on our (in, out) weights: no transpose
    t_loss = nn.NLLLoss()(torch.log_softmax(logits, 1), torch.from_numpy(y))
    t_loss.backward()
    if not np.isclose(loss, t_loss.item(), rtol=1e-5, atol=1e-7): return False   # the loss too, not only the gradients
    for ours, theirs in [(dw1, t1.grad.numpy()), (dw2, t2.grad.numpy())]:
        if np.shape(ours) != theirs.shape: return False
        slack = 1e-5 * np.abs(theirs).max()              # absolute slack scaled to the gradient's size
        if not np.allclose(ours, theirs, rtol=1e-4, atol=slack): return False
    return True

# %% exercise 02c.4
# Two changes from earlier notebooks: normalised inputs (02) and Kaiming's init for the ReLU layer (02a, 02b), which let
# the learning rate be a usual one; with momentum and a cosine decay. The same network and step count as the stream's,
# trained on fit_batches; the peak learning rate is chosen on the validation split, never on the test set.
shift, scale = float(x_train[fit_rows].mean()), float(x_train[fit_rows].std())   # statistics of the images we train on

def train_normalised(peak_lr):
    rng = np.random.default_rng(0)
    w1 = (rng.standard_normal((784, 128)) * np.sqrt(2 / 784)).astype(np.float32)   # Kaiming: a ReLU follows
    w2 = (rng.standard_normal((128, 10)) * np.sqrt(1 / 128)).astype(np.float32)    # nothing follows but the softmax
    v1, v2 = np.zeros_like(w1), np.zeros_like(w2)
    for step, idx in enumerate(fit_batches):
        _, dw1, dw2 = loss_and_grads((x_train[idx] - shift) / scale, y_train[idx], w1, w2)
        step_lr = peak_lr * 0.5 * (1 + np.cos(np.pi * step / len(fit_batches)))      # cosine decay to 0
        v1 = 0.9 * v1 + dw1; v2 = 0.9 * v2 + dw2                                     # momentum
        w1 -= step_lr * v1; w2 -= step_lr * v2
    return {'w1': w1, 'w2': w2, 'shift': shift, 'scale': scale}

candidates = {peak_lr: train_normalised(peak_lr) for peak_lr in (0.01, 0.05)}
valid_accs = {peak_lr: accuracy((x_valid - shift) / scale, y_valid, net['w1'], net['w2']) for peak_lr, net in candidates.items()}
my_net = candidates[max(valid_accs, key=valid_accs.get)]
