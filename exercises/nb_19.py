"""Checks for the exercises of 19_modern_gpt: one RoPE rotation (19.1), which attention scores RoPE leaves unchanged
(19.2), one Newton-Schulz step (19.3) and the shapes of a key/value cache (19.4)."""
import math

import torch

from exercises import NotAttempted, Wrong, check_predictions, code_of, exercise

ROTATE_CASES = [((5,), 0, 1.), ((3, 4), 1, 0.5), ((2, 8), 7, 0.01), ((6,), 1000, 1e-3), ((4,), 3, 2.5), ((2, 3), 12, 0.3)]


def rotated(x1, x2, angle):
    "The pair turned counter-clockwise by `angle`, through complex multiplication."
    z = torch.complex(x1, x2) * complex(math.cos(angle), math.sin(angle))
    return z.real, z.imag


@exercise('19.1', 'rotate one pair as RoPE does')
def check_rotate_pair(rotate_pair):
    if any(name in code_of(rotate_pair) for name in ('apply_rope', 'rope_angles')):
        raise Wrong("your function calls the notebook's apply_rope or rope_angles", "write the rotation with cos and sin of the angle")
    g = torch.Generator().manual_seed(191)
    for shape, position, theta in ROTATE_CASES:
        x1, x2 = (torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(2))
        shown = f"a pair of shape {shape}, position {position}, theta {theta}"
        got = rotate_pair(x1.clone(), x2.clone(), position, theta)
        if got is Ellipsis or got is None: raise NotAttempted()
        if not (isinstance(got, (tuple, list)) and len(got) == 2 and all(torch.is_tensor(t) and t.shape == x1.shape for t in got)):
            raise Wrong(f"{shown}: came back with {type(got).__name__}", "return the pair: two tensors of the shape of x1")
        want = rotated(x1, x2, position * theta)
        if all(torch.allclose(a, b, rtol=1e-9, atol=1e-9) for a, b in zip(got, want)): continue
        wrong = {"the angle grows with the position: position * theta, not theta": rotated(x1, x2, theta),
                 "turn counter-clockwise: (x1 cos - x2 sin, x1 sin + x2 cos), the product with exp(i angle)": rotated(x1, x2, -position * theta),
                 "the first of the pair is x1 cos - x2 sin, the second x1 sin + x2 cos: in that order": rotated(x1, x2, position * theta)[::-1]}
        hint = next((h for h, w in wrong.items() if all(torch.allclose(a, b, rtol=1e-9, atol=1e-9) for a, b in zip(got, w))),
                    "read the pair as the complex number x1 + i x2 and multiply it by cos(angle) + i sin(angle)")
        raise Wrong(f"{shown}: the wrong pair (largest difference "
                    f"{max((a - b).abs().max().item() for a, b in zip(got, want)):.3g})", hint)
    return f"equal to complex multiplication on {len(ROTATE_CASES)} fresh cases (position 0 and position 1,000 included)"


SCORE_KEYS = {'both positions + 7 (m = 12, n = 9)': (12, 9), 'both positions + 1,000': (1005, 1002),
              'the query one position later (m = 6, n = 2)': (6, 2), 'the positions swapped (m = 2, n = 5)': (2, 5),
              'both positions doubled (m = 10, n = 4)': (10, 4), 'q and k both multiplied by 3, positions as they were': (5, 2)}
SCORE_HINTS = {'both positions + 7 (m = 12, n = 9)': "the score depends on m - n only",
               'both positions + 1,000': "the score depends on m - n only, however large m and n are",
               'the query one position later (m = 6, n = 2)': "m - n is now 4, not 3",
               'the positions swapped (m = 2, n = 5)': "m - n is now -3: the rotation by -3 is not the rotation by 3 (sin is odd)",
               'both positions doubled (m = 10, n = 4)': "m - n doubles too",
               'q and k both multiplied by 3, positions as they were': "a rotation keeps lengths, and the score is a dot product: it scales with q and k"}


def rope_score(q, k, m, n):
    from exp.nb_19 import apply_rope, rope_angles
    cq, sq = rope_angles(q.size(-1), torch.tensor([m]))
    ck, sk = rope_angles(k.size(-1), torch.tensor([n]))
    return (apply_rope(q[None], cq, sq) @ apply_rope(k[None], ck, sk).T).item()


@exercise('19.2', 'predict: which scores RoPE keeps', kind='predict')
def check_score_changes(answer):
    g = torch.Generator().manual_seed(192)
    q, k = torch.randn(2, 16, generator=g, dtype=torch.float64)
    base = rope_score(q, k, 5, 2)
    truth = {}
    for key, (m, n) in SCORE_KEYS.items():
        s = rope_score(3 * q, 3 * k, m, n) if key.startswith('q and k') else rope_score(q, k, m, n)
        truth[key] = 'same' if abs(s - base) < 1e-9 * max(1., abs(base)) else 'changes'
    expected = {key: (lambda v, key=key: v == truth[key]) for key in truth}
    message = check_predictions(answer, expected, SCORE_HINTS, "'same' or 'changes' as RoPE computes it")
    return message + ". A score under RoPE is a function of the vectors and of m - n, nothing else"


NS_CASES = [(4, 4), (3, 8), (16, 64), (1, 5), (32, 128)]


