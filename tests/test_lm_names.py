"Fast checks of the language-model modules exp.nb_11 .. exp.nb_13 (the notebooks hold the full runs)."
import os, random
from collections import Counter
import pytest, torch
from hypothesis import given, settings, strategies as st
from torch import nn
import torch.nn.functional as F

from exp.nb_11 import read_words, build_vocab, encode_word, bigram_pairs, bigram_counts, bigram_probs, sample_names
from exp.nb_12 import split_words, build_dataset, init_mlp_lm, mlp_lm_logits, train_lm, split_losses
from exp.nb_13 import Linear, BatchNorm1d, Tanh

needs_data = pytest.mark.skipif(not os.environ.get('COURSE_DATA'), reason='needs the local data mirror (COURSE_DATA)')


@pytest.fixture(scope='module')
def names():
    from exp.nb_00a import get_file
    return read_words(get_file('names', 'names.txt'))


# ---- 11: vocabulary and bigram counts

def test_build_vocab_puts_boundary_first_then_sorted_chars():
    stoi, itos = build_vocab(['cab', 'b', 'ba'])
    assert stoi == {'.': 0, 'a': 1, 'b': 2, 'c': 3}
    assert itos == {0: '.', 1: 'a', 2: 'b', 3: 'c'}
    assert encode_word('abc', stoi) == [1, 2, 3]


@pytest.mark.parametrize('words, message', [([], 'the word list is empty'),
                                            (['anna', ''], 'word 1 is empty'),
                                            (['an.na'], "word 0 ('an.na') contains '.'")])
def test_build_vocab_rejects_bad_word_lists(words, message):
    with pytest.raises(ValueError, match=message.replace('(', r'\(').replace(')', r'\)')):
        build_vocab(words)


def test_encode_word_names_the_word_and_the_character():
    stoi, _ = build_vocab(['ab'])
    with pytest.raises(ValueError, match="word 'abz': character 'z' is not in the vocabulary"):
        encode_word('abz', stoi)
    with pytest.raises(ValueError, match="'z'"):
        bigram_counts(['ab', 'abz'], stoi)
    with pytest.raises(ValueError, match='empty'):
        bigram_counts([], stoi)


def test_read_words_skips_blank_lines_and_rejects_an_empty_file(tmp_path):
    f = tmp_path / 'names.txt'
    f.write_text('emma\n\n  olivia \nava\n')
    assert read_words(f) == ['emma', 'olivia', 'ava']
    for text in ('', '\n  \n\n'):
        f.write_text(text)
        with pytest.raises(ValueError, match=f'{f}: no words in the file'):
            read_words(f)


def test_read_words_drops_a_utf8_byte_order_mark(tmp_path):
    f = tmp_path / 'names.txt'
    f.write_bytes(b'\xef\xbb\xbfemma\nava\n')
    assert read_words(f) == ['emma', 'ava']
    f.write_bytes(b'\xef\xbb\xbf\nemma\n')                          # a mark on a line of its own is a blank line
    assert read_words(f) == ['emma']


@pytest.mark.parametrize('prefix', [b'', b'\xef\xbb\xbf'])
def test_read_words_names_the_file_and_the_byte_of_a_non_utf8_file(tmp_path, prefix):
    f = tmp_path / 'latin1.txt'
    f.write_bytes(prefix + 'emma\nzoë\n'.encode('latin-1'))
    offset = len(prefix) + 7                                        # 'emma\n' and 'zo' before the 'ë'
    with pytest.raises(ValueError, match=f"{f}: not UTF-8 text: byte 0xeb at offset {offset}"):
        read_words(f)


@pytest.mark.parametrize('smoothing', [-1, -0.5, float('nan')])
def test_bigram_probs_refuses_negative_or_nan_smoothing(smoothing):
    with pytest.raises(ValueError, match=f'bigram_probs: smoothing must be a count >= 0, not {smoothing!r}'):
        bigram_probs(torch.tensor([[0, 3], [1, 1]]), smoothing)


