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
# the learning rate be a usual one; with momentum and a cosine decay. The same batches, network and step count as the stream's.
shift, scale = float(x_train.mean()), float(x_train.std())
rng = np.random.default_rng(0)
my_w1 = (rng.standard_normal((784, 128)) * np.sqrt(2 / 784)).astype(np.float32)   # Kaiming: a ReLU follows
my_w2 = (rng.standard_normal((128, 10)) * np.sqrt(1 / 128)).astype(np.float32)    # nothing follows but the softmax
v1, v2 = np.zeros_like(my_w1), np.zeros_like(my_w2)
for step, idx in enumerate(batches):
    _, dw1, dw2 = loss_and_grads((x_train[idx] - shift) / scale, y_train[idx], my_w1, my_w2)
    step_lr = 0.05 * 0.5 * (1 + np.cos(np.pi * step / len(batches)))                # cosine decay to 0
    v1 = 0.9 * v1 + dw1; v2 = 0.9 * v2 + dw2                                        # momentum
    my_w1 -= step_lr * v1; my_w2 -= step_lr * v2
my_net = {'w1': my_w1, 'w2': my_w2, 'shift': shift, 'scale': scale}
