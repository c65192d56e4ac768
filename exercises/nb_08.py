"""Checks for the exercises of 08_optimizers: step sizes worked out by hand (08.1), two steppers checked step for
step against torch.optim (08.2 Nesterov momentum, 08.3 RMSProp), and a challenge: the best 100 steps (08.4)."""
import math

import torch
import torch.nn.functional as F
from torch import nn

from exercises import Wrong, check_predictions, exercise


# 08.1: step sizes, simulated with the notebook's own optimisers on one float64 parameter
def step_sizes(make_opt, grad, steps, p0=1.0):
    "How far each of `steps` steps moves a parameter that starts at `p0` and always has gradient `grad`."
    p = nn.Parameter(torch.tensor([p0], dtype=torch.float64))
    opt, sizes = make_opt([p]), []
    for _ in range(steps):
        before = p.item()
        p.grad = torch.tensor([grad], dtype=torch.float64)
        opt.step()
        sizes.append(abs(p.item() - before))
    return sizes


def damped_momentum_step(p, state, grad, lr, mom, **hypers):
    "The 2019 notebook's momentum: b <- mom*b + (1 - mom)*grad, from b = 0."
    state.setdefault('mom_buf', torch.zeros_like(p)).lerp_(grad, 1 - mom)
    p.add_(state['mom_buf'], alpha=-lr)


STEP_QUESTIONS = ('SGD momentum (lr 0.1, mom 0.9), gradient always 1: the size of step 100',
                  'the same: the first step whose size is at least 90% of the limit lr / (1 - mom)',
                  'the 2019 damped momentum (lr 0.1, mom 0.9), gradient always 1: the size of step 100',
                  'Adam (lr 0.01), gradient always 5: the size of step 10',
                  'Adam + L2 (lr 1e-3, wd 1e-2), p = 1 with gradient 0: how far step 1 moves p',
                  'AdamW (lr 1e-3, wd 1e-2), p = 1 with gradient 0: how far step 1 moves p')


def step_truths():
    from exp.nb_08 import StepperOptimizer, adam, adamw, sgd_momentum
    q = STEP_QUESTIONS
    momentum = step_sizes(lambda ps: sgd_momentum(ps, lr=0.1, mom=0.9), 1.0, 100)
    return {q[0]: momentum[-1],
            q[1]: next(t for t, size in enumerate(momentum, 1) if size >= 0.9 * 0.1 / (1 - 0.9)),
            q[2]: step_sizes(lambda ps: StepperOptimizer(ps, [damped_momentum_step], lr=0.1, mom=0.9), 1.0, 100)[-1],
            q[3]: step_sizes(lambda ps: adam(ps, lr=0.01), 5.0, 10)[-1],
            q[4]: step_sizes(lambda ps: adam(ps, lr=1e-3, wd=1e-2), 0.0, 1)[-1],
            q[5]: step_sizes(lambda ps: adamw(ps, lr=1e-3, wd=1e-2), 0.0, 1)[-1]}


def near(value, truth):
    if isinstance(value, bool): return False
    try: value = float(value)
    except (TypeError, ValueError): return False
    return value == truth if isinstance(truth, int) else math.isclose(value, truth, rel_tol=0.02)


@exercise('08.1', 'predict step sizes: momentum, Adam, the two weight decays', kind='predict')
def check_step_sizes(answer):
    q = STEP_QUESTIONS
    expected = {k: (lambda v, t=t: near(v, t)) for k, t in step_truths().items()}
    hints = {q[0]: "b <- 0.9 b + 1 piles up 1 + 0.9 + 0.81 + ...: a geometric series, and the step is lr times b",
             q[1]: "after t steps b = 1 + 0.9 + ... + 0.9^(t-1) = (1 - 0.9^t) / (1 - 0.9): for which t is 0.9^t at most 0.1?",
             q[2]: "the damped average mom*b + (1 - mom)*g of a constant g tends to g itself, not to g / (1 - mom)",
             q[3]: "with a constant gradient the bias-corrected averages are exactly g and g^2, at every step",
             q[4]: "L2 turns the gradient into 0 + wd*p, and Adam's first step moves a parameter by about lr, whatever its gradient's size",
             q[5]: "decoupled decay multiplies p by (1 - lr*wd) and then Adam steps on the gradient, which is 0"}
    return check_predictions(answer, expected, hints, "what the notebook's optimisers do (within 2%; a step number exactly)")


