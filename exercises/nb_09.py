"""Checks for the exercises of 09_resnet: a ResBlock's parameters and shapes, the shortcut when the shapes change,
a batch-wise random erasing augmentation, and a one-epoch training challenge."""
import functools

import torch
import torch.nn.functional as F
from torch import nn

from exercises import NotAttempted, Wrong, check_predictions, code_of, exercise


def n_params(module): return sum(p.numel() for p in module.parameters())


def keeps_rng(check):
    "Run `check` without moving PyTorch's global generator: building layers draws from it, and the learner's next cell should not notice."
    @functools.wraps(check)
    def wrapped(*args):
        with torch.random.fork_rng(devices=[]): return check(*args)
    return wrapped


# ---- 09.1: counting a ResBlock ----

BLOCK_QUESTIONS = ('ResBlock(32, 32): parameters',
                   'ResBlock(32, 64, stride=2): parameters',
                   'ResBlock(32, 64, stride=2) on an (8, 32, 7, 7) batch: output shape',
                   "share of get_resnet()'s parameters in its last ResBlock (64 -> 128), to 2 decimals")


def block_truths():
    from exp.nb_09 import ResBlock, get_resnet
    net = get_resnet()
    last = [m for m in net if isinstance(m, ResBlock)][-1]
    return dict(zip(BLOCK_QUESTIONS, (n_params(ResBlock(32, 32)), n_params(ResBlock(32, 64, stride=2)),
                                      tuple(ResBlock(32, 64, stride=2)(torch.randn(8, 32, 7, 7)).shape),
                                      n_params(last) / n_params(net))))


def count_hint(ni, nf, value):
    "The hint for a wrong parameter count of ResBlock(ni, nf, stride 2 when the channels change), from the mistake it matches."
    from exp.nb_09 import ResBlock
    block = ResBlock(ni, nf, stride=1 if ni == nf else 2)
    truth = n_params(block)
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    bn_params = sum(2 * m.num_features for m in block.modules() if isinstance(m, nn.BatchNorm2d))
    n_bn = len([m for m in block.modules() if isinstance(m, nn.BatchNorm2d)])
    if value == truth + sum(c.out_channels for c in convs):
        return "conv_norm leaves out a conv's bias when a norm follows it: BatchNorm's β does that job"
    if value == truth - bn_params: return "each BatchNorm2d learns two vectors of one value per channel: γ (weight) and β (bias)"
    if value in (truth + bn_params, truth + bn_params + n_bn):
        return "running_mean and running_var are buffers, not parameters: the optimiser never sees them"
    if ni == nf and value in (truth + ni * nf, truth + ni * nf + 2 * nf):
        return "with equal channels and stride 1 the shortcut is the identity: no parameters at all"
    if ni != nf and value in (truth - ni * nf, truth - ni * nf - 2 * nf):
        return "the channels change, so the shortcut has a 1x1 conv (and its BatchNorm)"
    if ni != nf and value == truth + 8 * ni * nf: return "the shortcut's conv is 1x1: ni x nf weights"
    return "count each conv's weights (in x out x 3 x 3, or x 1 x 1 on the shortcut; no bias) and each BatchNorm's γ and β"


def as_shape(value):
    if isinstance(value, (torch.Size, list)): return tuple(value)
    return value


def block_hint(question, value):
    if question == BLOCK_QUESTIONS[0]: return count_hint(32, 32, value)
    if question == BLOCK_QUESTIONS[1]: return count_hint(32, 64, value)
    if question == BLOCK_QUESTIONS[2]:
        if as_shape(value) == (8, 64, 3, 3):
            return "a 3x3 conv with padding 1 and stride 2 takes 7 pixels to 4 (rounding up); the pool's ceil_mode matches it"
        return "stride 2 halves the image, rounding up; the block maps 32 channels to 64"
    return ("a conv's weights grow as in x out channels, so doubling the width quadruples them: count the last block as "
            "you counted ResBlock(32, 64, stride=2), and divide by the 304,122 of the whole net")


