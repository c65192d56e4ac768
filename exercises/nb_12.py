"""Checks for the exercises of 12_mlp_lm: predictions about the model and its data (12.1), the data set for any block
size (12.2), the lowest loss a set of examples allows (12.3), and makemore part 2's "beat my dev loss" at a fixed step
budget (12.4)."""
import math, random
from functools import cache

import torch
import torch.nn.functional as F

from exercises import NotAttempted, Wrong, check_predictions, exercise
from exercises.nb_11 import STOI, names_splits, random_words


def is_number(value, truth, abs_tol=1e-3):
    "A number (not a bool) within `abs_tol` of the truth: 3.2958 and 3.29584 are both right."
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isclose(value, truth, rel_tol=0, abs_tol=abs_tol)


def is_count(value, truth):
    return isinstance(value, int) and not isinstance(value, bool) and value == truth


# ---- 12.1: predictions ----

PREDICTIONS = {
    'loss when every one of the 27 tokens gets the same probability': 'uniform',
    'loss before training if W2 and b2 were all zeros (C, W1, b1 random)': 'zero output',
    'parameters of init_mlp_lm(block_size=4, n_embd=5, n_hidden=50)': 'parameters',
    "examples that build_dataset(['anna', 'bo'], 5, stoi) gives": 'examples',
}


def parameter_count(vocab_size=27, block_size=4, n_embd=5, n_hidden=50):
    return vocab_size * n_embd + block_size * n_embd * n_hidden + n_hidden + n_hidden * vocab_size + vocab_size


@exercise('12.1', 'predict: losses, parameters and examples', kind='predict')
def check_predictions_12(answer):
    uniform, zero_out, params, examples = PREDICTIONS
    expected = {uniform: lambda v: is_number(v, math.log(27)),
                zero_out: lambda v: is_number(v, math.log(27)),
                params: lambda v: is_count(v, parameter_count()),
                examples: lambda v: is_count(v, len('anna') + 1 + len('bo') + 1)}
    given = answer if isinstance(answer, dict) else {}
    other_logs = [math.log2(27), math.log10(27), -math.log2(27), -math.log(27)]
    hints = {uniform: "the loss uses the natural log, and its minus sign makes it positive"
             if any(is_number(given.get(uniform), v) for v in other_logs)
             else "the loss is the mean of -ln p(label): what is p(label) when all 27 tokens are equally likely?",
             zero_out: "with W2 and b2 zero, what are the logits, whatever the hidden layer says?",
             params: "C is vocab x n_embd, W1 has block_size * n_embd rows, and do not forget the two biases",
             examples: "one example per character and one for the end of each word; the block size changes the width of X, not its length"}
    return check_predictions(answer, expected, hints, "right")


# ---- 12.2: the data set for any block size ----

def reference_dataset(words, block_size, stoi, reset=True, end=True):
    "(X, Y) as build_dataset makes them; `reset=False` carries the context over from the word before, `end=False` drops the '.'."
    X, Y = [], []
    context = [stoi['.']] * block_size
    for w in words:
        if reset: context = [stoi['.']] * block_size
        for ix in [stoi[c] for c in w] + ([stoi['.']] if end else []):
            X.append(context); Y.append(ix)
            context = context[1:] + [ix]
    return torch.tensor(X).view(-1, block_size), torch.tensor(Y)


