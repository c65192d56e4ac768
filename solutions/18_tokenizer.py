# Reference solutions for the exercises of nbs/18_tokenizer.ipynb.
# Each `# %% exercise ID` section replaces that exercise's starter cell (`run_notebook.py --solutions`).
# Try the exercise first: the check under it tells you what is wrong without giving the answer away.

# %% exercise 18.1
token_facts = {
    'UTF-8 bytes of "naïve 日本 😀"': 18,                                   # 4 ASCII + ï (2), 2 spaces, 2 x 3, 4
    'tokens of "日本" with a byte-level tokenizer that has no merges': 6,      # 3 bytes per character
    'ids in a vocabulary of 1,000 merges and 2 special tokens': 1258,         # 256 bytes + 1,000 merges + 2
    'the most tokens a text of 100 characters can need, with any byte-level BPE tokenizer': 400,   # 4 bytes per character at most
    'tokens of "aaaaaaaa" (8 a) after the merges (a, a) -> 256 and (256, 256) -> 257': 2,   # 8 -> 4 x 256 -> 2 x 257
    'merges needed, at the least, for "hello" to become one token': 4,       # every merge makes two tokens one
}

# %% exercise 18.2
def merge_pair(ids, pair, new_id):
    "`ids` with every occurrence of `pair`, from the left and without overlaps, replaced by `new_id` (a new list)."
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2                # both ids of the pair are used up
        else:
            out.append(ids[i])
            i += 1
    return out

# %% exercise 18.3
def merge_that_makes(tok, s):
    "(k, left bytes, right bytes) of the merge whose token is `s`; None if there is none."
    target = s.encode('utf-8')
    for k, (a, b) in enumerate(tok.merges):
        if tok.vocab[256 + k] == target:          # merge k made token 256 + k
            return k, tok.vocab[a], tok.vocab[b]
    return None

# %% exercise 18.4
def encode_documents(tok, docs):
    "The ids of every document of `docs`, each followed by the id of <|endoftext|>."
    eot = tok.special['<|endoftext|>']
    ids = []
    for doc in docs:
        ids += tok.encode(doc, disallowed_special=())   # a literal <|endoftext|> in a document is text
        ids.append(eot)
    return ids
