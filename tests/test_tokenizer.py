"""Byte-level BPE of 18_tokenizer: token for token equal to tiktoken on the same merges and pattern (all of Tiny
Shakespeare, random Unicode), decode(encode(s)) == s, the two trainers equal, the tie rule, special tokens as tiktoken
treats them, the plain-text file's round trip, every bad input refused with one clear message, and the command line."""
import os

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import exp.nb_18 as nb18
from exp.nb_18 import tokenizer_main as main
from exp.nb_16 import InputError
from exp.nb_18 import (GPT2_PATTERN, GPT4_PATTERN, TOKENIZER_FORMAT, BPETokenizer, as_tiktoken, best_pair,
                       get_pairs, load_tokenizer, merge, pre_split, save_tokenizer, train_bpe_direct, train_bpe_fast)

EOT = '<|endoftext|>'
MIXED = ("naïve café, ÜBER straße; 日本語のテキストです。 한국어 텍스트 Ελληνικά русский 😀😀👍🏽👍🏽 e\u0301\u0301 "
         "\u0915\u094d\u0937 12345 678 3.14159  \t\n\n   spaces    here\r\n ''s 'LL ") * 40


@pytest.fixture(scope='module')
def shakespeare():
    from exp.nb_00a import load_shakespeare
    return load_shakespeare()


@pytest.fixture(scope='module')
def shakespeare_tok(shakespeare):
    "4,096 tokens learnt from all of Tiny Shakespeare (about a second)."
    return BPETokenizer.train(shakespeare, 4096, special_tokens=(EOT,))


@pytest.fixture(scope='module', params=['gpt4', 'gpt2'])
def mixed_tok(request, shakespeare):
    "A tokenizer learnt from many scripts, emoji, combining marks, digits and whitespace, and English, with each pattern."
    pattern = {'gpt4': GPT4_PATTERN, 'gpt2': GPT2_PATTERN}[request.param]
    return BPETokenizer.train(MIXED + shakespeare[:50_000], 700, pattern, special_tokens=(EOT,))


# ---- the oracle: tiktoken on the same merges and pattern

def test_the_same_ids_as_tiktoken_on_all_of_tiny_shakespeare(shakespeare, shakespeare_tok):
    ours, theirs = shakespeare_tok.encode(shakespeare), as_tiktoken(shakespeare_tok).encode(shakespeare)
    assert ours == theirs
    assert 3.5 < len(shakespeare) / len(ours) < 3.7   # 3.59 characters per token: merges happened
    assert shakespeare_tok.decode(ours) == shakespeare


UNICODE = st.text(st.characters(categories=('Lu', 'Ll', 'Lo', 'Mn', 'Nd', 'No', 'So', 'Sk', 'Po', 'Ps', 'Zs', 'Cc')),
                  max_size=60)
SPACES = st.lists(st.sampled_from([' ', '  ', '\n', '\t', '\r\n', 'a', 'é', '日', '😀', '\u0301', '1', "'", 's']),
                  max_size=60).map(''.join)
ANY_TEXT = st.text(st.characters(blacklist_categories=('Cs',)), max_size=60)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(s=st.one_of(UNICODE, SPACES, ANY_TEXT))
def test_the_same_ids_as_tiktoken_on_random_unicode_and_decode_inverts_encode(mixed_tok, s):
    oracle = as_tiktoken(mixed_tok)
    ids = mixed_tok.encode(s)
    assert ids == oracle.encode(s)
    assert mixed_tok.decode(ids) == s


@pytest.mark.parametrize('s', [' ' * 1000 + 'x', '\n' * 500, ' \t' * 300 + ' word', '  \r\n' * 200, 'a' + ' ' * 777, '😀' * 300,
                               'e' + '\u0301' * 200, '日本語' * 300, '1' * 1001])
def test_the_same_ids_as_tiktoken_on_long_runs(mixed_tok, s):
    ids = mixed_tok.encode(s)
    assert ids == as_tiktoken(mixed_tok).encode(s) and mixed_tok.decode(ids) == s


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(s=st.text(max_size=30), cut=st.integers(0, 30), surrogate=st.integers(0xD800, 0xDFFF))
def test_a_lone_surrogate_is_refused_in_one_line(mixed_tok, s, cut, surrogate):
    s = s[:cut] + chr(surrogate) + s[cut:]
    with pytest.raises(InputError, match='lone surrogate') as e: mixed_tok.encode(s)
    assert '\n' not in str(e.value)
    with pytest.raises(InputError, match='lone surrogate'): train_bpe_fast(s, 260)


