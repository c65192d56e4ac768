"""Checks for the exercises of 16_gpt: the parameters of a GPT (16.1), one head of causal self-attention (16.2), the
top-k filter of sampling (16.3) and which logits move when one token of a batch changes (16.4)."""
import torch
import torch.nn.functional as F
from torch import nn

from exercises import NotAttempted, Wrong, check_predictions, code_of, exercise

BASE = dict(vocab_size=65, block_size=32, n_layer=3, n_head=4, n_embd=48)
SIZE_KEYS = {'GPT(GPTConfig(vocab_size=65, block_size=32, n_layer=3, n_head=4, n_embd=48))': {},
             'the same with n_head=8': dict(n_head=8),
             'the same with block_size=64': dict(block_size=64),
             'the same with n_layer=6': dict(n_layer=6)}


def gpt_size(**changes):
    "The true parameter count of the GPT of BASE with `changes`, from the model itself."
    from exp.nb_16 import GPT, GPTConfig, count_params
    return count_params(GPT(GPTConfig(**(BASE | changes))))


def size_slips(vocab_size, block_size, n_layer, n_head, n_embd):
    "{the difference a usual slip makes to the count: its hint}, for one configuration."
    V, T, L, C = vocab_size, block_size, n_layer, n_embd
    return {3 * C * L: "the query, key and value layers have no bias (bias=False)",
            -2 * C * (2 * L + 1): "every LayerNorm has a gain and a shift for each of the n_embd features: two per block, one at the end",
            -T * C: "there are two embedding tables: the tokens' and the positions' (block_size rows of n_embd)",
            -V: "the output layer has a bias, one per character of the vocabulary",
            -V * C: "our output layer has weights of its own (nanoGPT ties them to the token table; this GPT does not)",
            -(6 * C * C + 3 * C) * L: "the feed-forward layer is 4 x n_embd wide inside: n_embd -> 4 n_embd -> n_embd, with biases",
            -(C * C + C) * L: "each attention layer ends with a projection back to n_embd, with a bias"}


@exercise('16.1', 'predict: the parameters of a GPT', kind='predict')
def check_gpt_sizes(answer):
    truth = {key: gpt_size(**changes) for key, changes in SIZE_KEYS.items()}
    base_key, heads_key, block_key, layers_key = SIZE_KEYS
    hints = {}
    for key, changes in SIZE_KEYS.items():
        given = answer.get(key) if isinstance(answer, dict) else None
        slips = size_slips(**(BASE | changes))
        hint = (slips.get(given - truth[key]) if isinstance(given, int) else None) or \
               "count layer by layer: two tables, then per block 2 LayerNorms, q/k/v without bias, a projection and the feed-forward, then a LayerNorm and the output layer"
        hints[key] = hint
    if isinstance(answer, dict) and isinstance(answer.get(heads_key), int) and answer[heads_key] != truth[heads_key]:
        hints[heads_key] = "heads split n_embd between them: 8 heads of 6 use the same three (n_embd x n_embd) matrices as 4 heads of 12"
    if isinstance(answer, dict) and answer.get(block_key) == truth[base_key]:
        hints[block_key] = "block_size is the number of rows of the position table: one row per position a window can have"
    if isinstance(answer, dict) and isinstance(answer.get(layers_key), int) and answer[layers_key] == 2 * truth[base_key]:
        hints[layers_key] = "each block adds the same count, but the embeddings, the final LayerNorm and the output layer are there once"
    expected = {k: (lambda v, k=k: isinstance(v, int) and not isinstance(v, bool) and v == truth[k]) for k in truth}
    message = check_predictions(answer, expected, hints, "the count")
    block = truth[layers_key] - truth[base_key]
    return (f"{message}. A block of n_embd 48 holds 12 x 48^2 + 10 x 48 = {block // 3:,} parameters; the number of heads "
            f"changes none of them, and the context length only the position table")


FORBIDDEN = ('scaled_dot_product_attention', 'causal_attention', 'MultiheadAttention', 'multi_head_attention')
HEAD_CASES = [(2, 5, 8, 4), (1, 1, 6, 3), (3, 7, 4, 4), (2, 9, 12, 5), (1, 16, 8, 16), (4, 3, 10, 2), (2, 12, 6, 6)]   # B, T, C, H