@exercise('09.1', "predict: a ResBlock's parameters and output shape", kind='predict')
@keeps_rng
def check_block_counts(answer):
    truth = block_truths()
    expected = {q: (lambda v, q=q: isinstance(v, (int, float)) and not isinstance(v, bool) and v == truth[q]) for q in BLOCK_QUESTIONS[:2]}
    expected[BLOCK_QUESTIONS[2]] = lambda v: as_shape(v) == truth[BLOCK_QUESTIONS[2]]
    expected[BLOCK_QUESTIONS[3]] = lambda v: isinstance(v, (int, float)) and abs(v - truth[BLOCK_QUESTIONS[3]]) < 0.006
    hints = {q: block_hint(q, answer.get(q)) for q in BLOCK_QUESTIONS} if isinstance(answer, dict) else {}
    return check_predictions(answer, expected, hints, "right") + (
        ": three quarters of the network's parameters sit in its widest block, on the smallest (4x4) images")


# ---- 09.2: the shortcut ----

def returned(got, what):
    if got is Ellipsis: raise NotAttempted()
    if got is None: raise Wrong(f"your function returned None; expected {what}", "did the function end without `return`?")
    return got


def conv_path_shape(n, ni, nf, stride, h, w):
    "What the ResBlock's conv path gives: its first conv is 3x3, padding 1, with the block's stride."
    return n, nf, (h + 2 - 3) // stride + 1, (w + 2 - 3) // stride + 1


def shortcut_cases():
    g = torch.Generator().manual_seed(92)
    def choose(*options): return options[int(torch.randint(0, len(options), (1,), generator=g))]
    fixed = [(16, 16, 1, 14, 14), (16, 16, 2, 7, 7), (8, 16, 1, 9, 9), (8, 16, 2, 7, 5), (4, 4, 2, 1, 1)]
    return fixed + [(ni, choose(ni, 2 * ni, 12), choose(1, 2), choose(1, 2, 3, 5, 6, 8), choose(2, 3, 4, 7, 9))
                    for ni in (choose(4, 8, 12) for _ in range(6))]


@exercise('09.2', 'make_shortcut: the identity path of a ResBlock')
@keeps_rng
def check_make_shortcut(make_shortcut):
    cases = shortcut_cases()
    for ni, nf, stride, h, w in cases:
        shown = f"make_shortcut({ni}, {nf}, stride={stride}) on a (3, {ni}, {h}, {w}) batch"
        module = returned(make_shortcut(ni, nf, stride), "an nn.Module")
        if not isinstance(module, nn.Module):
            raise Wrong(f"make_shortcut({ni}, {nf}, stride={stride}) came back a {type(module).__name__}; expected an nn.Module",
                        "return a module (nn.Identity, nn.AvgPool2d, nn.Conv2d, or an nn.Sequential of them) so the block registers its parameters")
        x = torch.randn(3, ni, h, w, generator=torch.Generator().manual_seed(ni * 100 + h * 10 + w), requires_grad=True)
        out = module.train()(x)
        want = conv_path_shape(3, ni, nf, stride, h, w)
        if not torch.is_tensor(out) or tuple(out.shape) != want:
            got = tuple(getattr(out, 'shape', ()))
            if stride == 2 and got[-2:] == (h // 2, w // 2) != want[-2:]:
                hint = "the conv path rounds up (7 pixels give 4); an AvgPool2d(2) rounds down unless ceil_mode=True"
            elif stride == 2 and got[-2:] == (h, w) != want[-2:]: hint = "stride 2 halves the image on the conv path: the shortcut must halve it too"
            elif len(got) == 4 and got[1] != nf: hint = f"the channels must become {nf}: a 1x1 conv from {ni} to {nf} channels"
            else: hint = "the shortcut's output is added to the conv path's: same channels, same image size"
            raise Wrong(f"{shown}: came back shape {got}; the conv path gives {want}", hint)
        count = n_params(module)
        if ni == nf and count:
            raise Wrong(f"{shown}: the shortcut has {count:,} parameters",
                        "equal channels need no conv on the shortcut: the identity (stride 1) or a pool (stride 2), so the gradient reaches x untouched")
        if ni == nf and stride == 1 and not torch.equal(out, x):
            raise Wrong(f"{shown}: not x itself", "with nothing to change, the shortcut is the identity (nn.Identity())")
        if ni == nf and stride == 2 and not torch.allclose(out, F.avg_pool2d(x, 2, ceil_mode=True), atol=1e-6):
            if torch.allclose(out, F.max_pool2d(x, 2, ceil_mode=True)):
                hint = "average pooling: the shortcut carries the mean of each 2x2 window, not its maximum"
            elif torch.equal(out, x[..., ::2, ::2]): hint = "every pixel counts: average each 2x2 window instead of keeping one pixel in four"
            else: hint = "the mean of each 2x2 window, the size rounded up like the conv path's"
            raise Wrong(f"{shown}: the right shape, not the 2x2 average", hint)
        convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
        if ni != nf and not convs: raise Wrong(f"{shown}: no convolution", f"a 1x1 nn.Conv2d maps {ni} channels to {nf}")
        if any(m.kernel_size != (1, 1) for m in convs):
            raise Wrong(f"{shown}: a {convs[0].kernel_size[0]}x{convs[0].kernel_size[1]} conv on the shortcut",
                        "the shortcut's conv is 1x1: it maps the channels and leaves the neighbours to the conv path")
        if not out.requires_grad:
            raise Wrong(f"{shown}: the output carries no gradient", "keep the shortcut in the graph: no torch.no_grad() or .detach()")
        (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(9))).sum().backward()
        unreached = int((x.grad == 0).sum())
        if unreached:
            raise Wrong(f"{shown}: {unreached} of the {x.numel()} input values never reach the output",
                        "a stride-2 1x1 conv reads one pixel in four: average-pool each 2x2 window first, then a stride-1 1x1 conv")
    return (f"right on {len(cases)} fresh shapes, odd sizes included: the shortcut always adds to the conv path, and it is "
            "the identity when nothing changes, so a deep ResNet starts close to the identity")