def test_special_tokens_are_refused_unless_allowed_as_in_tiktoken(mixed_tok):
    oracle, text = as_tiktoken(mixed_tok), f"a{EOT}b"
    with pytest.raises(InputError, match=r"special token '<\|endoftext\|>' at position 1: pass allowed_special"):
        mixed_tok.encode(text)
    with pytest.raises(ValueError): oracle.encode(text)
    allowed = mixed_tok.encode(text, allowed_special={EOT})
    assert allowed == oracle.encode(text, allowed_special={EOT}) == mixed_tok.encode(text, allowed_special='all')
    assert allowed.count(mixed_tok.special[EOT]) == 1 and mixed_tok.special[EOT] == 700
    plain = mixed_tok.encode(text, disallowed_special=())
    assert plain == oracle.encode(text, disallowed_special=()) and mixed_tok.special[EOT] not in plain
    assert mixed_tok.decode(allowed) == mixed_tok.decode(plain) == text
    with pytest.raises(InputError, match='not special tokens'): mixed_tok.encode(text, allowed_special={'<|im_start|>'})
    with pytest.raises(InputError, match='special token already'): mixed_tok.add_special(EOT)


# ---- the algorithm

def test_merge_and_pairs_count_overlaps_but_merge_once_from_the_left():
    assert get_pairs([1, 1, 1]) == {(1, 1): 2}
    assert merge([1, 1, 1], (1, 1), 256) == [256, 1]
    assert merge([1, 1, 1, 1], (1, 1), 256) == [256, 256]
    assert merge([2, 1, 2, 1], (1, 2), 256) == [2, 256, 1]
    assert merge([], (1, 2), 256) == []


def test_ties_go_to_the_smallest_pair_in_both_trainers():
    # after 'aa' -> 256, ('aa', 'a') and ('a', 'b') both occur twice: (97, 98) < (256, 97) wins
    for train in (train_bpe_direct, train_bpe_fast):
        assert train('aaabdaaabac', 259) == [(97, 97), (97, 98), (256, 257)]
        assert train('ba ab', 257) == [(32, 97)]   # ' a' (32, 97) beats 'ab' (97, 98) and 'ba' (98, 97), each once
    assert best_pair({(5, 1): 3, (2, 9): 3, (1, 1): 2}) == (2, 9)


@pytest.mark.parametrize('text', [MIXED[:3000], 'abcd' * 50 + 'dcba' * 50, 'a' * 300, ' ' * 50 + 'x' * 50, '😀' * 100])
def test_the_two_trainers_learn_the_same_merges(text):
    results = []
    for train in (train_bpe_fast, train_bpe_direct):
        try: results.append(train(text, 316))
        except InputError as e: results.append(str(e))
    assert results[0] == results[1]
    if text == MIXED[:3000]: assert len(results[0]) == 60   # this one can fill it


@settings(max_examples=60, deadline=None)
@given(text=st.text(st.sampled_from('ab c\n日😀é'), min_size=1, max_size=120), merges=st.integers(0, 25),
       gpt2=st.booleans())
def test_the_two_trainers_agree_on_random_texts(text, merges, gpt2):
    pattern = GPT2_PATTERN if gpt2 else GPT4_PATTERN
    results = []
    for train in (train_bpe_fast, train_bpe_direct):
        try: results.append(train(text, 256 + merges, pattern))
        except InputError as e: results.append(str(e))
    assert results[0] == results[1]


def test_the_shakespeare_merges_agree_on_a_slice_and_smaller_vocabularies_are_prefixes(shakespeare, shakespeare_tok):
    part = shakespeare[:20_000]
    assert train_bpe_fast(part, 400) == train_bpe_direct(part, 400)
    assert train_bpe_fast(shakespeare, 512) == shakespeare_tok.merges[:256]
    assert len(shakespeare_tok.encode(' the')) == 1


def test_chunks_never_cross_a_pattern_boundary(shakespeare_tok):
    text = "Hello world!!! 12345 don't\n\n  stop"
    ids = shakespeare_tok.encode(text)
    assert ids == [i for chunk in pre_split(text) for i in shakespeare_tok.encode(chunk)]
    assert pre_split('12345') == ['123', '45'] and pre_split('12345', GPT2_PATTERN) == ['12345']


def test_decode_replaces_a_character_cut_between_tokens():
    tok = BPETokenizer()
    ids = tok.encode('日本')
    assert ids == list('日本'.encode()) and tok.decode(ids[:4]) == '日\ufffd'
    with pytest.raises(UnicodeDecodeError): tok.decode(ids[:4], errors='strict')
    with pytest.raises(InputError, match='not a token id'): tok.decode([1, 256])
    with pytest.raises(InputError, match='not a token id'): tok.decode([-1])


# ---- bad input for training

