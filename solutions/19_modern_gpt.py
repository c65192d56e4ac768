# Reference solutions for the exercises of nbs/19_modern_gpt.ipynb.
# Each `# %% exercise ID` section replaces that exercise's starter cell (`run_notebook.py --solutions`).
# Try the exercise first: the check under it tells you what is wrong without giving the answer away.

# %% exercise 19.1
def rotate_pair(x1, x2, position, theta):
    "The pair (x1, x2) rotated by the angle position * theta: a pair of tensors."
    angle = position * theta                        # pair i of a head turns by theta_i per position
    cos, sin = math.cos(angle), math.sin(angle)
    return x1 * cos - x2 * sin, x1 * sin + x2 * cos   # (x1 + i x2) * (cos + i sin)

# %% exercise 19.2
# RoPE's score depends on q, k and m - n (here 3). Shifting both positions keeps m - n; moving one, swapping them
# (m - n = -3) or doubling them (m - n = 6) changes it; scaling q and k scales the dot product by 9.
score_changes = {
    'both positions + 7 (m = 12, n = 9)': 'same',
    'both positions + 1,000': 'same',
    'the query one position later (m = 6, n = 2)': 'changes',
    'the positions swapped (m = 2, n = 5)': 'changes',
    'both positions doubled (m = 10, n = 4)': 'changes',
    'q and k both multiplied by 3, positions as they were': 'changes',
}

# %% exercise 19.3
def ns_step(X, a, b, c):
    "One Newton-Schulz step: A = X X^T, then a X + (b A + c A A) X."
    A = X @ X.T                                     # rows x rows: the small Gram matrix of a wide X
    return a * X + (b * A + c * A @ A) @ X          # each singular value s becomes a s + b s^3 + c s^5

# %% exercise 19.4
# head_size = 128 / 4 = 32. The prompt: 10 positions; 5 more characters read: 15; 110 read, but the rolling cache
# keeps the last block_size = 64. Then keys and values in 4 layers: 2 * 4 * (2 * 4 * 64 * 32) = 131,072 numbers.
cache_shapes = {
    "one layer's cached keys after the prompt (B, n_head, positions, head_size)": (2, 4, 10, 32),
    "one layer's cached keys once the model has read the prompt and 5 more characters": (2, 4, 15, 32),
    "one layer's cached keys once it has read the prompt and 100 more characters (rolling cache)": (2, 4, 64, 32),
    'numbers held by all caches (keys and values, every layer) at that point': 2 * 4 * 2 * 4 * 64 * 32,
}