# ---- 09.3: random erasing on a whole batch ----

ERASE_CASES = [((64, 1, 8, 8), 3, -0.42), ((40, 2, 5, 7), 2, 0.0), ((30, 3, 6, 4), 4, 1.5), ((10, 1, 4, 4), 4, -1.0), ((50, 1, 5, 5), 1, 0.7)]


def erased(random_erase, shape, size, fill, seed):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1000 + seed))
    before = x.clone()
    out = returned(random_erase(x, size, fill=fill, generator=torch.Generator().manual_seed(seed)), "the augmented batch")
    shown = f"a batch of shape {tuple(shape)}, size {size}, fill {fill}"
    if not torch.equal(x, before): raise Wrong(f"{shown}: your function changed x in place", "return a new tensor (masked_fill, not masked_fill_)")
    if not torch.is_tensor(out) or out.shape != x.shape or out.dtype != x.dtype:
        raise Wrong(f"{shown}: came back {type(out).__name__} {tuple(getattr(out, 'shape', ()))}; expected a {x.dtype} tensor of shape {tuple(shape)}")
    return x, out, shown


def corners(x, out, size, shown, fill):
    "The (top, left) corner of each image's square, after checking that exactly a size x size square was set to `fill`."
    changed = out != x
    if (out[changed] != fill).any():
        raise Wrong(f"{shown}: some pixels changed to values other than fill", "set the square to `fill` and leave every other pixel as it was")
    mask = changed.any(1)                                       # (N, H, W)
    if not torch.equal(changed, mask[:, None].expand_as(changed)):
        raise Wrong(f"{shown}: different pixels changed in different channels of one image",
                    "one square per image, the same in every channel: a mask of shape (N, 1, H, W) broadcasts over the channels")
    rows, cols = mask.any(2), mask.any(1)                       # (N, H), (N, W)
    h, w = mask.shape[1:]
    for i in range(len(mask)):
        r, c = int(rows[i].sum()), int(cols[i].sum())
        if r == c == 0: raise Wrong(f"{shown}: image {i} came back unchanged", "every image gets a square set to `fill`")
        if (r, c) != (size, size) or not torch.equal(mask[i], rows[i][:, None] & cols[i][None, :]):
            edge = bool(rows[i, 0] or rows[i, -1] or cols[i, 0] or cols[i, -1])
            raise Wrong(f"{shown}: image {i} had a {r}x{c} patch changed (the mask's rows {rows[i].nonzero().flatten().tolist()}, "
                        f"columns {cols[i].nonzero().flatten().tolist()}); expected a {size}x{size} square",
                        "the whole square lies inside the image: its top row runs from 0 to H - size, its left column from 0 to W - size"
                        if edge and r <= size and c <= size else
                        "rows top to top + size - 1 and columns left to left + size - 1, and both conditions at once (&)")
    return rows.float().argmax(1), cols.float().argmax(1)