@pytest.mark.parametrize('text, vocab, message', [
    ('', 300, 'the training text is empty'),
    ('hello', 255, 'vocab_size 255 is below 256'),
    ('hello', '512', "vocab_size '512' is below 256"),
    ('hello', True, 'vocab_size True is below 256'),
    ('ab', 258, r'cannot fill a vocabulary of 258: after 1 merges \(vocabulary 257\)'),
    ('a b c', 259, r'cannot fill a vocabulary of 259: after 2 merges'),
    ('a', 257, 'after 0 merges'),
    (b'bytes', 300, 'must be a str, not bytes'),
    (None, 300, 'must be a str, not NoneType'),
    ('a\udc80b', 300, 'lone surrogate'),
])
@pytest.mark.parametrize('train', [train_bpe_fast, train_bpe_direct])
def test_bad_training_input_is_one_clear_line(train, text, vocab, message):
    with pytest.raises(InputError, match=message) as e: train(text, vocab)
    assert '\n' not in str(e.value)


def test_non_text_is_refused_by_encode(mixed_tok):
    for bad in (b'abc', 3, None, ['a']):
        with pytest.raises(InputError, match='must be a str'): mixed_tok.encode(bad)


# ---- the file

def test_save_and_load_round_trip(tmp_path, mixed_tok):
    path = tmp_path / 'mixed.tok'
    save_tokenizer(mixed_tok, path)
    lines = path.read_text(encoding='utf-8').split('\n')
    assert lines[0] == TOKENIZER_FORMAT and lines[3] == f'merges {len(mixed_tok.merges)}' and lines[-1] == ''
    assert os.listdir(tmp_path) == ['mixed.tok']   # no temporary file left
    loaded = load_tokenizer(path)
    assert (loaded.merges, loaded.pattern, loaded.special, loaded.vocab) == \
           (mixed_tok.merges, mixed_tok.pattern, mixed_tok.special, mixed_tok.vocab)
    assert loaded.encode(MIXED[:2000] + EOT, allowed_special='all') == mixed_tok.encode(MIXED[:2000] + EOT, allowed_special='all')
    assert b'pickle' not in path.read_bytes() and path.read_bytes()[:2] != b'\x80\x04'