def test_bigram_pairs_refuses_empty_words_and_the_boundary_token():
    stoi, _ = build_vocab(['ab'])
    with pytest.raises(ValueError, match='bigram_pairs: word 1 is empty'):
        bigram_pairs(['ab', ''], stoi)
    with pytest.raises(ValueError, match="bigram_pairs: word 0 \\('a.b'\\) contains '.'"):
        bigram_pairs(['a.b'], stoi)


def test_bigram_counts_match_a_counter_on_small_words():
    words = ['emma', 'ava', 'bob', 'ab']
    stoi, itos = build_vocab(words)
    N = bigram_counts(words, stoi)
    expected = Counter(pair for w in words for pair in zip('.' + w, w + '.'))
    assert N.dtype == torch.int64 and N.shape == (len(stoi), len(stoi))
    assert {(itos[i], itos[j]): N[i, j].item() for i in range(len(stoi)) for j in range(len(stoi)) if N[i, j]} == expected
    xs, ys = bigram_pairs(['ab'], stoi)
    assert xs.tolist() == [0, 1, 2] and ys.tolist() == [1, 2, 0]


def test_bigram_probs_rows_sum_to_one_and_smoothing_removes_zeros():
    N = torch.tensor([[0, 3], [1, 1]])
    assert torch.equal(bigram_probs(N, 0), torch.tensor([[0., 1.], [0.5, 0.5]]))
    P = bigram_probs(N)
    torch.testing.assert_close(P, torch.tensor([[1 / 5, 4 / 5], [0.5, 0.5]]))
    torch.testing.assert_close(P.sum(1), torch.ones(2))


def test_sample_names_follows_the_probabilities_and_the_generator():
    itos = {0: '.', 1: 'a', 2: 'b'}
    # after '.' always 'a', after 'a' always 'b', after 'b' always the end: every sample is 'ab'
    P = torch.tensor([[0., 1., 0.], [0., 0., 1.], [1., 0., 0.]])
    assert sample_names(lambda ctx: P[ctx[-1]], itos, 3, torch.Generator().manual_seed(0)) == ['ab'] * 3
    # the context is the last `block_size` tokens, '.'-padded at the start
    seen = []
    def probs(ctx):
        seen.append(list(ctx)); return P[ctx[-1]]
    sample_names(probs, itos, 1, torch.Generator().manual_seed(0), block_size=3)
    assert seen == [[0, 0, 0], [0, 0, 1], [0, 1, 2]]
    U = torch.ones(3) / 3
    a = sample_names(lambda ctx: U, itos, 20, torch.Generator().manual_seed(1))
    assert a == sample_names(lambda ctx: U, itos, 20, torch.Generator().manual_seed(1))
    assert a != sample_names(lambda ctx: U, itos, 20, torch.Generator().manual_seed(2))


@needs_data
def test_names_vocab_counts_and_smoothed_nll(names):
    stoi, itos = build_vocab(names)
    assert len(names) == 32_033 and len(stoi) == 27
    assert ''.join(itos[i] for i in range(27)) == '.abcdefghijklmnopqrstuvwxyz'
    N = bigram_counts(names, stoi)
    assert N.sum() == 228_146 and N[0, stoi['a']] == 4410 and N[stoi['n'], 0] == N.max() == 6763
    P = bigram_probs(N)
    xs, ys = bigram_pairs(names, stoi)
    assert round(-P.double().log()[xs, ys].mean().item(), 4) == 2.4546
    g = torch.Generator().manual_seed(2147483647)
    assert sample_names(lambda ctx: P[ctx[-1]], itos, 5, g) == ['cexze', 'momasurailezitynn', 'konimittain', 'llayn', 'ka']


@needs_data
def test_a_names_file_with_a_character_outside_the_vocabulary(names, tmp_path):
    stoi, _ = build_vocab(names)
    f = tmp_path / 'more_names.txt'
    f.write_text('anna\nzoë\n')
    with pytest.raises(ValueError, match="word 'zoë': character 'ë' is not in the vocabulary"):
        bigram_counts(read_words(f), stoi)


