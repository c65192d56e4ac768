"""The lesson-local claims of nbs/11_bigram.ipynb and nbs/12_mlp_lm.ipynb that a single notebook check cannot cover:
the float32 running sum that explains the lecture's 2.4544, the dev split 11 makes by hand, and the views of 12
(concatenation as a view of the storage, unfold's windows)."""
import random

import nbformat, pytest, torch

from conftest import ROOT


def lesson_function(notebook, name):
    "The function `name` as the notebook defines it (its own cell, run alone with the modules it needs)."
    nb = nbformat.read(ROOT / 'nbs' / notebook, as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == 'code' and f'def {name}(' in c.source]
    assert len(cells) == 1, f"{name}: {len(cells)} cells"
    code = cells[0].split(f'def {name}(')[1].split('\n\n')[0]
    ns = {'struct': __import__('struct')}
    exec(f'def {name}(' + code, ns)
    return ns[name]


@pytest.fixture(scope='module')
def names():
    from exp.nb_00a import get_file
    from exp.nb_11 import build_vocab, read_words
    words = read_words(get_file('names', 'names.txt'))
    return words, build_vocab(words)[0]


# ---- 11: float32 accumulation ----

@pytest.mark.parametrize('seed, scale, n', [(0, 1.0, 3000), (1, 1e-3, 2000), (2, 1e4, 1000), (3, 2.5, 5000)])
def test_sum_in_float32_is_a_float32_tensor_added_one_value_at_a_time(seed, scale, n):
    sum_in_float32 = lesson_function('11_bigram.ipynb', 'sum_in_float32')
    values = (torch.randn(n, generator=torch.Generator().manual_seed(seed)) * scale - scale).float()
    total = torch.zeros(())
    for v in values: total += v
    ours = sum_in_float32(values.tolist())
    assert ours == total.item()
    assert ours != sum(values.double().tolist())   # it really rounds: float64 gives another total


def test_the_lectures_2_4544_is_the_float32_running_sum_of_the_same_log_probabilities(names):
    from exp.nb_11 import bigram_counts, bigram_pairs, bigram_probs
    words, stoi = names
    sum_in_float32 = lesson_function('11_bigram.ipynb', 'sum_in_float32')
    xs, ys = bigram_pairs(words, stoi)
    logp = bigram_probs(bigram_counts(words, stoi)).log()[xs, ys]
    total = sum_in_float32(logp.tolist())
    assert total == -559_951.5625                                   # the lecture notebook's printed log_likelihood
    assert round(-total / len(xs), 4) == 2.4544
    assert round(-logp.double().sum().item(), 1) == 560_001.9
    assert abs(logp.mean().item() - logp.double().mean().item()) < 1e-6   # PyTorch's float32 reduction stays accurate


def test_the_dev_split_of_11_is_the_split_of_12(names):
    "11 splits the names by hand and says it is 12's split; the same shuffle gives the same train and dev words."
    from exp.nb_12 import split_words
    words, _ = names
    shuffled = words[:]
    random.Random(42).shuffle(shuffled)
    n1, n2 = int(0.8 * len(shuffled)), int(0.9 * len(shuffled))
    train, dev, _ = split_words(words)
    assert (shuffled[:n1], shuffled[n1:n2]) == (train, dev)


# ---- 12: views ----

@pytest.mark.parametrize('n, block, n_embd', [(32, 3, 10), (7, 1, 4), (5, 8, 2), (1, 5, 3)])
def test_concatenated_embeddings_are_a_view_of_their_storage(n, block, n_embd):
    g = torch.Generator().manual_seed(n * 100 + block)
    C = torch.randn(27, n_embd, generator=g)
    emb = C[torch.randint(0, 27, (n, block), generator=g)]
    assert emb.stride() == (block * n_embd, n_embd, 1)
    flat, copied = emb.view(-1, block * n_embd), torch.cat(torch.unbind(emb, 1), 1)
    assert torch.equal(flat, copied) and torch.equal(flat, torch.cat([emb[:, i] for i in range(block)], 1))
    assert flat.untyped_storage().data_ptr() == emb.untyped_storage().data_ptr()
    assert copied.untyped_storage().data_ptr() != emb.untyped_storage().data_ptr()
    if block > 1 and n_embd > 1:
        with pytest.raises(RuntimeError, match='view size is not compatible'):
            emb.transpose(1, 2).view(-1, block * n_embd)


def test_unfold_windows_share_the_storage_with_strides_1_1():
    tokens = torch.arange(12)
    windows = tokens.unfold(0, 4, 1)
    assert windows.shape == (9, 4) and windows.stride() == (1, 1)
    assert windows.untyped_storage().data_ptr() == tokens.untyped_storage().data_ptr()
    assert windows[:, -1].tolist() == list(range(3, 12)) and windows[2].tolist() == [2, 3, 4, 5]
