# Reference solutions for the exercises of nbs/12_mlp_lm.ipynb.
# Each `# %% exercise ID` section replaces that exercise's starter cell (`run_notebook.py --solutions`).
# Try the exercise first: the check under it tells you what is wrong without giving the answer away.

# %% exercise 12.1
predictions = {
    'loss when every one of the 27 tokens gets the same probability': 3.2958,        # -ln(1/27) = ln 27
    'loss before training if W2 and b2 were all zeros (C, W1, b1 random)': 3.2958,   # every logit 0: uniform, whatever h is
    'parameters of init_mlp_lm(block_size=4, n_embd=5, n_hidden=50)': 2_562,        # 27*5 + 20*50 + 50 + 50*27 + 27
    "examples that build_dataset(['anna', 'bo'], 5, stoi) gives": 8,                # (4 + 1) + (2 + 1): the block size only widens X
}

# %% exercise 12.2
def contexts_and_targets(words, block_size, stoi):
    "(X, Y) as build_dataset makes them, each word's windows taken with Tensor.unfold."
    windows = []
    for w in words:
        tokens = torch.tensor([stoi['.']] * block_size + encode_word(w, stoi) + [stoi['.']])
        windows.append(tokens.unfold(0, block_size + 1, 1))   # every run of block_size + 1 tokens: a view, no copy
    windows = torch.cat(windows)
    return windows[:, :-1], windows[:, -1]                    # the context, then the token that follows it

# %% exercise 12.3
from collections import Counter

def loss_floor(X, Y):
    "The lowest mean cross-entropy any model that sees only the contexts X can reach on the labels Y."
    followers = {}                                            # context -> how often each label follows it
    for x, y in zip(X.view(len(X), -1).tolist(), Y.tolist()):
        followers.setdefault(tuple(x), Counter())[y] += 1
    total = 0.0
    for counts in followers.values():
        n = sum(counts.values())
        total += sum(-k * math.log(k / n) for k in counts.values())   # k examples, each given probability k / n
    return total / len(Y)

# %% exercise 12.4
g = torch.Generator().manual_seed(2147483647)
my_params = init_mlp_lm(generator=g)
with torch.no_grad():
    my_params[3] *= 0.1                                       # W2 small and b2 zero: the first loss is near ln 27,
    my_params[4].zero_()                                      # not 26, and no steps go into undoing the start
my_steps = pick(30_000, QUICK_ITERS)
my_losses, _ = train_lm(lambda X: mlp_lm_logits(my_params, X), my_params, Xtr, Ytr, my_steps,
                        lambda step: 0.1 if step < my_steps * 2 // 3 else 0.01, generator=g)   # the notebook's schedule otherwise