# ---- 12: splits, data sets, the embedding lookup

def test_split_words_is_the_lectures_shuffle_and_leaves_the_input_alone():
    words = [f'w{i}' for i in range(101)]
    train, dev, test = split_words(words)
    expected = words[:]
    random.seed(42); random.shuffle(expected)
    assert train + dev + test == expected
    assert (len(train), len(dev), len(test)) == (80, 10, 11)   # int(0.8 * 101), int(0.9 * 101) - 80, the rest
    assert words == [f'w{i}' for i in range(101)]
    random.seed(123); state = random.getstate()
    split_words(words); assert random.getstate() == state   # it has its own generator
    assert split_words(words, seed=1) != (train, dev, test)


def test_build_dataset_contexts_and_targets():
    stoi, _ = build_vocab(['ab', 'b'])
    X, Y = build_dataset(['ab', 'b'], 2, stoi)
    assert X.dtype == Y.dtype == torch.int64
    assert X.tolist() == [[0, 0], [0, 1], [1, 2], [0, 0], [0, 2]]
    assert Y.tolist() == [1, 2, 0, 2, 0]
    X1, Y1 = build_dataset(['ab', 'b'], 1, stoi)
    xs, ys = bigram_pairs(['ab', 'b'], stoi)   # a block of 1 is the bigram data set
    assert torch.equal(X1[:, 0], xs) and torch.equal(Y1, ys)


@pytest.mark.parametrize('block_size', [0, -1, 2.0, None, True, False, '3'])
def test_build_dataset_rejects_a_bad_block_size(block_size):
    stoi, _ = build_vocab(['ab'])
    with pytest.raises(ValueError, match=f'block_size must be a whole number of at least 1, not {block_size!r}'):
        build_dataset(['ab'], block_size, stoi)


def test_build_dataset_rejects_empty_word_lists_and_unknown_characters(tmp_path):
    stoi, _ = build_vocab(['ab'])
    with pytest.raises(ValueError, match='the word list is empty'):
        build_dataset([], 3, stoi)
    with pytest.raises(ValueError, match="word 'abc': character 'c' is not in the vocabulary"):
        build_dataset(['ab', 'abc'], 3, stoi)
    (tmp_path / 'empty.txt').write_text('')
    with pytest.raises(ValueError, match='no words in the file'):
        build_dataset(read_words(tmp_path / 'empty.txt'), 3, stoi)


def test_build_dataset_refuses_empty_words_and_the_boundary_token():
    stoi, _ = build_vocab(['ab'])
    with pytest.raises(ValueError, match='build_dataset: word 2 is empty'):
        build_dataset(['ab', 'b', ''], 3, stoi)                    # would add a '...' -> '.' example
    with pytest.raises(ValueError, match="build_dataset: word 0 \\('a.b'\\) contains '.'"):
        build_dataset(['a.b'], 3, stoi)


@pytest.mark.parametrize('n', [0, 1, 2, 3, 4, 5])
def test_split_words_refuses_a_list_that_leaves_a_split_empty(n):
    with pytest.raises(ValueError, match=f'split_words: {n} words leave the (train|dev|test) split empty'):
        split_words([f'w{i}' for i in range(n)])
    assert all(split_words([f'w{i}' for i in range(6)]))            # 4 / 1 / 1


