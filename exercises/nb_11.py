"Checks for the exercises of 11_bigram: the trigram model (makemore's E01-E03) and the bigram step without one-hot (E04-E05)."
import math, random
from functools import cache

import torch
import torch.nn.functional as F

from exercises import NotAttempted, Wrong, check_predictions, code_of, exercise

ALPHABET = 'abcdefghijklmnopqrstuvwxyz'
STOI = {'.': 0} | {c: i + 1 for i, c in enumerate(ALPHABET)}


def random_words(seed, n=None, alphabet=ALPHABET):
    "A fresh list of made-up words (lengths 1 to 8, letters from `alphabet`): no hard-coded number fits them."
    rng = random.Random(seed)
    return [''.join(rng.choice(alphabet) for _ in range(rng.randint(1, 8))) for _ in range(n or rng.randint(3, 40))]


def trigrams(word):
    "The trigrams of a word with two '.' before it and one after: 'ab' gives ..a, .ab, ab."
    chars = ['.', '.'] + list(word) + ['.']
    return list(zip(chars, chars[1:], chars[2:]))


def trigram_index(words, stoi):
    "(a, b, c): the tokens of every trigram of `words`, as three int64 tensors."
    ix = torch.tensor([[stoi[a], stoi[b], stoi[c]] for w in words for a, b, c in trigrams(w)]).view(-1, 3)
    return ix[:, 0], ix[:, 1], ix[:, 2]


def reference_counts(words, stoi):
    v = len(stoi)
    a, b, c = trigram_index(words, stoi)
    return torch.bincount((a * v + b) * v + c, minlength=v ** 3).view(v, v, v)


@exercise('11.1', 'predict: the trigrams of names.txt', kind='predict')
def check_trigram_predictions(answer):
    expected = {'trigrams in names.txt': lambda v: v == 228_146,
                'trigram NLL on the training names below the bigram 2.4546': lambda v: v is True}
    hints = {'trigrams in names.txt': "how many trigrams does 'emma' give with '..' in front and '.' after? and how many bigrams?",
             'trigram NLL on the training names below the bigram 2.4546': "more context can only sharpen the counts on the data they came from"}
    return check_predictions(answer, expected, hints, "right")


@exercise('11.2', 'trigram_counts: the (27, 27, 27) count tensor')
def check_trigram_counts(trigram_counts):
    for seed in range(6):
        words = random_words(seed, alphabet=ALPHABET[:random.Random(seed).randint(3, 26)])
        N = trigram_counts(words, STOI)
        if N is Ellipsis or N is None: raise NotAttempted()
        expected = reference_counts(words, STOI)
        shown = f"words {words[:4]}{' ...' if len(words) > 4 else ''} ({len(words)} words)"
        if not torch.is_tensor(N) or tuple(N.shape) != (27, 27, 27):
            raise Wrong(f"{shown}: came back {type(N).__name__} of shape {tuple(getattr(N, 'shape', ()))}; expected a (27, 27, 27) tensor",
                        "one axis per character of the trigram: N[a, b, c] counts c following the two characters a, b")
        if N.sum() != expected.sum():
            per_word = (expected.sum() - N.sum()).item() / len(words)
            raise Wrong(f"{shown}: {N.sum().item()} trigrams counted; a name of length L gives L + 1 of them",
                        "pad each name with two '.' in front and one at the end" if per_word == int(per_word) and per_word != 0
                        else "check the windows: three consecutive characters, one step at a time")
        if not torch.equal(N.long(), expected):
            first = (N.long() != expected).nonzero()[0].tolist()
            raise Wrong(f"{shown}: the total is right but the count of {''.join(ALPHABET_OF[i] for i in first)!r} is "
                        f"{N[tuple(first)].item()}, not what the words give",
                        "the axes are (first, second, third character): is N indexed in that order?")
    return "right on 6 fresh word lists"


ALPHABET_OF = {i: c for c, i in STOI.items()}