@exercise('19.3', 'one Newton-Schulz step')
def check_ns_step(ns_step):
    from exp.nb_19 import NS5, NS_CUBIC
    if any(name in code_of(ns_step) for name in ('newton_schulz', 'svd', 'polar')):
        raise Wrong("your step calls newton_schulz or an SVD", "write the step from matrix products: A = X X^T, then the polynomial")
    g = torch.Generator().manual_seed(193)
    for rows, cols in NS_CASES:
        X = torch.randn(rows, cols, generator=g, dtype=torch.float64)
        X = X / X.norm()
        a, b, c = (torch.rand(3, generator=g, dtype=torch.float64) * 2 - 1).tolist()
        shown = f"X of shape {(rows, cols)}, (a, b, c) = ({a:.3f}, {b:.3f}, {c:.3f})"
        try: got = ns_step(X.clone(), a, b, c)
        except NotImplementedError: raise
        except Exception as e:
            raise Wrong(f"{shown}: your step raised {type(e).__name__}: {str(e).splitlines()[0]}",
                        "A = X X^T is rows x rows for a wide X, and the polynomial in A multiplies X from the left") from None
        if got is Ellipsis or got is None: raise NotAttempted()
        A = X @ X.T
        want = a * X + (b * A + c * A @ A) @ X
        if not torch.is_tensor(got) or got.shape != want.shape:
            raise Wrong(f"{shown}: came back with {tuple(got.shape) if torch.is_tensor(got) else type(got).__name__}",
                        "a step returns a matrix of X's shape")
        if torch.allclose(got, want, rtol=1e-9, atol=1e-12): continue
        At = X.T @ X
        wrong = {"A^2 is the matrix product A @ A, not A * A": a * X + (b * A + c * A * A) @ X,
                 "A = X X^T (rows x rows), not X^T X": a * X + (b * At + c * At @ At) @ X if rows == cols else None,
                 "the polynomial in A multiplies X from the left: (b A + c A A) @ X": a * X + X @ (b * A + c * A @ A) if rows == cols else None}
        hint = next((h for h, w in wrong.items() if w is not None and torch.allclose(got, w, rtol=1e-9, atol=1e-12)),
                    "a X + (b A + c A A) X with A = X X^T: three terms, X to the right of the products")
        raise Wrong(f"{shown}: the wrong matrix (largest difference {(got - want).abs().max().item():.3g})", hint)
    G = torch.randn(24, 96, generator=g, dtype=torch.float64)
    U, _, Vh = torch.linalg.svd(G, full_matrices=False)
    X = G / G.norm()
    for _ in range(40): X = ns_step(X, *NS_CUBIC)
    err = (X - U @ Vh).abs().max().item()
    X5 = G / G.norm()
    for _ in range(5): X5 = ns_step(X5, *NS5)
    s = torch.linalg.svdvals(X5)
    return (f"equal to the reference on {len(NS_CASES)} fresh matrices; 40 cubic steps reach U V^T within {err:.1e}, and 5 "
            f"quintic steps put the singular values in [{s.min():.2f}, {s.max():.2f}]")


CACHE_KEYS = ("one layer's cached keys after the prompt (B, n_head, positions, head_size)",
              "one layer's cached keys once the model has read the prompt and 5 more characters",
              "one layer's cached keys once it has read the prompt and 100 more characters (rolling cache)",
              'numbers held by all caches (keys and values, every layer) at that point')


def cache_truth():
    "The real shapes, from a ModernGPT with RoPE reading 2 prompts of 10 characters, then one character at a time."
    from exp.nb_19 import KVCache, ModernGPT, ModernGPTConfig
    torch.manual_seed(194)
    model = ModernGPT(ModernGPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0., pos='rope')).eval()
    caches = [KVCache() for _ in range(4)]
    shapes = []
    with torch.no_grad():
        model(torch.randint(65, (2, 10)), caches=caches, window=64)
        shapes.append(tuple(caches[0].k.shape))
        for t in range(10, 110):
            model(torch.randint(65, (2, 1)), caches=caches, start=t, window=64)
            if t == 14: shapes.append(tuple(caches[0].k.shape))
    shapes.append(tuple(caches[0].k.shape))
    return dict(zip(CACHE_KEYS, shapes + [sum(c.k.numel() + c.v.numel() for c in caches)]))


@exercise('19.4', 'predict: the shapes of a key/value cache', kind='predict')
def check_cache_shapes(answer):
    truth = cache_truth()
    as_shape = lambda v: tuple(v) if isinstance(v, (tuple, list, torch.Size)) and all(isinstance(i, int) for i in v) else None
    expected = {k: (lambda v, k=k: as_shape(v) == truth[k]) for k in CACHE_KEYS[:3]}
    expected[CACHE_KEYS[3]] = lambda v: isinstance(v, int) and not isinstance(v, bool) and v == truth[CACHE_KEYS[3]]
    given = answer if isinstance(answer, dict) else {}
    shape = as_shape(given.get(CACHE_KEYS[0])) or ()
    hints = {CACHE_KEYS[0]: ("head_size is n_embd / n_head" if len(shape) == 4 and shape[3] != 32 else
                             "one key per head per position read so far, for each sequence of the batch"),
             CACHE_KEYS[1]: "each character read adds one position to every layer's cache",
             CACHE_KEYS[2]: "a rolling cache keeps the last block_size positions, no more",
             CACHE_KEYS[3]: "keys and values, in every layer: 2 x n_layer x B x n_head x positions x head_size"}
    return check_predictions(answer, expected, hints, "the cache's") + (
        ". The cache grows by one position per character until it holds block_size, then stays that size")