def test_train_lm_refuses_an_empty_training_set():
    params = init_mlp_lm(generator=torch.Generator().manual_seed(0))
    X, Y = torch.zeros(0, 3, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    with pytest.raises(ValueError, match='train_lm: the training set is empty'):
        train_lm(lambda X: mlp_lm_logits(params, X), params, X, Y, 1, lambda step: 0.1)


def test_split_losses_refuses_an_empty_split():
    params = init_mlp_lm(generator=torch.Generator().manual_seed(0))
    X, Y = build_dataset(['ab'], 3, build_vocab(['ab'])[0])
    with pytest.raises(ValueError, match="split_losses: split 'dev' is empty"):   # the mean over nothing is NaN
        split_losses(lambda X: mlp_lm_logits(params, X), {'train': (X, Y), 'dev': (X[:0], Y[:0])})


@needs_data
def test_names_splits_give_the_reproducible_example_counts(names):
    stoi, _ = build_vocab(names)
    splits = split_words(names)
    assert [len(s) for s in splits] == [25_626, 3_203, 3_204]
    sizes = [len(build_dataset(s, 3, stoi)[0]) for s in splits]
    assert sizes == [182_625, 22_655, 22_866]
    with pytest.raises(ValueError, match="word 'zoë': character 'ë'"):   # a name outside the vocabulary
        build_dataset(names[:3] + ['zoë'], 3, stoi)


@pytest.mark.parametrize('shape', [(7,), (5, 3), (2, 4, 8)])
def test_embedding_lookup_by_indexing_matches_one_hot_matmul(shape):
    g = torch.Generator().manual_seed(sum(shape))
    C = torch.randn(27, 10, generator=g, dtype=torch.float64, requires_grad=True)
    C2 = C.detach().clone().requires_grad_()
    X = torch.randint(0, 27, shape, generator=g)
    X.view(-1)[:2] = 3                              # a repeated row: its gradients must add up
    gy = torch.randn(*shape, 10, generator=g, dtype=torch.float64)
    emb, ref = C[X], F.one_hot(X, 27).double() @ C2
    torch.testing.assert_close(emb, ref, rtol=0, atol=1e-12)
    (gy * emb).sum().backward(); (gy * ref).sum().backward()
    torch.testing.assert_close(C.grad, C2.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(C.grad[3], gy[X == 3].sum(0))


def test_mlp_lm_has_11897_parameters_and_trains():
    g = torch.Generator().manual_seed(0)
    params = init_mlp_lm(generator=g)
    assert sum(p.nelement() for p in params) == 11_897
    X = torch.randint(0, 27, (64, 3), generator=g); Y = torch.randint(0, 27, (64,), generator=g)
    model = lambda X: mlp_lm_logits(params, X)
    C, W1, b1, W2, b2 = params
    expected = torch.tanh(torch.cat([C[X[:, 0]], C[X[:, 1]], C[X[:, 2]]], 1) @ W1 + b1) @ W2 + b2
    torch.testing.assert_close(model(X), expected)
    before = split_losses(model, {'all': (X, Y)})['all']
    torch.testing.assert_close(before, F.cross_entropy(expected, Y).item())
    lrs = []
    losses, log = train_lm(model, params, X, Y, 30, lambda step: lrs.append(step) or 0.05, generator=g,
                           every=10, evaluate=lambda: split_losses(model, {'all': (X, Y)}))
    assert len(losses) == 30 and lrs == list(range(30)) and [s for s, _ in log] == [10, 20, 30]
    assert log[-1][1]['all'] < before


# ---- 13: Linear, BatchNorm1d, Tanh

def run_side_by_side(ours, theirs, n, c, steps, seed, dtype=torch.float64, tol=1e-10):
    "Feed both the same batches, training then eval mode; outputs, input/gamma/beta gradients and running stats agree."
    g = torch.Generator().manual_seed(seed)
    ours, theirs = ours.to(dtype), theirs.to(dtype)
    with torch.no_grad():
        gamma, beta = torch.rand(c, generator=g, dtype=dtype) + 0.5, torch.randn(c, generator=g, dtype=dtype)
        for m in (ours, theirs): m.weight.copy_(gamma); m.bias.copy_(beta)
    shift, scale = 3 * torch.randn(c, generator=g, dtype=dtype), 4 * torch.rand(c, generator=g, dtype=dtype) + 0.1
    close = lambda a, b: torch.testing.assert_close(a, b, rtol=tol, atol=tol)
    for training in (True, False):
        ours.train(training); theirs.train(training)
        for _ in range(steps):
            x = (torch.randn(n, c, generator=g, dtype=dtype) * scale + shift).requires_grad_()
            x2 = x.detach().clone().requires_grad_()
            gy = torch.randn(n, c, generator=g, dtype=dtype)
            y, y2 = ours(x), theirs(x2)
            close(y, y2)
            (gy * y).sum().backward(); (gy * y2).sum().backward()
            close(x.grad, x2.grad); close(ours.weight.grad, theirs.weight.grad); close(ours.bias.grad, theirs.bias.grad)
            close(ours.running_mean, theirs.running_mean); close(ours.running_var, theirs.running_var)
            ours.zero_grad(); theirs.zero_grad()
    return ours


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 64), c=st.integers(1, 40), steps=st.integers(1, 6), seed=st.integers(0, 2**16),
       momentum=st.sampled_from([0.1, 0.001, 0.5, 1.0]), eps=st.sampled_from([1e-5, 1e-3]))
