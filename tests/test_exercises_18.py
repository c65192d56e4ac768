"""The exercises of 18_tokenizer: each reference passes, each usual mistake fails with its hint, hard-coded answers fail
on fresh inputs, and the answers are not given away (test_exercises.py covers the layout, the reference solutions in
the notebook and the untouched starters)."""
import pytest

from conftest import correct
from exercises import run_check
from exercises.nb_18 import EOT, random_tokenizer
from test_exercises import failing, mutated, solved

STEM = '18_tokenizer'


# ---- 18.1: predictions ----

def test_18_1_wrong_predictions_fail_with_the_hint_for_that_mistake():
    right = solved(STEM, '18.1')['token_facts']
    correct(run_check('18.1', right))
    keys = list(right)
    for key, wrong, hint in [(keys[0], 11, 'count bytes, not characters'), (keys[0], 16, 'the spaces count'),
                             (keys[1], 2, 'every byte is a token'), (keys[2], 1002, 'the 256 byte tokens come first'),
                             (keys[2], 1257, 'then the special ones'), (keys[3], 100, 'longest UTF-8 characters'),
                             (keys[3], 300, 'longest UTF-8 characters'), (keys[4], 3, 'from the left, no overlaps'),
                             (keys[4], 4, 'then the second'), (keys[5], 5, 'each merge joins two tokens'),
                             (keys[5], True, 'each merge joins two tokens')]:
        r = failing(run_check('18.1', right | {key: wrong}), hint)
        assert str(right[key]) not in r.hint
    failing(run_check('18.1', right | {keys[0]: ...}), 'still to answer')
    failing(run_check('18.1', {'bytes': 18}), 'keys')


def test_18_1_the_answers_are_what_the_tokenizer_gives():
    from exp.nb_18 import BPETokenizer
    right = solved(STEM, '18.1')['token_facts']
    keys = list(right)
    assert right[keys[0]] == len(BPETokenizer().encode("naïve 日本 😀"))
    tok = BPETokenizer([(97, 97), (256, 256)])
    assert len(tok.encode('aaaaaaaa')) == right[keys[4]]
    assert len(BPETokenizer([(104, 101), (108, 108), (256, 257), (258, 111)]).encode('hello')) == 1 == 5 - right[keys[5]]
    t = BPETokenizer.train('ab ' * 2000 + ''.join(chr(c) for c in range(300, 3000)), 1256, special_tokens=('<a>', '<b>'))
    assert len(t) == right[keys[2]]


# ---- 18.2: merge_pair ----

def test_18_2_the_reference_passes_and_the_usual_mistakes_fail_with_their_hint():
    correct(run_check('18.2', solved(STEM, '18.2')['merge_pair']))
    failing(run_check('18.2', mutated(STEM, '18.2', 'merge_pair', 'i += 2 ', 'i += 1 ')), 'skip both ids')
    failing(run_check('18.2', mutated(STEM, '18.2', 'merge_pair', 'while i < len(ids):', 'while i < len(ids) - 1:')), 'the last id')
    def in_place(ids, pair, new_id):
        out = solved(STEM, '18.2')['merge_pair'](ids, pair, new_id)
        ids[:] = out
        return out
    failing(run_check('18.2', in_place), 'new list')
    failing(run_check('18.2', lambda ids, pair, new_id: [new_id]), 'walk from the left')
    failing(run_check('18.2', lambda ids, pair, new_id: 'x'), 'list of ids')
    assert run_check('18.2', lambda ids, pair, new_id: None).state == 'not attempted'


# ---- 18.3: merge_that_makes ----

@pytest.fixture(scope='module')
def notebook_tok():
    return random_tokenizer(7, vocab=310)


def test_18_3_the_reference_passes_and_the_usual_mistakes_fail_with_their_hint(notebook_tok):
    ref = solved(STEM, '18.3')['merge_that_makes']
    correct(run_check('18.3', ref, notebook_tok))
    def token_id(tok, s):
        r = ref(tok, s)
        return None if r is None else (r[0] + 256, r[1], r[2])
    failing(run_check('18.3', token_id, notebook_tok), 'the token\'s id is 256 + k')
    def ids_not_bytes(tok, s):
        r = ref(tok, s)
        return None if r is None else (r[0], *tok.merges[r[0]])
    failing(run_check('18.3', ids_not_bytes, notebook_tok), 'not their ids')
    def bytes_count_too(tok, s):
        if len(s.encode()) == 1: return (-1, b'', s.encode())
        return ref(tok, s)
    failing(run_check('18.3', bytes_count_too, notebook_tok), 'a single byte')
    failing(run_check('18.3', lambda tok, s: None, notebook_tok), 'tok.vocab[256 + k]')
    failing(run_check('18.3', lambda tok, s, r=ref(notebook_tok, 'ab'): r, notebook_tok))


# ---- 18.4: encode_documents ----

def test_18_4_the_reference_passes_and_the_usual_mistakes_fail_with_their_hint():
    correct(run_check('18.4', solved(STEM, '18.4')['encode_documents']))
    failing(run_check('18.4', mutated(STEM, '18.4', 'encode_documents', "tok.encode(doc, disallowed_special=())",
                                      "tok.encode(doc)")), 'as plain text')
    failing(run_check('18.4', mutated(STEM, '18.4', 'encode_documents', "tok.encode(doc, disallowed_special=())",
                                      "tok.encode(doc, allowed_special='all')")), 'became the special id')
    def joined(tok, docs):
        return tok.encode(''.join(d + EOT for d in docs), allowed_special='all')
    failing(run_check('18.4', joined), 'became the special id')
    def separator_text(tok, docs):
        return tok.encode(''.join(d + EOT for d in docs), disallowed_special=())
    failing(run_check('18.4', separator_text), "not its text")
    def between_only(tok, docs):
        ids = solved(STEM, '18.4')['encode_documents'](tok, docs)
        return ids[:-1]
    failing(run_check('18.4', between_only), 'the last one too')