@exercise('09.3', 'random_erase: a square of each image filled, for the whole batch at once')
def check_random_erase(random_erase):
    code = code_of(random_erase)
    if 'for ' in code or 'while ' in code:
        raise Wrong("your function has a Python loop", "draw N corners at once and build the masks by comparing torch.arange(H) "
                                                       "with each corner (broadcasting), as random_crop builds its indices")
    shape, size = (3000, 1, 6, 5), 2                         # thousands of images first: where the squares may sit
    x, out, shown = erased(random_erase, shape, size, 0.5, 7)
    top, left = corners(x, out, size, shown, 0.5)
    h, w = shape[2] - size + 1, shape[3] - size + 1         # the number of places for the corner, each way
    if top.unique().numel() == 1 and left.unique().numel() == 1:
        raise Wrong(f"{shown}: every image has its square in the same place", "each image draws its own corner: N of them, not one for the batch")
    if torch.equal(top, left): raise Wrong(f"{shown}: the squares all sit on the diagonal (top == left)", "rows and columns need their own random offsets")
    for name, got, places in (('top', top, h), ('left', left, w)):
        if int(got.max()) == places - 2:
            raise Wrong(f"{shown}: no square ever touches the {'bottom' if name == 'top' else 'right'} edge (the {name} corner never reaches {places - 1})",
                        f"torch.randint's upper bound is exclusive: the corner must be able to reach {'H' if name == 'top' else 'W'} - size itself")
        share = torch.bincount(got, minlength=places).float() / len(got)
        if share.min() < 0.5 / places:
            raise Wrong(f"{shown}: the {name} corners are far from uniform: shares {[round(s, 3) for s in share.tolist()]}",
                        "every position of the square equally likely: one torch.randint per image over the whole range")
    _, again, _ = erased(random_erase, shape, size, 0.5, 7)
    if not torch.equal(again, out):
        raise Wrong(f"{shown}: two calls with generators seeded alike gave different squares",
                    "draw every random number from `generator`: torch.randint(..., generator=generator)")
    for seed, (shape, size, fill) in enumerate(ERASE_CASES):   # then small batches: odd shapes, squares of 1 pixel and of the whole image
        x, out, shown = erased(random_erase, shape, size, fill, seed)
        corners(x, out, size, shown, fill)
    return (f"right on {len(ERASE_CASES) + 1} fresh batches: one square per image, inside it, every place equally likely, "
            "reproducible from the generator, with no loop. Erasing a patch is the idea of Cutout (DeVries and Taylor, 2017); "
            "to train with it: BatchTransformCB(partial(random_erase, size=8, fill=bg))")


# ---- 09.4: the challenge ----

NOTEBOOK_VALID_EPOCH_1 = 0.8388   # 09's saved run: validation accuracy after the first of its 8 epochs
PARAMETER_BUDGET = 304_122        # get_resnet()'s parameters


def valid_accuracy(model, dl):
    "Accuracy of `model` on `dl`, in eval mode, on the device the model is on."
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        correct = sum((model(xb.to(device)).argmax(1).cpu() == yb).sum().item() for xb, yb in dl)
    return correct / sum(len(yb) for _, yb in dl)


@exercise('09.4', 'challenge: the best validation accuracy after one epoch', kind='challenge')
def check_one_epoch(model, dls):
    if not isinstance(model, nn.Module): raise Wrong(f"came back a {type(model).__name__}; expected your trained model (an nn.Module)")
    if not hasattr(dls, 'valid'): raise Wrong("pass the notebook's DataLoaders too: check_exercise('09.4', my_model, dls)")
    count = n_params(model)
    if count > PARAMETER_BUDGET:
        raise Wrong(f"{count:,} parameters, over the budget of {PARAMETER_BUDGET:,} (get_resnet()'s)", "narrower widths, or fewer blocks")
    acc = valid_accuracy(model, dls.valid)
    budget = f"{count:,} parameters (at most {PARAMETER_BUDGET:,}), one epoch of training"
    if acc <= NOTEBOOK_VALID_EPOCH_1:
        raise Wrong(f"validation accuracy {acc:.4f}; the notebook's run had {NOTEBOOK_VALID_EPOCH_1} after the first of its 8 epochs",
                    "that first epoch was only the warm-up of an 8-epoch schedule: give a one-epoch run a schedule of its own")
    return (f"validation accuracy {acc:.4f} after one epoch, above the {NOTEBOOK_VALID_EPOCH_1} of the notebook's first epoch",
            acc, NOTEBOOK_VALID_EPOCH_1, budget)
