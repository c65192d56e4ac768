# Reference solutions for the exercises of nbs/16_gpt.ipynb.
# Each `# %% exercise ID` section replaces that exercise's starter cell (`run_notebook.py --solutions`).
# Try the exercise first: the check under it tells you what is wrong without giving the answer away.

# %% exercise 16.1
# Per block: two LayerNorms 2 * (2 * 48); query, key and value 3 * 48 * 48 (no biases); the projection 48 * 48 + 48;
# the feed-forward layer 48 * 192 + 192 + 192 * 48 + 48. In all 12 * 48 ** 2 + 10 * 48 = 28,128.
# Once: the token table 65 * 48, the position table 32 * 48, the final LayerNorm 2 * 48, the output layer 48 * 65 + 65.
per_block = 12 * 48 ** 2 + 10 * 48
once = 65 * 48 + 32 * 48 + 2 * 48 + 48 * 65 + 65
param_predictions = {
    'GPT(GPTConfig(vocab_size=65, block_size=32, n_layer=3, n_head=4, n_embd=48))': once + 3 * per_block,
    'the same with n_head=8': once + 3 * per_block,            # more, smaller heads: the same three matrices
    'the same with block_size=64': once + 32 * 48 + 3 * per_block,
    'the same with n_layer=6': once + 6 * per_block,
}

# %% exercise 16.2
def one_head(x, w_query, w_key, w_value):
    "Causal self-attention of one head: (B, T, C) and three (C, H) weights -> (B, T, H)."
    q, k, v = x @ w_query, x @ w_key, x @ w_value                   # (B, T, H) each
    T, H = x.shape[-2], q.shape[-1]
    wei = q @ k.transpose(-2, -1) * H ** -0.5                        # (B, T, T) affinities, variance about 1
    future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
    wei = wei.masked_fill(future, float('-inf')).softmax(-1)        # row t: weights over positions 1..t
    return wei @ v

# %% exercise 16.3
def top_k_filter(logits, k):
    "Logits (..., V) with all but the k largest of each row set to -inf (nothing removed if k >= V)."
    kth = logits.topk(min(k, logits.size(-1)), dim=-1).values[..., -1:]   # each row's k-th largest
    return logits.masked_fill(logits < kth, float('-inf'))

# %% exercise 16.4
which_change = {
    'rows whose logits change': [2],                                  # nothing mixes the sequences of a batch
    'positions of row 2 whose logits change': [5, 6, 7],              # the change and the positions after it
    'rows whose logits change, with batch norm instead of LayerNorm': [0, 1, 2, 3],
    'positions of row 0 whose logits change, with batch norm instead of LayerNorm': [0, 1, 2, 3, 4, 5, 6, 7],
}
