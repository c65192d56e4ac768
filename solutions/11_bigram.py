# Reference solutions for the exercises of nbs/11_bigram.ipynb.
# Each `# %% exercise ID` section replaces that exercise's starter cell (`run_notebook.py --solutions`).
# Try the exercise first: the check under it tells you what is wrong without giving the answer away.

# %% exercise 11.1
predictions = {
    'trigrams in names.txt': 228_146,    # one per character plus one end per name: as many as bigrams
    'trigram NLL on the training names below the bigram 2.4546': True,
}

# %% exercise 11.2
def trigram_tokens(words, stoi):
    "Every trigram of `words` as a row of three tokens, each word padded as '..word.'."
    rows = []
    for w in words:
        tokens = [stoi['.'], stoi['.']] + encode_word(w, stoi) + [stoi['.']]
        rows += zip(tokens, tokens[1:], tokens[2:])
    return torch.tensor(rows)

def trigram_counts(words, stoi):
    "N[a, b, c] = how many times token c follows the tokens a, b."
    v = len(stoi)
    a, b, c = trigram_tokens(words, stoi).T
    return torch.bincount((a * v + b) * v + c, minlength=v ** 3).view(v, v, v)   # one bincount, as bigram_counts does

# %% exercise 11.3
def trigram_nll(words, N, stoi, smoothing=1):
    "Mean negative log-likelihood per trigram of `words` under the counts `N` plus `smoothing` per cell."
    P = (N + smoothing).double()
    P = P / P.sum(2, keepdim=True)                    # a distribution over the third character, per context
    a, b, c = trigram_tokens(words, stoi).T
    return -P[a, b, c].log().mean().item()

# %% exercise 11.4
import random
shuffled = words[:]
random.Random(42).shuffle(shuffled)                   # notebook 12's split: 80% train, 10% dev, 10% test
n1, n2 = int(0.8 * len(shuffled)), int(0.9 * len(shuffled))
train_words, dev_words = shuffled[:n1], shuffled[n1:n2]
N3_train = trigram_counts(train_words, stoi)
dev_nll = {s: trigram_nll(dev_words, N3_train, stoi, s) for s in [0.01, 0.03, 0.1, 0.2, 0.3, 0.5, 1, 3, 10]}
smoothing = min(dev_nll, key=dev_nll.get)             # chosen on dev; the check reports test once
print({s: round(v, 4) for s, v in dev_nll.items()})

# %% exercise 11.5
def bigram_loss(W, xs, ys):
    "The neural bigram's loss: rows of W are the logits; F.cross_entropy does softmax and NLL in one step."
    return F.cross_entropy(W[xs], ys) + 0.01 * (W ** 2).mean()
