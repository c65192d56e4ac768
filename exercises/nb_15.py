"""Checks for the exercises of 15_wavenet: the parameters of a deeper tree (15.1), FlattenConsecutive for any leading
dimensions (15.2), a causal dilated convolution by hand (15.3) and the convolution view of a 4-level tree (15.4)."""
import torch
import torch.nn.functional as F

from exercises import NotAttempted, Wrong, check_predictions, code_of, exercise

TREE = 'parameters of hierarchical_lm(27, BatchNorm1d, n_embd=16, n_hidden=96, n_levels=4)'
CONTEXT = 'characters of context that tree reads'
FLAT = 'parameters of flat_lm(27, 16, BatchNorm1d, n_embd=16, n_hidden=96)'


def model_sizes():
    "{question: the true count}, from the models themselves."
    from exp.nb_15 import BatchNorm1d, flat_lm, hierarchical_lm
    count = lambda m: sum(p.numel() for p in m.parameters())
    return {TREE: count(hierarchical_lm(27, BatchNorm1d, n_embd=16, n_hidden=96, n_levels=4)), CONTEXT: 2 ** 4,
            FLAT: count(flat_lm(27, 16, BatchNorm1d, n_embd=16, n_hidden=96))}


def size_hint(answer, right, linears, channels, first_in, all_in):
    "The hint for a parameter count, aimed at the slip that gives exactly `answer`."
    if answer == right + linears * channels:
        return "a Linear in front of a BatchNorm has no bias: BatchNorm's shift replaces it"
    if answer == right - 2 * linears * channels:
        return "each BatchNorm1d has parameters too: a gain and a shift per channel"
    if answer == right - first_in * channels + all_in * channels:
        return "which inputs does the first Linear read? n_embd numbers per character, and how many characters at once?"
    return "count layer by layer: the embedding table, each Linear's weight (inputs x outputs), 2 per BatchNorm channel, the output layer's weight and bias"


@exercise('15.1', 'predict: the parameters of a deeper tree', kind='predict')
def check_model_sizes(answer):
    truth = model_sizes()
    tree, flat = (answer.get(TREE), answer.get(FLAT)) if isinstance(answer, dict) else (None, None)
    hints = {TREE: size_hint(tree, truth[TREE], 4, 96, 2 * 16, 2 * 96) if isinstance(tree, int) else
             "count layer by layer: the embedding, then per level a Linear without bias, a BatchNorm (2 per channel), then the output layer",
             CONTEXT: "each level merges pairs: how many characters does one vector of the last level stand for?",
             FLAT: size_hint(flat, truth[FLAT], 1, 96, 16 * 16, 16 * 16) if isinstance(flat, int) else
             "the flat model's one hidden Linear reads all 16 characters' embeddings at once"}
    expected = {k: (lambda v, k=k: isinstance(v, int) and not isinstance(v, bool) and v == truth[k]) for k in truth}
    message = check_predictions(answer, expected, hints, "the count")
    return (f"{message}. The 4-level tree has more than twice the flat model's parameters for the same 16 characters: "
            f"every level above the first reads 2 x 96 numbers, and there are three of them")


def explicit_groups(x, n):
    "The reference: each group of n neighbouring vectors side by side along the features; the group axis dropped when 1."
    out = torch.cat([x[..., i::n, :] for i in range(n)], dim=-1)
    return out.squeeze(-2) if out.shape[-2] == 1 else out


FLATTEN_CASES = [(4, 8, 10, 2), (1, 8, 3, 2), (3, 6, 5, 3), (2, 4, 7, 4), (5, 9, 1, 9), (2, 5, 4, 1),
                 (1, 2, 6, 2), (2, 3, 8, 4, 2), (1, 1, 4, 3, 2), (6, 4, 3), (4, 5, 4), (2, 2, 3, 4, 2, 2)]   # (*leading, T, C, n)