def damaged(raw):
    "A file's text -> the damaged copies of it and the message each must be refused with."
    cut_line = raw[:raw.rindex('\n', 0, -1) + 1]
    lines = raw.split('\n')
    return [
        (raw[:len(raw) // 2], 'truncated: the last line has no end'),
        (cut_line, r'line \d+: truncated: line 4 announces'),
        (raw + '1 2\n', 'too long'),
        ('\n'.join(lines[:4] + ['5 x'] + lines[5:]), "line 5: '5 x' is not a merge"),
        ('\n'.join(lines[:4] + ['999 1'] + lines[5:]), 'line 5: merge 999 1 uses a token not made yet'),
        ('\n'.join(lines[:1] + ['pattern "(unclosed"'] + lines[2:]), 'line 2: the pattern is not'),
        ('\n'.join(lines[:1] + ['pattern not json'] + lines[2:]), 'line 2: the pattern is not'),
        ('\n'.join(lines[:2] + ['special {"a": 1}'] + lines[3:]), 'line 3: the special tokens'),
        ('\n'.join(lines[:3] + ['merges many'] + lines[4:]), "line 4: the number of merges 'many'"),
        ('\n'.join(lines[:1] + lines[2:]), "line 2: expected the 'pattern"),
        ('{"model": {"type": "BPE"}}\n', 'line 1: not a tokenizer file of this course'),
        ('dl-foundations/bpe-tokenizer/2\n', 'line 1: not a tokenizer file'),
    ]


def test_a_damaged_or_foreign_file_is_refused_naming_the_line(tmp_path, mixed_tok):
    good = tmp_path / 'good.tok'
    save_tokenizer(mixed_tok, good)
    raw = good.read_text(encoding='utf-8')
    for k, (text, message) in enumerate(damaged(raw)):
        path = tmp_path / f'bad{k}.tok'
        path.write_text(text, encoding='utf-8')
        with pytest.raises(InputError, match=message) as e: load_tokenizer(path)
        assert str(e.value).startswith(str(path)) and '\n' not in str(e.value), (k, str(e.value))
    (tmp_path / 'binary.tok').write_bytes(b'\x80\x04\x95 pickle')
    (tmp_path / 'empty.tok').write_bytes(b'')
    for name, message in [('binary.tok', 'not UTF-8'), ('empty.tok', 'empty'), ('missing.tok', 'no such file'), ('.', 'not a regular file')]:
        with pytest.raises(InputError, match=message): load_tokenizer(tmp_path / name)


def test_saving_is_atomic(tmp_path, mixed_tok, monkeypatch):
    path = tmp_path / 'tok.txt'
    save_tokenizer(mixed_tok, path)
    before = path.read_bytes()
    def boom(*a): raise OSError('disk full')
    monkeypatch.setattr(nb18.os, 'replace', boom)
    with pytest.raises(OSError): save_tokenizer(BPETokenizer(), path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ['tok.txt']


# ---- the command line

def cli(*args, cwd=None):
    "Run `main` as the command line would: the exit message (None on success)."
    try: main([str(a) for a in args])
    except SystemExit as e: return str(e.code) if e.code not in (None, 0) else None
    return None


def test_the_command_line_trains_encodes_and_decodes(tmp_path, capsys):
    data = tmp_path / 'poem.txt'
    data.write_text(MIXED[:3000], encoding='utf-8')
    out = tmp_path / 'poem.tok'
    assert cli('train', data, '--vocab=400', f'--out={out}') is None
    assert 'merges learnt from 3,000 characters' in capsys.readouterr().out
    assert load_tokenizer(out).merges == train_bpe_fast(MIXED[:3000], 400)
    text = 'naïve 日本 😀  x'
    assert cli('encode', f'--tok={out}', f'--text={text}') is None
    ids = capsys.readouterr().out.strip()
    assert [int(i) for i in ids.split()] == load_tokenizer(out).encode(text)
    assert cli('decode', f'--tok={out}', f'--ids={ids}') is None
    assert capsys.readouterr().out == text + '\n'
    (tmp_path / 'ids.txt').write_text(ids.replace(' ', ', '))
    assert cli('decode', f'--tok={out}', f'--file={tmp_path / "ids.txt"}') is None
    assert capsys.readouterr().out == text + '\n'
    assert cli('train', data, '--vocab=300', f'--out={tmp_path / "gpt2.tok"}', '--pattern=gpt2') is None
    assert load_tokenizer(tmp_path / 'gpt2.tok').pattern == GPT2_PATTERN


def test_the_command_line_refuses_bad_input_in_one_line_and_writes_nothing(tmp_path, capsys):
    data = tmp_path / 'poem.txt'
    data.write_text('to be or not to be ' * 20)
    (tmp_path / 'bin.txt').write_bytes(b'\xff\xfe')
    (tmp_path / 'empty.txt').write_text('')
    tok = tmp_path / 'tok.txt'
    assert cli('train', data, '--vocab=260', f'--out={tok}') is None
    t = BPETokenizer.load(tok); t.add_special(EOT); save_tokenizer(t, tmp_path / 'eot.tok')
    before = sorted(os.listdir(tmp_path))
    for args, message in [
        (('train', data, '--vocab=100', f'--out={tmp_path / "a.tok"}'), 'error: vocab_size 100 is below 256'),
        (('train', data, '--vocab=5000', f'--out={tmp_path / "a.tok"}'), 'error: the text cannot fill a vocabulary of 5,000'),
        (('train', tmp_path / 'empty.txt', f'--out={tmp_path / "a.tok"}'), 'the file is empty'),
        (('train', tmp_path / 'bin.txt', f'--out={tmp_path / "a.tok"}'), 'not UTF-8 text'),
        (('train', tmp_path / 'nope.txt', f'--out={tmp_path / "a.tok"}'), 'no such file'),
        (('train', data, f'--out={tok}'), 'exists: give another --out'),
        (('train', data, f'--out={tmp_path / "no" / "a.tok"}'), 'does not exist'),
        (('train', data, '--pattern=gpt3', f'--out={tmp_path / "a.tok"}'), "--pattern='gpt3': the patterns are gpt4, gpt2"),
        (('encode', f'--tok={tok}'), 'give exactly one of --text and --file'),
        (('encode', f'--tok={tmp_path / "eot.tok"}', f'--text=a{EOT}'), 'pass allowed_special'),
        (('encode', f'--tok={data}', '--text=hi'), 'not a tokenizer file of this course'),
        (('decode', f'--tok={tok}', '--ids=1 two'), "'two' is not a token id"),
        (('decode', f'--tok={tok}', '--ids=1 99999'), 'not a token id of this tokenizer'),
    ]:
        msg = cli(*args)
        assert msg is not None and msg.startswith('error: ') and message in msg and '\n' not in msg, (args, msg)
    assert sorted(os.listdir(tmp_path)) == before
    assert cli('encode', f'--tok={tmp_path / "eot.tok"}', f'--text=a{EOT}', '--allow_special') is None
    assert capsys.readouterr().out.split()[-1] == '260'
    with pytest.raises(SystemExit) as e: main(['train', str(data), '--vocab_size=300'])
    assert e.value.code == 2 and 'unknown flag --vocab_size (did you mean --vocab?)' in capsys.readouterr().err