def head_variants(q, k, v, C):
    "(hint, output) for the usual wrong versions of one head."
    T, H = q.shape[-2], q.shape[-1]
    past = torch.ones(T, T, dtype=torch.bool).triu()                    # keys i >= t: the future and itself
    by_rows = (q @ k.transpose(-2, -1) * H ** -0.5).masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float('-inf'))
    return [("scale by the head size H, the size of q and k, not by C (the lecture's known bug)",
             F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=C ** -0.5)),
            ("divide the affinities by sqrt(H) before the softmax", F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.)),
            ("hide the future: position t may attend to positions 1..t only (a mask above the diagonal, -inf before the softmax)",
             F.scaled_dot_product_attention(q, k, v)),
            ("the mask hides the future, the positions after t: it is True above the diagonal (triu(1)), not below it",
             F.scaled_dot_product_attention(q, k, v, attn_mask=past)),
            ("softmax over the last dimension: each query's weights over the keys sum to 1",
             by_rows.softmax(-2).nan_to_num() @ v)]


@exercise('16.2', 'one head of causal self-attention')
def check_one_head(one_head):
    code = code_of(one_head)
    if any(name in code for name in FORBIDDEN):
        raise Wrong("your function calls a library attention (or this notebook's causal_attention)",
                    "write it from matrix products: q k^T, a mask, a softmax, and the weights times v")
    g = torch.Generator().manual_seed(162)
    for B, T, C, H in HEAD_CASES:
        x = torch.randn(B, T, C, generator=g, dtype=torch.float64)
        wq, wk, wv = (torch.randn(C, H, generator=g, dtype=torch.float64) / C ** 0.5 for _ in range(3))
        got = one_head(x, wq, wk, wv)
        if got is Ellipsis or got is None: raise NotAttempted()
        q, k, v = x @ wq, x @ wk, x @ wv
        want = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        shown = f"x of shape {(B, T, C)}, weights of shape {(C, H)}"
        if isinstance(got, tuple):
            raise Wrong(f"{shown}: came back with a tuple of {len(got)}", "return the output alone, a tensor of shape (B, T, H)")
        if not torch.is_tensor(got) or tuple(got.shape) != (B, T, H):
            raise Wrong(f"{shown}: came back with shape {tuple(got.shape) if torch.is_tensor(got) else type(got).__name__}; "
                        f"expected {(B, T, H)}", "the weights (B, T, T) times the values (B, T, H)")
        if torch.allclose(got.to(want.dtype), want, rtol=1e-7, atol=1e-9): continue
        hint = next((h for h, wrong in head_variants(q, k, v, C) if torch.allclose(got.to(wrong.dtype), wrong, rtol=1e-7, atol=1e-9)),
                    "q = x @ w_query, k = x @ w_key, v = x @ w_value; weights = softmax(q k^T / sqrt(H), future masked out); out = weights @ v")
        raise Wrong(f"{shown}: the right shape with the wrong values (largest difference "
                    f"{(got.to(want.dtype) - want).abs().max().item():.3g})", hint)
    return (f"equal to F.scaled_dot_product_attention(is_causal=True) on {len(HEAD_CASES)} fresh shapes, "
            f"T = 1 and head sizes other than C included")


TOPK_CASES = [((10,), 3), ((4, 10), 1), ((4, 10), 9), ((2, 3, 65), 10), ((3, 7), 7), ((2, 5), 8), ((1, 65), 64), ((6, 12), 4)]


def reference_top_k(logits, k):
    kth = logits.topk(min(k, logits.size(-1)), dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float('-inf'))