# 08.2 and 08.3: a stepper against its torch.optim twin, step for step, on fresh random parameters and gradients
def fresh_case(seed, hypers):
    "Two or three float64 parameters of random shapes and 6 steps of random gradients, some tiny (so that eps matters)."
    g = torch.Generator().manual_seed(seed)
    shapes = [tuple(int(torch.randint(1, 5, (1,), generator=g)) for _ in range(int(torch.randint(1, 4, (1,), generator=g))))
              for _ in range(int(torch.randint(2, 4, (1,), generator=g)))]
    start = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
    grads = [[torch.randn(s, generator=g, dtype=torch.float64) * 10 ** (3 * torch.rand(s, generator=g, dtype=torch.float64) - 3)
              for s in shapes] for _ in range(6)]
    return dict(start=start, grads=grads, hypers=hypers, shapes=shapes)


def trajectory(case, make_opt, in_place=False):
    """The parameters after each step, and whether a step changed p.grad. `in_place` writes each new gradient into
    the same p.grad tensor (as backward does after `zero_grad(set_to_none=False)`) instead of a fresh one."""
    params = [nn.Parameter(s.clone()) for s in case['start']]
    opt, path, touched = make_opt(params), [], False
    for grads in case['grads']:
        for p, grad in zip(params, grads):
            if in_place and p.grad is not None: p.grad.copy_(grad)
            else: p.grad = grad.clone()
        opt.step()
        touched = touched or any(not torch.equal(p.grad, grad) for p, grad in zip(params, grads))
        path.append([p.detach().clone() for p in params])
    return path, touched


def first_difference(path, reference):
    "(step, max difference) where `path` first leaves `reference`, or None when they agree."
    for t, (ours, theirs) in enumerate(zip(path, reference), 1):
        diff = max((a - b).abs().max().item() for a, b in zip(ours, theirs))
        if not math.isfinite(diff) or not all(torch.allclose(a, b, rtol=1e-9, atol=1e-12) for a, b in zip(ours, theirs)):
            return t, diff
    return None


def check_stepper(stepper, cases, torch_opt, describe, mistakes, fallback):
    "Run `stepper` (after l2_reg) on each case; compare with torch.optim; name the usual mistake its path matches."
    from exp.nb_08 import StepperOptimizer, l2_reg
    def ours(hypers): return lambda ps: StepperOptimizer(ps, [l2_reg, stepper], **hypers)
    for seed, hypers in cases:
        case = fresh_case(seed, hypers)
        shown = f"parameters of shapes {case['shapes']}, {describe(hypers)}"
        reference, _ = trajectory(case, lambda ps: torch_opt(ps, hypers))
        path, touched = trajectory(case, ours(hypers))
        if touched:
            raise Wrong(f"{shown}: after your step, p.grad was no longer the gradient it had been given",
                        "never change `grad` in place (it may be p.grad itself): build a new tensor (`grad.add(...)`, "
                        "`grad * ...`) or work on a copy")
        found = first_difference(path, reference)
        if found is None:
            in_place, _ = trajectory(case, ours(hypers), in_place=True)
            found = first_difference(in_place, reference)
            if found is None: continue
            raise Wrong(f"{shown}: right while every step brings a fresh gradient tensor, but when backward writes the new "
                        f"gradient into the same p.grad tensor, your parameters leave torch.optim's at step {found[0]}",
                        "a state tensor made from the gradient must be a copy (`grad.clone()`): p.grad is reused and overwritten")
        message = (f"{shown}: your parameters leave torch.optim's at step {found[0]} of 6 "
                   f"(largest difference {found[1]:.3g} there)")
        for hint, mistaken in mistakes:
            mistaken_path, _ = trajectory(case, lambda ps, m=mistaken: StepperOptimizer(ps, [l2_reg, m], **hypers))
            if first_difference(path, mistaken_path) is None: raise Wrong(message, hint)
        raise Wrong(message, fallback)
    return len(cases)