@exercise('15.2', 'flatten_consecutive for any leading dimensions')
def check_flatten_consecutive(flatten_consecutive):
    g = torch.Generator().manual_seed(15)
    for *shape, n in FLATTEN_CASES:
        x = torch.randn(*shape, generator=g)
        shown = f"x of shape {tuple(shape)}, n={n}"
        try: got = flatten_consecutive(x, n)
        except NotImplementedError: raise
        except Exception as e:
            raise Wrong(f"{shown}: your function raised {type(e).__name__}: {str(e).splitlines()[0]}",
                        "keep every leading dimension as it is (x.shape[:-2]), however many there are, even none") from None
        if got is Ellipsis or got is None: raise NotAttempted()
        want = explicit_groups(x, n)
        if not torch.is_tensor(got) or tuple(got.shape) != tuple(want.shape):
            got_shape = tuple(got.shape) if torch.is_tensor(got) else type(got).__name__
            if torch.is_tensor(got) and got.numel() == want.numel() and got.ndim < want.ndim:
                hint = "drop only the group axis, and only when a single group is left: squeeze() would drop a leading axis of 1 too"
            elif torch.is_tensor(got) and got.ndim == want.ndim + 1:
                hint = "when a single group is left, drop its axis: (..., n·C), as the flat model's flattening gives"
            else:
                hint = "(..., T, C) becomes (..., T // n, n * C)"
            raise Wrong(f"{shown}: came back with shape {got_shape}; expected {tuple(want.shape)}", hint)
        if not torch.equal(got, want):
            T, C = shape[-2], shape[-1]
            lead = tuple(shape[:-2])
            halves = x.reshape(*lead, n, T // n, C).transpose(-3, -2).reshape(*lead, T // n, n * C)
            interleaved = x.reshape(*lead, T // n, n, C).transpose(-2, -1).reshape(*lead, T // n, n * C)
            if torch.equal(got.reshape(halves.shape), halves):
                hint = "group neighbours: vectors 0 and 1 (for n = 2), then 2 and 3; not vector 0 with vector T/2"
            elif torch.equal(got.reshape(interleaved.shape), interleaved):
                hint = "within a group, the first vector's C numbers come first, then the second's: no interleaving"
            else:
                hint = "each output vector is n neighbouring input vectors concatenated, in order"
            raise Wrong(f"{shown}: the right shape with the wrong values", hint)
    return f"equal to the explicit concatenation on {len(FLATTEN_CASES)} fresh shapes, with 0 to 3 leading dimensions"


def reference_causal_conv(x, weight, dilation):
    "F.conv1d on x padded on the left by (k - 1) * dilation zeros: output p reads x[p - (k - 1 - i) * dilation] with tap i."
    k = weight.shape[-1]
    return F.conv1d(F.pad(x, ((k - 1) * dilation, 0)), weight, dilation=dilation)


CONV_CASES = [(2, 3, 4, 10, 2, 1), (1, 2, 5, 12, 2, 2), (3, 4, 2, 16, 2, 4), (2, 3, 3, 11, 3, 2),
              (1, 1, 1, 7, 1, 3), (2, 5, 3, 9, 3, 1), (1, 2, 2, 3, 2, 4), (4, 3, 6, 20, 4, 3)]   # N, C_in, C_out, L, k, dilation


def conv_variants(x, w, d):
    "(hint, output) for the usual wrong versions: taps reversed, no dilation, reading the future."
    k = w.shape[-1]
    return [("tap i reads x[p - (k - 1 - i) * dilation]: the last tap reads the current position, tap 0 the furthest past, "
             "as nn.Conv1d computes it (no kernel flip)", reference_causal_conv(x, w.flip(-1), d)),
            ("the taps are `dilation` positions apart, not 1", reference_causal_conv(x, w, 1)),
            ("causal: position p may read p, p - dilation, ..., never a later position; pad on the left only",
             F.conv1d(F.pad(x, (0, (k - 1) * d)), w, dilation=d))]


@exercise('15.3', 'causal_conv: a dilated causal convolution by hand')
def check_causal_conv(causal_conv):
    code = code_of(causal_conv)
    if any(name in code for name in ('conv1d', 'Conv1d', 'conv2d', 'Conv2d')):
        raise Wrong("your function calls a library convolution",
                    "write it with shifted slices of x and matrix products, one per tap, as the level-by-hand cell did")
    g = torch.Generator().manual_seed(153)
    for n, c_in, c_out, L, k, d in CONV_CASES:
        x = torch.randn(n, c_in, L, generator=g, dtype=torch.float64)
        w = torch.randn(c_out, c_in, k, generator=g, dtype=torch.float64)
        got = causal_conv(x, w, d)
        if got is Ellipsis or got is None: raise NotAttempted()
        want = reference_causal_conv(x, w, d)
        shown = f"x {tuple(x.shape)}, weight {tuple(w.shape)}, dilation {d}"
        if not torch.is_tensor(got) or tuple(got.shape) != tuple(want.shape):
            got_shape = tuple(got.shape) if torch.is_tensor(got) else type(got).__name__
            hint = ("pad (k - 1) * dilation zeros on the left, so every position has an output"
                    if torch.is_tensor(got) and got.shape[-1] == L - (k - 1) * d else "(N, C_in, L) in, (N, C_out, L) out")
            raise Wrong(f"{shown}: came back with shape {got_shape}; expected {tuple(want.shape)}", hint)
        if torch.allclose(got.to(want.dtype), want, rtol=1e-9, atol=1e-9): continue
        hint = next((h for h, v in conv_variants(x, w, d) if tuple(v.shape) == tuple(got.shape)
                     and torch.allclose(got.to(v.dtype), v, rtol=1e-9, atol=1e-9)),
                    "position p is the sum over taps i of weight[:, :, i] @ x[:, :, p - (k - 1 - i) * dilation], zero before the start")
        raise Wrong(f"{shown}: the right shape with the wrong values (largest difference "
                    f"{(got.to(want.dtype) - want).abs().max().item():.3g})", hint)
    return f"equal to F.conv1d on the left-padded input in {len(CONV_CASES)} fresh cases (kernel sizes 1 to 4, dilations 1 to 4)"


@exercise('15.4', 'predict: a 4-level tree as convolutions', kind='predict')
def check_conv_view(answer):
    expected = {'dilations of the 4 convolutions, level 1 first': lambda v: list(v) == [1, 2, 4, 8] if isinstance(v, (list, tuple)) else False,
                "'.' tokens to add on the left of '.' + name": lambda v: v == 15,
                'level-2 nodes shared by the trees of positions j and j + 4': lambda v: v == 3,
                'hidden nodes computed per prediction, window by window': lambda v: v == 15,
                'hidden nodes computed per prediction, as convolutions over a long name': lambda v: v == 4}
    hints = {'dilations of the 4 convolutions, level 1 first': "level k merges two nodes that each cover 2^(k-1) characters: how far apart are they?",
             "'.' tokens to add on the left of '.' + name": "each convolution shortens the sequence by its dilation",
             'level-2 nodes shared by the trees of positions j and j + 4': "a level-2 node covers 4 characters and the tree of a position has 4 of them, ending at j - 12, j - 8, j - 4, j",
             'hidden nodes computed per prediction, window by window': "a 16-character window: 8 + 4 + ... nodes",
             'hidden nodes computed per prediction, as convolutions over a long name': "each level computes one node per position, once"}
    return check_predictions(answer, expected, hints, "right") + (
        ". In general a tree of n levels costs 2^n - 1 hidden nodes per prediction window by window and n as convolutions: "
        "WaveNet's stacks of 10 dilations (1 to 512) would cost 1,023 against 10")