@exercise('16.3', 'top-k filtering')
def check_top_k(top_k_filter):
    g = torch.Generator().manual_seed(163)
    for shape, k in TOPK_CASES:
        logits = torch.randn(shape, generator=g) * 2
        before = logits.clone()
        shown = f"logits of shape {shape}, k={k}"
        try: got = top_k_filter(logits, k)
        except NotImplementedError: raise
        except Exception as e:
            hint = ("k may be larger than the vocabulary: then nothing is removed (topk needs min(k, V))" if k > shape[-1]
                    else "read the error: which line raised it, and with what shapes?")
            raise Wrong(f"{shown}: your function raised {type(e).__name__}: {str(e).splitlines()[0]}", hint) from None
        if got is Ellipsis or got is None: raise NotAttempted()
        if not torch.equal(logits, before):
            raise Wrong(f"{shown}: your function changed the logits it was given",
                        "leave the input as it is: build a new tensor (masked_fill, not masked_fill_)")
        want = reference_top_k(before, k)
        if not torch.is_tensor(got) or got.shape != want.shape:
            raise Wrong(f"{shown}: came back with shape {tuple(got.shape) if torch.is_tensor(got) else type(got).__name__}; "
                        f"expected {tuple(want.shape)}", "the same shape as the logits: the k largest stay in their places")
        if torch.equal(got, want): continue
        kept, removed = torch.isfinite(got).sum(-1), torch.isneginf(want)
        if torch.equal(got[~removed], want[~removed]) and not torch.isneginf(got[removed]).any():   # none removed is -inf
            hint = ("a logit of 0 still gets probability after the softmax: the removed entries must be -inf"
                    if (got[removed] == 0).all() else
                    "the removed entries must be -inf (float('-inf')), so that softmax gives them probability exactly 0")
        elif logits.dim() > 1 and torch.equal(got, reference_top_k(before.movedim(0, -1), k).movedim(-1, 0)):
            hint = "each row is the last dimension (one distribution over the vocabulary): take the k largest along dim -1"
        elif (kept != min(k, shape[-1])).any():
            hint = f"keep exactly k entries in each row (here {min(k, shape[-1])}); yours keeps {sorted(set(kept.flatten().tolist()))}"
        else:
            hint = "keep the k largest logits of each row, with their values, and set every other entry to -inf"
        raise Wrong(f"{shown}: the right shape with the wrong values", hint)
    return f"equal to the reference on {len(TOPK_CASES)} fresh cases (k = 1, k = V - 1, k = V and k > V included), the input left unchanged"


ROWS, POSITIONS = 'rows whose logits change', 'positions of row 2 whose logits change'
BN_ROWS, BN_POSITIONS = ('rows whose logits change, with batch norm instead of LayerNorm',
                         'positions of row 0 whose logits change, with batch norm instead of LayerNorm')


class TokenBatchNorm(nn.Module):
    "Batch norm over every token of a (B, T, C) batch: statistics over B * T, in training mode."
    def __init__(self, n_embd):
        super().__init__()
        self.bn = nn.BatchNorm1d(n_embd)
    def forward(self, x): return self.bn(x.reshape(-1, x.size(-1))).view(x.shape)


def changed_logits(seed=16, batch_norm=False):
    "{(row, position) whose logits move} when token (2, 5) of a batch of 4 x 8 changes, in a real GPT."
    from exp.nb_16 import GPT, GPTConfig
    torch.manual_seed(seed)
    gpt = GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=0.)).double().eval()
    with torch.no_grad():
        for p in gpt.parameters(): p.add_(torch.randn_like(p) * 0.1)
    if batch_norm:
        for blk in gpt.blocks: blk.ln1, blk.ln2 = TokenBatchNorm(16).double(), TokenBatchNorm(16).double()
        gpt.ln_f = TokenBatchNorm(16).double()
        gpt.train()                                               # batch statistics (dropout is 0)
    idx = torch.randint(20, (4, 8))
    other = idx.clone()
    other[2, 5] = (idx[2, 5] + 7) % 20
    with torch.no_grad(): moved = (gpt(idx)[0] - gpt(other)[0]).abs().amax(-1) > 1e-9
    return {tuple(rc) for rc in moved.nonzero().tolist()}


@exercise('16.4', 'predict: which logits move', kind='predict')
def check_which_change(answer):
    plain, coupled = changed_logits(), changed_logits(batch_norm=True)
    truth = {ROWS: sorted({r for r, _ in plain}), POSITIONS: sorted(t for r, t in plain if r == 2),
             BN_ROWS: sorted({r for r, _ in coupled}), BN_POSITIONS: sorted(t for r, t in coupled if r == 0)}
    as_list = lambda v: [int(i) for i in v] if isinstance(v, (list, tuple)) and all(isinstance(i, int) and not isinstance(i, bool) for i in v) else None
    expected = {k: (lambda v, k=k: as_list(v) == truth[k]) for k in truth}
    given = answer if isinstance(answer, dict) else {}
    positions = as_list(given.get(POSITIONS)) or []
    hints = {ROWS: "attention mixes the positions of one sequence, and LayerNorm works on one token: nothing mixes the rows of a batch",
             POSITIONS: ("the mask hides the future: positions before 5 cannot see position 5" if any(p < 5 for p in positions) else
                         "positions 6 and 7 attend to position 5: what they read has changed"),
             BN_ROWS: "batch norm takes its mean and variance over every token of the batch: one changed token moves them for all",
             BN_POSITIONS: "the batch statistics are shared by all 4 x 8 tokens, whatever their position"}
    return check_predictions(answer, expected, hints, "right") + (
        ". With LayerNorm a sequence's logits depend on that sequence alone, and only from the change on; "
        "batch norm would tie every token of the batch to every other, which is why the transformer does not use it")