def reference_nll(words, N, stoi, smoothing, axis=2):
    "The NLL per trigram of `words` under counts `N` + `smoothing`, normalised over `axis` (2 is right)."
    P = (N + smoothing).double()
    return -(P / P.sum(axis, keepdim=True))[trigram_index(words, stoi)].log().mean().item()


@exercise('11.3', 'trigram_nll: the loss of a smoothed trigram model')
def check_trigram_nll(trigram_nll):
    for seed in range(6):
        rng = random.Random(100 + seed)
        train, words = random_words(100 + seed), random_words(200 + seed)
        smoothing = rng.choice([0.5, 1, 2, 10])
        N = reference_counts(train, STOI)
        got = trigram_nll(words, N, STOI, smoothing)
        if got is Ellipsis or got is None: raise NotAttempted()
        want = reference_nll(words, N, STOI, smoothing)
        shown = f"counts from {len(train)} random words, NLL of {len(words)} others, smoothing {smoothing}"
        try: got = float(got)
        except (TypeError, ValueError): raise Wrong(f"{shown}: came back {type(got).__name__}; expected a number") from None
        if math.isclose(got, want, rel_tol=1e-5): continue
        n = sum(len(w) + 1 for w in words)
        if math.isclose(got, want * n, rel_tol=1e-5): raise Wrong(f"{shown}: {got:.4f} is a total", "average over the trigrams, not sum")
        if math.isclose(got, -want, rel_tol=1e-5): raise Wrong(f"{shown}: {got:.4f} has the wrong sign", "the loss is the *negative* log-likelihood")
        for axis in (0, 1):
            if math.isclose(got, reference_nll(words, N, STOI, smoothing, axis), rel_tol=1e-5):
                raise Wrong(f"{shown}: {got:.4f}: probabilities normalised over the wrong axis",
                            "each (first, second) context gives a distribution over the *third* character: normalise over the last axis, keepdim=True")
        raise Wrong(f"{shown}: came back {got:.4f}, which is not the mean negative log-probability of the trigrams",
                    "add the smoothing to the counts before normalising, then average -log P over every trigram")
    return "right on 6 fresh cases (random counts, words and smoothing)"


@cache
def names_splits():
    "(train, dev, test) of names.txt: notebook 12's split (80/10/10 after a seeded shuffle)."
    from exp.nb_00a import get_file
    from exp.nb_11 import read_words
    from exp.nb_12 import split_words
    return split_words(read_words(get_file('names', 'names.txt')))


@cache
def train_counts():
    return reference_counts(names_splits()[0], STOI)


@cache
def split_index(split):
    return trigram_index(names_splits()[('dev', 'test').index(split) + 1], STOI)


def split_nll(smoothing, split, order=3):
    "NLL on the dev or test split of an n-gram count model (order 2 or 3) trained on the train split."
    train, dev, test = names_splits()
    words = {'dev': dev, 'test': test}[split]
    if order == 3:
        P = (train_counts() + smoothing).double()
        return -(P / P.sum(2, keepdim=True))[split_index(split)].log().mean().item()
    from exp.nb_11 import bigram_counts, bigram_pairs
    P = (bigram_counts(train, STOI) + smoothing).double()
    xs, ys = bigram_pairs(words, STOI)
    return -(P / P.sum(1, keepdim=True)).log()[xs, ys].mean().item()


SMOOTHING_GRID = tuple(round(10 ** (k / 10), 4) for k in range(-30, 21))   # 0.001 to 100, ten steps a decade


@cache
def best_smoothing():
    "(smoothing, dev NLL) of the best trigram smoothing on the grid."
    return min(((s, split_nll(s, 'dev')) for s in SMOOTHING_GRID), key=lambda t: t[1])