@exercise('12.2', 'contexts_and_targets: the data set for any block size')
def check_contexts_and_targets(contexts_and_targets):
    for seed in range(8):
        rng = random.Random(1200 + seed)
        words = random_words(1200 + seed, n=rng.randint(2, 12))
        block_size = [1, 2, 5, 8][seed % 4] if seed < 4 else rng.randint(1, 8)
        got = contexts_and_targets(words, block_size, STOI)
        if got is Ellipsis or got is None: raise NotAttempted()
        shown = f"words {words[:3]}{' ...' if len(words) > 3 else ''} ({len(words)} words), block_size {block_size}"
        if not (isinstance(got, tuple) and len(got) == 2 and all(torch.is_tensor(t) for t in got)):
            raise Wrong(f"{shown}: came back {type(got).__name__}; expected a pair of tensors (X, Y)")
        X, Y = got
        want_X, want_Y = reference_dataset(words, block_size, STOI)
        if X.dtype != torch.int64 or Y.dtype != torch.int64:
            raise Wrong(f"{shown}: X is {X.dtype} and Y is {Y.dtype}", "tokens are indices: int64 tensors, as torch.tensor makes from lists of ints")
        if tuple(Y.shape) != tuple(want_Y.shape) or len(X) != len(Y):
            no_end = reference_dataset(words, block_size, STOI, end=False)[1]
            raise Wrong(f"{shown}: {len(Y)} targets for {len(X)} contexts; the words give {len(want_Y)} examples",
                        "each word ends with an example whose target is '.'" if Y.shape == no_end.shape and torch.equal(Y, no_end)
                        else "one example per character of each word plus one for its end: with block_size '.' tokens "
                             "in front, even the first character has a full context")
        if tuple(X.shape) != tuple(want_X.shape):
            raise Wrong(f"{shown}: X has shape {tuple(X.shape)}, expected {tuple(want_X.shape)}",
                        "each context is exactly block_size tokens: start with block_size '.' tokens and slide by one")
        if torch.equal(X, want_X) and torch.equal(Y, want_Y): continue
        if torch.equal(Y, want_Y) and torch.equal(X, reference_dataset(words, block_size, STOI, reset=False)[0]):
            raise Wrong(f"{shown}: the first contexts of the second word hold characters of the first",
                        "each word starts from a fresh context of '.' tokens")
        k = int((X != want_X).any(1).logical_or(Y != want_Y).nonzero()[0])
        decode = lambda row: ''.join(ALPHABET_OF.get(i, '?') for i in row)
        raise Wrong(f"{shown}: example {k} is {decode(X[k].tolist())!r} -> {ALPHABET_OF.get(int(Y[k]), '?')!r}, "
                    f"expected {decode(want_X[k].tolist())!r} -> {ALPHABET_OF[int(want_Y[k])]!r}",
                    "the context is the block_size tokens just before the target; after each example, drop its first token and append the target")
    return "right on 8 fresh word lists, block sizes 1 to 8"


ALPHABET_OF = {i: c for c, i in STOI.items()}


# ---- 12.3: the lowest loss the examples allow ----

def context_ids(X):
    "One id per distinct row of X (the same context, the same id): each row read as a number in base max + 1."
    X = X.view(len(X), -1).long()
    base = int(X.max()) + 1
    code = torch.zeros(len(X), dtype=torch.int64)
    for column in X.T: code = code * base + column
    return torch.unique(code, return_inverse=True)[1]


def floor_variants(X, Y):
    "{name: value}: the right floor, and what the usual mistakes give."
    ctx = context_ids(X)
    n_ctx, n_tok = int(ctx.max()) + 1, int(Y.max()) + 1
    counts = torch.zeros(n_ctx, n_tok, dtype=torch.float64).index_put_((ctx, Y), torch.ones(len(Y), dtype=torch.float64), accumulate=True)
    p = counts[ctx, Y] / counts[ctx].sum(1)
    per_context = (counts / counts.sum(1, keepdim=True)).clamp_min(1e-300)
    entropy = -(counts / counts.sum(1, keepdim=True) * per_context.log()).sum(1)
    return {'right': -p.log().mean().item(),
            'sum': -p.log().sum().item(),
            'log2': -p.log2().mean().item(),
            'per context': entropy.mean().item(),
            'distinct labels': (counts > 0).sum(1).double().log()[ctx].mean().item()}


def floor_cases():
    "Fresh (X, Y): small vocabularies and short contexts so that contexts repeat; one case where none does."
    g = torch.Generator().manual_seed(1203)
    for case in range(6):
        block, vocab, n = [(1, 3, 40), (2, 3, 60), (3, 2, 50), (1, 4, 15), (2, 5, 80), (3, 27, 6)][case]
        X = torch.randint(0, vocab, (n, block), generator=g)
        if case == 5: X = torch.arange(n * block).view(n, block) % 27 + 0   # six different contexts: the floor is 0
        Y = torch.randint(0, 4, (n,), generator=g)
        yield X, Y