def test_batchnorm1d_matches_torch_in_train_and_eval(n, c, steps, seed, momentum, eps):
    run_side_by_side(BatchNorm1d(c, eps=eps, momentum=momentum), nn.BatchNorm1d(c, eps=eps, momentum=momentum),
                     n, c, steps, seed)


def test_batchnorm1d_float32_defaults_and_running_stats_after_many_steps():
    ours = run_side_by_side(BatchNorm1d(50), nn.BatchNorm1d(50), 32, 50, 20, 0, torch.float32, 1e-4)
    assert ours.running_mean.shape == ours.running_var.shape == (50,)
    assert ours.running_mean.abs().max() > 1 and (ours.running_var - 1).abs().max() > 1   # they really moved
    assert [n for n, _ in ours.named_parameters()] == ['weight', 'bias']
    assert [n for n, _ in ours.named_buffers()] == ['running_mean', 'running_var']


def test_batchnorm1d_running_var_is_unbiased_and_momentum_weights_the_new_value():
    x = torch.randn(8, 3, dtype=torch.float64) * 2 + 1
    bn = BatchNorm1d(3).double()
    y = bn(x)
    torch.testing.assert_close(bn.running_mean, 0.1 * x.mean(0))
    torch.testing.assert_close(bn.running_var, 0.9 + 0.1 * x.var(0, unbiased=True))
    torch.testing.assert_close(y, (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + 1e-5))


def test_batchnorm1d_eval_uses_running_stats_and_a_training_batch_of_one_is_an_error():
    bn = BatchNorm1d(4)
    for _ in range(3): bn(torch.randn(16, 4) * 3 + 2)
    bn.eval()
    x = torch.randn(10, 4)
    torch.testing.assert_close(bn(x)[2:3], bn(x[2:3]))
    torch.testing.assert_close(bn(x), (x - bn.running_mean) / torch.sqrt(bn.running_var + 1e-5))
    bn.train()
    with pytest.raises(ValueError, match=r'a training batch needs at least 2 examples, got input of shape \(1, 4\)'):
        bn(x[:1])


def test_linear_is_x_at_weight_plus_bias_with_makemore_init():
    g = torch.Generator().manual_seed(0)
    lin = Linear(400, 300, generator=g)
    assert lin.weight.shape == (400, 300) and [n for n, _ in lin.named_parameters()] == ['weight', 'bias']
    torch.testing.assert_close(lin.weight.std().item(), 400 ** -0.5, rtol=0.02, atol=0)
    assert torch.equal(lin.bias, torch.zeros(300))
    x = torch.randn(5, 400, generator=g)
    torch.testing.assert_close(lin(x), F.linear(x, lin.weight.T, lin.bias))
    nobias = Linear(400, 300, bias=False)
    assert nobias.bias is None and [n for n, _ in nobias.named_parameters()] == ['weight']
    torch.testing.assert_close(nobias(x), x @ nobias.weight)
    assert torch.equal(Linear(3, 2, generator=torch.Generator().manual_seed(5)).weight,
                       Linear(3, 2, generator=torch.Generator().manual_seed(5)).weight)
    assert torch.equal(Tanh()(x), torch.tanh(x))