@exercise('11.4', 'challenge: choose the smoothing on dev, report test once', kind='challenge')
def check_smoothing(smoothing):
    try: smoothing = float(smoothing)
    except (TypeError, ValueError): raise Wrong(f"came back {type(smoothing).__name__}; expected a number (the fake count per cell)") from None
    if not smoothing > 0: raise Wrong(f"smoothing {smoothing}: the dev loss is infinite when a dev trigram was never seen",
                                      "smoothing must be positive for dev names the train split never saw")
    dev, bigram_dev = split_nll(smoothing, 'dev'), split_nll(1.0, 'dev', order=2)
    best_s, best_dev = best_smoothing()
    budget = 'trigram counts of the train split; smoothing chosen on dev'
    if dev > best_dev + 0.002:
        raise Wrong(f"smoothing {smoothing:g}: dev NLL {dev:.4f}; the best smoothing on a grid gets below {best_dev + 0.002:.4f} "
                    f"(the bigram with +1: {bigram_dev:.4f})",
                    "try values on a log scale, 0.01 to 100, and keep the one with the lowest *dev* loss")
    return (f"smoothing {smoothing:g}: dev NLL {dev:.4f}, the grid's best {best_dev:.4f}; the bigram with +1 smoothing: {bigram_dev:.4f}.\n"
            f"Now the test split, once: test NLL {split_nll(smoothing, 'test'):.4f} (report this; do not tune on it)",
            dev, best_dev, budget)


@exercise('11.5', 'the bigram loss without one-hot: index rows of W, F.cross_entropy')
def check_bigram_loss(bigram_loss):
    if 'one_hot' in code_of(bigram_loss):
        raise Wrong("your function builds one-hot vectors", "a one-hot row times W is a row of W: index W with the tokens instead")
    g = torch.Generator().manual_seed(11)
    for case in range(5):
        v, n = int(torch.randint(3, 30, (1,), generator=g)), int(torch.randint(1, 200, (1,), generator=g))
        W = (torch.randn(v, v, generator=g, dtype=torch.float64) * 2).requires_grad_()
        xs, ys = torch.randint(0, v, (n,), generator=g), torch.randint(0, v, (n,), generator=g)
        loss = bigram_loss(W, xs, ys)
        if loss is Ellipsis or loss is None: raise NotAttempted()
        counts = (F.one_hot(xs, v).double() @ W).exp()   # the notebook's path: one-hot, exp, normalise
        probs = counts / counts.sum(1, keepdim=True)
        data = -probs[torch.arange(n), ys].log().mean()
        want = data + 0.01 * (W ** 2).mean()
        shown = f"a random {v}x{v} W and {n} bigrams"
        if not torch.is_tensor(loss) or loss.numel() != 1:
            raise Wrong(f"{shown}: came back {type(loss).__name__} {tuple(getattr(loss, 'shape', ()))}; expected a scalar tensor")
        if not loss.requires_grad: raise Wrong(f"{shown}: the loss has no gradient", "compute it from W with tensor operations, without .item() or .detach()")
        if torch.isclose(loss, data, rtol=1e-6): raise Wrong(f"{shown}: {loss.item():.4f} is the data loss alone", "add the regulariser 0.01 * mean(W²)")
        if torch.isclose(loss, data * n + 0.01 * (W ** 2).mean(), rtol=1e-6):
            raise Wrong(f"{shown}: {loss.item():.4f} sums the data loss", "F.cross_entropy averages over the examples by default: keep the mean")
        if not torch.isclose(loss, want, rtol=1e-6):
            raise Wrong(f"{shown}: loss {loss.item():.6f}, not the one-hot path's value", "F.cross_entropy takes the logits (rows of W), not probabilities")
        grad, = torch.autograd.grad(loss, W)
        grad_want, = torch.autograd.grad(want, W)
        if not torch.allclose(grad, grad_want, rtol=1e-6, atol=1e-12):
            raise Wrong(f"{shown}: the right loss with the wrong gradient", "keep every step in the graph from W to the loss")
    return ("the same loss and gradient as the one-hot path on 5 random cases. F.cross_entropy never forms the probabilities: "
            "it works with log-softmax (max subtracted), so large logits cannot overflow exp, and it is one fused step")