def nesterov_mistakes():
    "(hint, a stepper that makes the usual mistake) for Nesterov momentum."
    from exp.nb_08 import momentum_step
    def damped(p, state, grad, lr, mom, **hypers):
        b = state.setdefault('buf', torch.zeros_like(p)).lerp_(grad, 1 - mom)
        p.add_(grad + mom * b, alpha=-lr)
    def buffer_only(p, state, grad, lr, mom, **hypers):
        b = state['buf'] = grad.clone() if 'buf' not in state else state['buf'].mul_(mom).add_(grad)
        p.add_(b, alpha=-lr * mom)
    return [("that is plain momentum, a step along b (which is also grad + mom times the buffer before this step's "
             "update): Nesterov steps along grad + mom*b with b already updated", momentum_step),
            ("PyTorch's buffer is not damped: b <- mom*b + grad, starting from b = grad", damped),
            ("the step is grad + mom*b: keep the gradient term", buffer_only)]


def torch_sgd(params, h):
    return torch.optim.SGD(params, lr=h['lr'], momentum=h['mom'], nesterov=True, weight_decay=h['wd'])


@exercise('08.2', 'a Nesterov momentum stepper, step for step with torch.optim.SGD')
def check_nesterov(nesterov_step):
    cases = [(80, dict(lr=0.1, mom=0.9, wd=0.)), (81, dict(lr=0.03, mom=0.5, wd=1e-2)), (82, dict(lr=0.2, mom=0.99, wd=0.)),
             (83, dict(lr=0.05, mom=0.8, wd=0.1))]
    n = check_stepper(nesterov_step, cases, torch_sgd, lambda h: f"lr {h['lr']}, mom {h['mom']}, wd {h['wd']}",
                      nesterov_mistakes(), "follow torch.optim.SGD's update with nesterov=True: buffer first, then the step")
    return f"the same parameters as torch.optim.SGD(nesterov=True) after each of 6 steps, on {n} fresh cases (with and without L2)"


def rmsprop_mistakes():
    "(hint, a stepper that makes the usual mistake) for RMSProp."
    def average(state, p): return state.setdefault('sq', torch.zeros_like(p))
    def eps_inside(p, state, grad, lr, alpha, eps, **hypers):
        v = average(state, p).mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
        p.addcdiv_(grad, (v + eps).sqrt(), value=-lr)
    def bias_corrected(p, state, grad, lr, alpha, eps, **hypers):
        state['t'] = state.get('t', 0) + 1
        v = average(state, p).mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
        p.addcdiv_(grad, (v / (1 - alpha ** state['t'])).sqrt() + eps, value=-lr)
    def starts_at_g2(p, state, grad, lr, alpha, eps, **hypers):
        if 'sq' not in state: state['sq'] = grad * grad
        else: state['sq'].mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
        p.addcdiv_(grad, state['sq'].sqrt() + eps, value=-lr)
    def alpha_swapped(p, state, grad, lr, alpha, eps, **hypers):
        v = average(state, p).mul_(1 - alpha).addcmul_(grad, grad, value=alpha)
        p.addcdiv_(grad, v.sqrt() + eps, value=-lr)
    def no_sqrt(p, state, grad, lr, alpha, eps, **hypers):
        v = average(state, p).mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
        p.addcdiv_(grad, v + eps, value=-lr)
    return [("eps is added after the square root, not under it: it only keeps the division safe", eps_inside),
            ("torch.optim.RMSprop has no bias correction (Adam's 1 - beta^t): it divides by the plain average", bias_corrected),
            ("the average starts at zero, like Adam's, not at the first g^2", starts_at_g2),
            ("alpha is the weight the old average keeps: v <- alpha*v + (1 - alpha)*g^2", alpha_swapped),
            ("divide by the root of the mean square, which has the units of the gradient", no_sqrt)]