@exercise('12.3', 'loss_floor: the lowest loss any model can reach on a set of examples')
def check_loss_floor(loss_floor):
    hints = {'sum': "a mean over the examples, as the loss is, not a sum",
             'log2': "cross-entropy uses the natural log",
             'per context': "average over the examples, not over the contexts: a context seen ten times counts ten times",
             'distinct labels': "the best prediction for a context follows how often each label follows it, not only which labels do"}
    for X, Y in floor_cases():
        got = loss_floor(X, Y)
        if got is Ellipsis or got is None: raise NotAttempted()
        shown = f"X of shape {tuple(X.shape)} ({len(torch.unique(X, dim=0))} distinct contexts), Y of {len(Y)} labels"
        try: got = float(got)
        except (TypeError, ValueError): raise Wrong(f"{shown}: came back {type(got).__name__}; expected a number") from None
        variants = floor_variants(X, Y)
        if math.isclose(got, variants['right'], rel_tol=1e-6, abs_tol=1e-9): continue
        for name, hint in hints.items():
            if math.isclose(got, variants[name], rel_tol=1e-6, abs_tol=1e-9) and not math.isclose(variants[name], variants['right'], rel_tol=1e-6):
                raise Wrong(f"{shown}: came back {got:.4f}, expected {variants['right']:.4f}", hint)
        raise Wrong(f"{shown}: came back {got:.4f}, expected {variants['right']:.4f}",
                    "examples with the same context must share one prediction: group them, and the best prediction is their labels' frequencies"
                    if got == 0 else "the floor is the mean over the examples of -ln(share of its label among the examples with its context)")
    from exp.nb_12 import build_dataset
    Xtr, Ytr = build_dataset(names_splits()[0], 3, STOI)
    return (f"right on 6 fresh cases. On the notebook's training set the floor is {floor_variants(Xtr, Ytr)['right']:.4f}: "
            "no model that sees 3 characters can go below it there, however big, and the dev loss says how much of the way "
            "down is worth going")


# ---- 12.4: the challenge ----

CHALLENGE_STEPS = 30_000          # steps of batch 32
NOTEBOOK_DEV_30K = 2.2608         # 12's 10-D, 200-unit model after 30,000 steps (0.1, then 0.01 for the last 10,000)
PARAMETER_BUDGET = 11_897         # the notebook's model


@cache
def dev_set(block_size):
    from exp.nb_12 import build_dataset
    return build_dataset(names_splits()[1], block_size, STOI)


@exercise('12.4', 'challenge: a lower dev loss in 30,000 steps', kind='challenge')
def check_challenge(params, steps):
    from exp.nb_12 import mlp_lm_logits
    shapes = ' '.join(str(tuple(p.shape)) for p in params) if isinstance(params, (list, tuple)) and all(torch.is_tensor(p) for p in params) else ''
    if not shapes or len(params) != 5:
        raise Wrong("expected the 5 trained tensors [C, W1, b1, W2, b2], as init_mlp_lm makes them"
                    + (f"; came back {len(params)} tensors: {shapes}" if shapes else f"; came back {type(params).__name__}"))
    C, W1, b1, W2, b2 = (p.detach() for p in params)
    n_embd, n_hidden = C.shape[1] if C.dim() == 2 else 0, len(b1)
    ok = (C.dim() == 2 and C.shape[0] == 27 and n_embd > 0 and W1.dim() == 2 and W1.shape[0] % n_embd == 0 and
          W1.shape[1] == n_hidden and b1.dim() == 1 and tuple(W2.shape) == (n_hidden, 27) and tuple(b2.shape) == (27,))
    if not ok:
        raise Wrong(f"shapes {shapes}: expected C (27, n_embd), W1 (block_size * n_embd, n_hidden), b1 (n_hidden,), "
                    "W2 (n_hidden, 27), b2 (27,)", "the model of this notebook, any sizes: init_mlp_lm(block_size=..., n_embd=..., n_hidden=...)")
    count = sum(p.numel() for p in params)
    if count > PARAMETER_BUDGET:
        raise Wrong(f"{count:,} parameters, over the budget of {PARAMETER_BUDGET:,}", "trade sizes within the budget: embedding, hidden units, context")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 0 < steps <= CHALLENGE_STEPS:
        raise Wrong(f"my_steps is {steps!r}: the budget is at most {CHALLENGE_STEPS:,} steps of batch 32", "set my_steps to the steps you trained for")
    block_size = W1.shape[0] // n_embd
    Xdev, Ydev = dev_set(block_size)
    with torch.no_grad(): dev = F.cross_entropy(mlp_lm_logits([C, W1, b1, W2, b2], Xdev), Ydev).item()
    budget = f"{count:,} parameters (at most {PARAMETER_BUDGET:,}), {steps:,} steps of batch 32 (at most {CHALLENGE_STEPS:,})"
    if not math.isfinite(dev) or dev >= NOTEBOOK_DEV_30K:
        raise Wrong(f"dev loss {dev:.4f} after {steps:,} steps; the notebook's model had {NOTEBOOK_DEV_30K} after {CHALLENGE_STEPS:,}",
                    "look at the loss before training (26, where a uniform guess costs 3.30): how many steps go into undoing the start?")
    return (f"dev loss {dev:.4f} (block size {block_size}, {n_embd}-D embeddings, {n_hidden} hidden units), "
            f"below the notebook's {NOTEBOOK_DEV_30K} at {CHALLENGE_STEPS:,} steps", dev, NOTEBOOK_DEV_30K, budget)
