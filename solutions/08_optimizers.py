# Reference solutions for the exercises of nbs/08_optimizers.ipynb.
# Each `# %% exercise ID` section replaces that exercise's starter cell (`run_notebook.py --solutions`).
# Try the exercise first: the check under it tells you what is wrong without giving the answer away.

# %% exercise 08.1
predicted_steps = {
    # b after t steps is 1 + 0.9 + ... + 0.9^(t-1) = (1 - 0.9^t) / 0.1; the step is lr * b
    'SGD momentum (lr 0.1, mom 0.9), gradient always 1: the size of step 100': 0.1 * (1 - 0.9 ** 100) / (1 - 0.9),   # ~1.0
    'the same: the first step whose size is at least 90% of the limit lr / (1 - mom)': 22,    # 0.9^22 = 0.098 <= 0.1 < 0.9^21
    # the damped average of a constant tends to the constant: no 1 / (1 - mom) gain
    'the 2019 damped momentum (lr 0.1, mom 0.9), gradient always 1: the size of step 100': 0.1 * (1 - 0.9 ** 100),
    # bias correction makes m_hat = g and v_hat = g^2 exactly, so the step is lr * g / |g|
    'Adam (lr 0.01), gradient always 5: the size of step 10': 0.01,
    # the L2 gradient wd * p = 0.01 is normalised away: Adam's first step moves it by lr
    'Adam + L2 (lr 1e-3, wd 1e-2), p = 1 with gradient 0: how far step 1 moves p': 1e-3,
    # p * (1 - lr * wd) moves it by lr * wd * p; Adam adds nothing for a zero gradient
    'AdamW (lr 1e-3, wd 1e-2), p = 1 with gradient 0: how far step 1 moves p': 1e-5,
}

# %% exercise 08.2
def nesterov_step(p, state, grad, lr, mom, **hypers):
    "torch.optim.SGD(momentum=mom, nesterov=True): b <- mom*b + grad; p <- p - lr*(grad + mom*b)."
    if 'mom_buf' not in state: state['mom_buf'] = grad.clone()   # a copy: p.grad may be overwritten in place later
    else: state['mom_buf'].mul_(mom).add_(grad)
    p.add_(grad.add(state['mom_buf'], alpha=mom), alpha=-lr)     # grad.add makes a new tensor: p.grad stays as it was
nesterov_step.defaults = dict(mom=0.9)

# %% exercise 08.3
def rmsprop_step(p, state, grad, lr, alpha, eps, **hypers):
    "torch.optim.RMSprop: v <- alpha*v + (1 - alpha)*grad^2 (v from 0, no bias correction); p <- p - lr*grad/(sqrt(v) + eps)."
    if 'square_avg' not in state: state['square_avg'] = torch.zeros_like(p)
    v = state['square_avg'].mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
    p.addcdiv_(grad, v.sqrt().add_(eps), value=-lr)              # eps outside the root, as torch does
rmsprop_step.defaults = dict(alpha=0.99, eps=1e-8)

# %% exercise 08.4
# 100 steps is a short run, so the question is how far each step may go. Adam's default lr (1e-3) is cautious
# for so few steps; three times that still trains smoothly and reaches a lower loss (twice or five times
# it does less well: try a few).
my_opt_func = partial(adam, lr=3e-3)