def torch_rmsprop(params, h):
    return torch.optim.RMSprop(params, lr=h['lr'], alpha=h['alpha'], eps=h['eps'], weight_decay=h['wd'])


@exercise('08.3', 'an RMSProp stepper, step for step with torch.optim.RMSprop')
def check_rmsprop(rmsprop_step):
    cases = [(90, dict(lr=0.01, alpha=0.99, eps=1e-8, wd=0.)), (91, dict(lr=0.1, alpha=0.9, eps=1e-2, wd=0.)),
             (92, dict(lr=0.003, alpha=0.5, eps=0.1, wd=1e-2)), (93, dict(lr=0.03, alpha=0.95, eps=1e-4, wd=0.1))]
    n = check_stepper(rmsprop_step, cases, torch_rmsprop,
                      lambda h: f"lr {h['lr']}, alpha {h['alpha']}, eps {h['eps']}, wd {h['wd']}",
                      rmsprop_mistakes(), "follow torch.optim.RMSprop's documented update (no momentum, not centred)")
    return f"the same parameters as torch.optim.RMSprop after each of 6 steps, on {n} fresh cases (eps from 1e-8 to 0.1, with and without L2)"


# 08.4: the challenge: the lowest held-out loss after the notebook's 100 steps, with any optimiser built from steppers
NOTEBOOK_BEST = 0.5698   # the best of the notebook's six settings on this measure: plain SGD, lr 0.1
STEPS, BS, HELD_OUT = 100, 64, 10_000
BUDGET = (f"{STEPS} steps of batch {BS} on the first {STEPS * BS:,} training images, from make_mlp()'s weights, "
          f"any StepperOptimizer; loss on the last {HELD_OUT:,} training images")


def hundred_steps(opt_func, x_train, y_train):
    "The notebook's trajectory run (make_mlp(0), batches in order) with `opt_func`: (held-out loss, optimiser)."
    from exp.nb_08 import StepperOptimizer
    with torch.random.fork_rng(devices=[]):   # the learner's random state stays as it was
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(784, 50), nn.ReLU(), nn.Linear(50, 10))
    opt = opt_func(model.parameters())
    if not isinstance(opt, StepperOptimizer):
        raise Wrong(f"opt_func(params) made a {type(opt).__name__}, not a StepperOptimizer",
                    "build it from the notebook's optimisers and steppers (sgd, sgd_momentum, adam, adamw, StepperOptimizer)")
    for i in range(STEPS):
        xb, yb = x_train[i * BS:(i + 1) * BS], y_train[i * BS:(i + 1) * BS]
        F.cross_entropy(model(xb), yb).backward()
        opt.step(); opt.zero_grad()
    with torch.no_grad(): return F.cross_entropy(model(x_train[-HELD_OUT:]), y_train[-HELD_OUT:]).item(), opt


@exercise('08.4', 'challenge: the lowest held-out loss after 100 steps', kind='challenge')
def check_challenge(opt_func, x_train, y_train):
    if not callable(opt_func):
        raise Wrong(f"expected a function that makes an optimiser, opt_func(params); got a {type(opt_func).__name__}",
                    "partial(adam, lr=...) is such a function")
    if not torch.is_tensor(x_train) or x_train.shape[0] < STEPS * BS + HELD_OUT or abs(x_train.mean().item()) > 0.1:
        raise Wrong("pass the notebook's normalised x_train and y_train: check_exercise('08.4', my_opt_func, x_train, y_train)")
    loss, _ = hundred_steps(opt_func, x_train, y_train)
    if not math.isfinite(loss):
        raise Wrong(f"the loss became {loss}: training diverged", "a smaller learning rate")
    if loss >= NOTEBOOK_BEST:
        raise Wrong(f"held-out loss {loss:.4f}; the best of the notebook's six settings reached {NOTEBOOK_BEST}",
                    "100 steps is a short run: which hyper-parameter sets how far each of them goes?")
    return f"held-out loss {loss:.4f} after {STEPS} steps, below the notebook's best, {NOTEBOOK_BEST}", loss, NOTEBOOK_BEST, BUDGET
