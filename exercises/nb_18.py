"Checks for the exercises of 18_tokenizer: bytes and tokens, one merge, the merge that makes a token, documents and <|endoftext|>."
import random

from exercises import NotAttempted, Wrong, check_predictions, exercise


def whole(n):
    "A test for a predicted count: the whole number `n` (an int, or a float equal to it; not a bool)."
    return lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v == n


# ---- 18.1: bytes and tokens ----

@exercise('18.1', 'predict: bytes, tokens and vocabulary sizes', kind='predict')
def check_token_facts(answer):
    expected = {'UTF-8 bytes of "naïve 日本 😀"': whole(len("naïve 日本 😀".encode('utf-8'))),
                'tokens of "日本" with a byte-level tokenizer that has no merges': whole(len('日本'.encode('utf-8'))),
                'ids in a vocabulary of 1,000 merges and 2 special tokens': whole(256 + 1000 + 2),
                'the most tokens a text of 100 characters can need, with any byte-level BPE tokenizer': whole(4 * 100),
                'tokens of "aaaaaaaa" (8 a) after the merges (a, a) -> 256 and (256, 256) -> 257': whole(2),
                'merges needed, at the least, for "hello" to become one token': whole(len('hello') - 1)}
    hints = {'UTF-8 bytes of "naïve 日本 😀"': "count bytes, not characters: ASCII takes 1, ï 2, a CJK character 3, an emoji 4; the spaces count",
             'tokens of "日本" with a byte-level tokenizer that has no merges': "without merges every byte is a token of its own",
             'ids in a vocabulary of 1,000 merges and 2 special tokens': "the 256 byte tokens come first, then one token per merge, then the special ones",
             'the most tokens a text of 100 characters can need, with any byte-level BPE tokenizer':
                 "merges only shorten; the worst case is a text none of whose bytes merge, in the longest UTF-8 characters",
             'tokens of "aaaaaaaa" (8 a) after the merges (a, a) -> 256 and (256, 256) -> 257':
                 "apply the first merge everywhere (from the left, no overlaps), then the second to what it left",
             'merges needed, at the least, for "hello" to become one token': "each merge joins two tokens into one: count how many joins take 5 tokens to 1"}
    return check_predictions(answer, expected, hints, "what a byte-level BPE tokenizer gives")


# ---- 18.2: one merge ----

