#!/usr/bin/env python
"""Time notebook 18's byte-level BPE: the fast trainer against the direct one, a 4,096-token vocabulary learnt from
all of Tiny Shakespeare, our encoder against tiktoken's on the same merges and pattern, and Hugging Face
`tokenizers`' BPE trainer beside ours, every ratio measured in this one run, on one thread.

    .venv/bin/python benchmarks/bench_tokenizer.py [--slice 50000] [--rounds 3]

- fast / direct: both learn vocab 1,024 (768 merges) from the first `slice` characters of Tiny Shakespeare (the
  direct trainer recounts every pair for each merge: on the whole text it would take many minutes), one call each
  per round; the merges are checked equal.
- vocab 4,096 on all of Tiny Shakespeare (1,115,394 characters): `train_bpe_fast`, GPT-4's pattern, pure Python.
- encode all of Tiny Shakespeare with that tokenizer: ours (its chunk cache emptied before each call) against
  `tiktoken.Encoding.encode` built from the same merges and pattern (Rust); the ids are checked equal.
- Hugging Face `tokenizers` (Rust): `BpeTrainer(vocab_size=4096)` with the ByteLevel pre-tokenizer (GPT-2's split),
  RAYON_NUM_THREADS=1: what a user would pick. It learns its own merges (another split and tie rule), so only its time
  compares.
Rounds take turns (nb_00's `time_rounds`); medians, and medians of per-round ratios.
"""
import os, statistics, sys
from pathlib import Path

os.environ.setdefault('RAYON_NUM_THREADS', '1')          # Hugging Face tokenizers: one thread, as ours
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
import fire
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from exp.nb_00 import THREADS, median_ratio, time_rounds   # nb_00 first: it sets the threads
from exp.nb_00a import load_shakespeare
from exp.nb_18 import BPETokenizer, as_tiktoken, train_bpe_direct, train_bpe_fast


def hf_trainer(text, vocab_size):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    lines = text.splitlines(keepends=True)
    def train():
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(lines, trainer)
        return tok
    return train


def main(slice=50_000, rounds=3):
    import tiktoken, tokenizers
    text = load_shakespeare()
    part = text[:slice]
    assert train_bpe_fast(part, 1024) == train_bpe_direct(part, 1024), "the two trainers disagree"
    tok = BPETokenizer.train(text, 4096)
    oracle = as_tiktoken(tok)
    assert tok.encode(text) == oracle.encode(text), "our ids differ from tiktoken's"
    hf = hf_trainer(text, 4096)
    assert hf().get_vocab_size() == 4096
    def ours_encode(): tok._cache.clear(); tok.encode(text)
    times = time_rounds({'direct': lambda: train_bpe_direct(part, 1024), 'fast': lambda: train_bpe_fast(part, 1024),
                         'fast_4096': lambda: train_bpe_fast(text, 4096), 'hf_4096': hf,
                         'encode': ours_encode, 'tiktoken': lambda: oracle.encode(text)}, rounds=rounds, warmup=0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{THREADS} thread(s), tiktoken {tiktoken.__version__}, tokenizers {tokenizers.__version__}; {rounds} rounds; "
          f"Tiny Shakespeare {len(text):,} characters\n")
    print('| | seconds (median) | ratio (median of rounds) |')
    print('|---|---:|---:|')
    print(f"| direct trainer, vocab 1,024, first {len(part):,} characters | {med['direct']:.2f} | |")
    print(f"| fast trainer, the same | {med['fast']:.3f} | **{median_ratio(times, 'direct', 'fast'):.0f}x faster** (goal: 20x) |")
    print(f"| fast trainer, vocab 4,096, all of Tiny Shakespeare | {med['fast_4096']:.2f} | (goal: at most 30 s) |")
    print(f"| Hugging Face tokenizers BpeTrainer, vocab 4,096, ByteLevel, 1 thread | {med['hf_4096']:.2f} | "
          f"ours takes {median_ratio(times, 'fast_4096', 'hf_4096'):.1f}x its time |")
    print(f"| encode all of Tiny Shakespeare, ours (vocab 4,096, cache emptied) | {med['encode']:.3f} | |")
    print(f"| encode, tiktoken on the same merges (Rust) | {med['tiktoken']:.3f} | "
          f"ours takes {median_ratio(times, 'encode', 'tiktoken'):.1f}x its time |")


if __name__ == '__main__': fire.Fire(main)