def reference_merge(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == tuple(pair): out.append(new_id); i += 2
        else: out.append(ids[i]); i += 1
    return out


def merge_cases():
    "Fresh (ids, pair, new_id) cases: runs of one id (overlaps), the pair at either end, no occurrence, an empty list."
    rng = random.Random(1818)
    cases = [([], (1, 2), 300), ([5, 5, 5], (5, 5), 256), ([1, 2], (1, 2), 257)]
    for _ in range(40):
        ids = [rng.randint(0, 3) for _ in range(rng.randint(1, 25))]
        pair = (rng.randint(0, 3), rng.randint(0, 3))
        cases.append((ids, pair, rng.randint(256, 400)))
    return cases


@exercise('18.2', 'merge_pair: one merge, from the left, without overlaps')
def check_merge_pair(merge_pair):
    for ids, pair, new_id in merge_cases():
        given = list(ids)
        got = merge_pair(given, pair, new_id)
        if got is Ellipsis or got is None: raise NotAttempted()
        want = reference_merge(ids, pair, new_id)
        shown = f"merge_pair({ids}, {pair}, {new_id})"
        if given != ids:
            raise Wrong(f"{shown} changed its input to {given}", "build a new list; the caller's ids must stay as they were")
        try: got = [int(i) for i in got]
        except (TypeError, ValueError): raise Wrong(f"{shown}: came back {type(got).__name__}; expected a list of ids") from None
        if got == want: continue
        brief = f"{shown}: came back {got}; expected {want}"
        if len(got) == len(want) - 1 and got == want[:-1]:
            raise Wrong(brief, "the last id is kept too when it does not start a pair")
        if len(got) > len(want) and pair[0] == pair[1]:
            raise Wrong(brief, "after a match, skip both ids of the pair: a run a a a holds one pair to merge, then a lone a")
        raise Wrong(brief, "walk from the left: where ids[i], ids[i + 1] is the pair, write new_id and move on by two; else copy ids[i] and move on by one")
    return f"the merged lists, on {len(merge_cases())} fresh cases (runs of one id, pairs at either end, no occurrence)"


# ---- 18.3: the merge that makes a token ----

def random_tokenizer(seed, vocab=300, special=()):
    "A tokenizer trained on a random text of words from a small ASCII alphabet (fresh for every seed)."
    from exp.nb_18 import BPETokenizer
    rng = random.Random(seed)
    words = [''.join(rng.choice('abcde') for _ in range(rng.randint(1, 6))) for _ in range(30)]
    text = ' '.join(rng.choice(words) for _ in range(600))
    return BPETokenizer.train(text, vocab, special_tokens=special)


def reference_merge_that_makes(tok, s):
    data = s.encode('utf-8')
    for k, (a, b) in enumerate(tok.merges):
        if tok.vocab[256 + k] == data: return k, tok.vocab[a], tok.vocab[b]
    return None


@exercise('18.3', 'merge_that_makes: the merge behind a token')
def check_merge_that_makes(merge_that_makes, notebook_tok=None):
    cases = []
    for seed in (31, 32):
        tok = random_tokenizer(seed)
        strings = [tok.vocab[i].decode('utf-8') for i in range(256, len(tok.vocab), 5)] + ['a', 'zzzz', '']
        cases += [(tok, s, f"a tokenizer trained on random words (seed {seed})") for s in strings]
    if notebook_tok is not None: cases += [(notebook_tok, s, "the notebook's tokenizer") for s in (' the', 'the', ' King')]
    for tok, s, where in cases:
        got = merge_that_makes(tok, s)
        if got is Ellipsis: raise NotAttempted()
        want = reference_merge_that_makes(tok, s)
        if got == want or (want is not None and isinstance(got, (tuple, list)) and tuple(got) == want): continue
        brief = f"{where}, s={s!r}: came back {got!r}; expected {'None' if want is None else 'a merge'}"
        if want is None:
            raise Wrong(brief, "only a token made by a merge counts: a single byte, or a string that is no token, gives None")
        if got is None: raise Wrong(brief, "compare the UTF-8 bytes of s with tok.vocab[256 + k], the token merge k made")
        if isinstance(got, (tuple, list)) and len(got) == 3:
            k, left, right = got
            if k == want[0] + 256: raise Wrong(brief, "k is the merge's position in tok.merges; the token's id is 256 + k")
            if (left, right) == tok.merges[want[0]]:
                raise Wrong(brief, "left and right are the bytes of the two tokens (tok.vocab[a]), not their ids")
        raise Wrong(brief, "return (k, left, right): the position of the merge in tok.merges, and the bytes of its two tokens")
    return f"the merge (or None) for {len(cases)} strings, on tokenizers trained on random text and the notebook's"


# ---- 18.4: documents and <|endoftext|> ----

EOT = '<|endoftext|>'


def document_cases():
    rng = random.Random(1884)
    cases = []
    for seed in (41, 42):
        tok = random_tokenizer(seed, special=(EOT,))
        for n in (0, 1, 3, 5):
            docs = [' '.join(''.join(rng.choice('abcde ') for _ in range(rng.randint(0, 8))) for _ in range(rng.randint(1, 4)))
                    for _ in range(n)]
            if n >= 3: docs[1] = docs[1] + EOT + 'cab'   # somebody wrote the string: plain text, not the special id
            cases.append((tok, docs))
    return cases


@exercise('18.4', 'encode_documents: a stream of documents separated by <|endoftext|>')
def check_encode_documents(encode_documents):
    from exp.nb_16 import InputError
    for tok, docs in document_cases():
        eot = tok.special[EOT]
        want = [i for d in docs for i in tok.encode(d, disallowed_special=()) + [eot]]
        brief_in = f"docs={docs!r}"
        try: got = encode_documents(tok, list(docs))
        except InputError as e:
            raise Wrong(f"{brief_in}: raised {e}", "a document that holds the string <|endoftext|> is text: tell encode to treat "
                                                   "special tokens in it as plain text") from None
        if got is Ellipsis or got is None: raise NotAttempted()
        try: got = [int(i) for i in got]
        except (TypeError, ValueError): raise Wrong(f"{brief_in}: came back {type(got).__name__}; expected a list of ids") from None
        if got == want: continue
        brief = f"{brief_in}: came back {len(got)} ids ({got.count(eot)} of them <|endoftext|>); expected {len(want)} ({len(docs)})"
        if got.count(eot) > len(docs):
            raise Wrong(brief, "the string <|endoftext|> inside a document became the special id: encode the documents with "
                               "special tokens as plain text, and add the separator's id yourself")
        if got == want[:-1]: raise Wrong(brief, "every document is followed by <|endoftext|>, the last one too")
        if got.count(eot) < len(docs):
            raise Wrong(brief, "the separator must be the special token's one id (tok.special), not its text")
        raise Wrong(brief, "encode each document on its own, then append the id of <|endoftext|>")
    return f"the stream of ids for {len(document_cases())} fresh lists of documents (empty, one, several, a literal <|endoftext|>)"
