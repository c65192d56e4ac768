"Checks for the exercises of 17_distributed: sharding arithmetic, a rank's shard, the ring's reduce-scatter, ZeRO's memory."
import math, random

import torch

from exercises import NotAttempted, Wrong, check_predictions, code_of, exercise


def whole(n):
    "A test for a predicted count: the whole number `n` (an int, or a float equal to it; not a bool)."
    return lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v == n


def near(x, rel=0.01):
    "A test for a predicted number: within `rel` of `x` (a formula's float is fine)."
    return lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isclose(v, x, rel_tol=rel)


# ---- 17.1: who sees what ----

@exercise('17.1', 'predict: what each rank sees of a global batch', kind='predict')
def check_sharding(answer):
    n, bs, world_size, accumulate = 10_000, 96, 4, 3
    steps = n // bs
    expected = {'items in one forward pass of one rank': whole(bs // (world_size * accumulate)),
                'forward passes per optimizer step on each rank': whole(accumulate),
                'optimizer steps per epoch': whole(steps),
                'training items left out of each epoch': whole(n - steps * bs),
                'items each rank trains on per epoch': whole(steps * bs // world_size),
                'backward passes per optimizer step, on each rank, that all-reduce the gradients': whole(1)}
    hints = {'items in one forward pass of one rank': "the global batch is cut twice: into one shard per rank, then each shard into micro-batches",
             'forward passes per optimizer step on each rank': "one forward pass per micro-batch",
             'optimizer steps per epoch': "training keeps whole global batches only, so that every rank takes the same number of steps",
             'training items left out of each epoch': "what is left after the last whole global batch",
             'items each rank trains on per epoch': "each step, each rank trains on its shard of the global batch, not on all of it",
             'backward passes per optimizer step, on each rank, that all-reduce the gradients':
                 "no_sync holds the all-reduce off for every micro-batch but one"}
    return check_predictions(answer, expected, hints, "what that setting gives")


# ---- 17.2: a rank's shard ----

def sampler_indices(n, rank, world_size, global_bs, epoch, seed):
    "The truth: notebook 17's ShardSampler, as DistributedCB sets it up for training."
    from exp.nb_17 import ShardSampler
    sampler = ShardSampler(n, rank, world_size, shuffle=True, seed=seed, keep_multiple_of=global_bs)
    sampler.set_epoch(epoch)
    return list(sampler)


def common_order(n, global_bs, epoch, seed):
    "The order every rank draws, whole global batches only."
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))[:n - n % global_bs].tolist()


def as_int_list(got):
    if torch.is_tensor(got): got = got.tolist()
    try: return [int(i) for i in got], None
    except (TypeError, ValueError): return None, type(got).__name__


def shard_cases():
    "Fresh (n, world_size, global_bs, epoch, seed) cases: odd sizes, 1 to 5 ranks, one with fewer items than a batch."
    rng = random.Random(1717)
    cases = []
    for i in range(8):
        world_size = rng.randint(1, 5)
        global_bs = world_size * (6 if i == 3 else rng.randint(1, 6))
        n = rng.randint(1, global_bs - 1) if i == 3 else rng.randint(global_bs, 300)
        cases.append((n, world_size, global_bs, rng.randint(0, 6) if i else 1, rng.randint(0, 10_000)))
    return cases


@exercise('17.2', "shard_indices: a rank's items in one epoch")
def check_shard_indices(shard_indices):
    if 'ShardSampler' in code_of(shard_indices):
        raise Wrong("your function uses ShardSampler", "write the indices from the description of the sampler, without the class")
    for n, world_size, global_bs, epoch, seed in shard_cases():
        order = common_order(n, global_bs, epoch, seed)
        for rank in range(world_size):
            got = shard_indices(n, rank, world_size, global_bs, epoch, seed)
            if got is Ellipsis or got is None: raise NotAttempted()
            want = sampler_indices(n, rank, world_size, global_bs, epoch, seed)
            got, kind = as_int_list(got)
            shown = f"n={n}, rank={rank}, world_size={world_size}, global_bs={global_bs}, epoch={epoch}, seed={seed}"
            if got is None: raise Wrong(f"{shown}: came back {kind}; expected a list of item indices")
            if got == want: continue
            brief = f"{shown}: came back {got[:8]}{' ...' if len(got) > 8 else ''} ({len(got)} indices); expected {len(want)} indices"
            everything = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
            if got == everything[rank::world_size] and len(got) != len(want):
                raise Wrong(brief, "training keeps whole global batches only: drop the order's items past the last whole "
                                   "batch, so that every rank takes the same number of steps")
            share = len(want)
            if got == order[rank * share:(rank + 1) * share]:
                raise Wrong(brief, "rank r takes positions r, r + W, r + 2W, ... of the common order, so that the shards of "
                                   "step s are together global batch s")
            if epoch and got == sampler_indices(n, rank, world_size, global_bs, 0, seed):
                raise Wrong(brief, "a new order each epoch: the sampler's generator is seeded with seed + epoch")
            if rank and got == sampler_indices(n, rank, world_size, global_bs, epoch, seed + rank):
                raise Wrong(brief, "every rank must draw the same order: seed the generator without the rank in it")
            if sorted(got) == sorted(want):
                raise Wrong(brief + ", the same items in another order",
                            "the order is torch.randperm(n) from a torch.Generator seeded with seed + epoch, then the rank's positions")
            raise Wrong(brief, "one order of all n items, torch.randperm(n, generator=...) seeded with seed + epoch, cut to "
                               "whole global batches; then every world_size-th position, from position rank")
    return "the sampler's indices, for every rank, on 8 fresh cases (an odd size, a single rank, fewer items than a batch)"


# ---- 17.3: the ring's reduce-scatter ----

def reference_reduce_scatter(chunks, direction=1, sent=lambda r, s, W: (r - s) % W, add=True, steps=None):
    "The ring's reduce-scatter; the keyword arguments make its usual mistakes (to recognise them)."
    W = len(chunks)
    chunks = [[c.clone() for c in rank_chunks] for rank_chunks in chunks]
    for s in range(W - 1 if steps is None else steps):
        outgoing = [(sent(r, s, W), chunks[r][sent(r, s, W)].clone()) for r in range(W)]   # everybody sends at once
        for r in range(W):
            index, values = outgoing[(r - direction) % W]
            chunks[r][index] = chunks[r][index] + values if add else values
    return chunks


def random_chunks(rng, W):
    "W ranks' chunks: W chunks each, chunk c of the same size on every rank (0 to 4 numbers), random integers."
    sizes = [rng.randint(0, 4) for _ in range(W)]
    g = torch.Generator().manual_seed(rng.randint(0, 10_000))
    return [[torch.randint(-1000, 1000, (k,), generator=g) for k in sizes] for _ in range(W)]


def contributors(fn, W):
    "Whose values each rank's chunk holds after `fn`, probed with rank r's numbers all equal to 2**r: [[set, ...], ...]."
    probe = [[torch.full((1,), 2 ** r, dtype=torch.int64) for _ in range(W)] for r in range(W)]
    out = fn(probe)
    return [[{k for k in range(W) if int(out[r][c].sum()) >> k & 1} for c in range(W)] for r in range(W)]


MISTAKES = [  # (the mistake, as keyword arguments of the reference; its hint)
    (dict(direction=-1), "each rank sends to its right neighbour, (r + 1) mod W, and receives from its left, (r - 1) mod W"),
    (dict(sent=lambda r, s, W: (r + s) % W), "at step s rank r sends chunk (r - s) mod W: the one it added into at the step "
                                             "before (its own at step 0), so that each chunk picks up one more rank per step"),
    (dict(add=False), "the receiver adds what it receives into its own chunk of that index; copying is the all-gather's work"),
    (dict(steps='W'), "W - 1 steps: after them each chunk has passed every rank once; one more counts a rank twice"),
]


@exercise('17.3', "ring_reduce_scatter: the ring's first half, simulated")
def check_ring_reduce_scatter(ring_reduce_scatter):
    if 'ring_schedule' in code_of(ring_reduce_scatter):
        raise Wrong("your function uses ring_schedule", "work out the chunk indices yourself, from the rule of the exercise")
    rng = random.Random(17)
    for case in range(6):
        W = rng.randint(2, 6)
        chunks = random_chunks(rng, W)
        before = [[c.clone() for c in rank_chunks] for rank_chunks in chunks]
        got = ring_reduce_scatter(chunks)
        if got is Ellipsis or got is None: raise NotAttempted()
        shown = f"{W} ranks, chunk sizes {[len(c) for c in chunks[0]]}"
        if not all(torch.equal(a, b) for ra, rb in zip(chunks, before) for a, b in zip(ra, rb)):
            raise Wrong(f"{shown}: the input chunks were changed", "work on copies (c.clone()) and return new lists")
        try: ok_shape = len(got) == W and all(len(g) == W and all(torch.is_tensor(t) for t in g) for g in got)
        except TypeError: ok_shape = False
        if not ok_shape:
            raise Wrong(f"{shown}: came back {type(got).__name__}; expected a list of {W} lists of {W} tensors, got[r][c]")
        want = reference_reduce_scatter(chunks)
        if all(torch.equal(a, b) for ra, rb in zip(got, want) for a, b in zip(ra, rb)): continue
        total = [sum(chunks[r][c] for r in range(W)) for c in range(W)]
        if all(torch.equal(got[r][c], total[c]) for r in range(W) for c in range(W) if len(total[c])):
            raise Wrong(f"{shown}: every chunk of every rank holds the full sum",
                        "after the reduce-scatter only one chunk per rank is complete, (r + 1) mod W; the others hold partial "
                        "sums, and completing them is the all-gather's work")
        for mistake, hint in MISTAKES:
            steps = W if mistake.get('steps') == 'W' else None
            wrong = reference_reduce_scatter(chunks, **{**mistake, 'steps': steps})
            if all(torch.equal(a, b) for ra, rb in zip(got, wrong) for a, b in zip(ra, rb)):
                raise Wrong(f"{shown}: not the chunks the ring leaves", hint)
        try: theirs = contributors(ring_reduce_scatter, W)
        except Exception: theirs = None
        ours = contributors(reference_reduce_scatter, W)
        where = next(((r, c) for r in range(W) for c in range(W) if theirs and theirs[r][c] != ours[r][c]), None)
        detail = (f"; probed with rank k's numbers equal to 2**k, rank {where[0]}'s chunk {where[1]} holds the values of ranks "
                  f"{sorted(theirs[where[0]][where[1]])}, where the ring leaves ranks {sorted(ours[where[0]][where[1]])}") if where else ''
        raise Wrong(f"{shown}: not the chunks the ring leaves{detail}",
                    "follow one chunk round the ring on paper for W = 3: each step it moves one rank to the right and "
                    "picks up that rank's values")
    return "the ring's chunks on 6 fresh cases (2 to 6 ranks, chunks of 0 to 4 numbers): rank r ends with the sum of chunk r + 1"


# ---- 17.4: what ZeRO saves ----

@exercise('17.4', "predict: ZeRO's bytes per parameter", kind='predict')
def check_zero_memory(answer):
    expected = {'bytes per parameter on each device, ZeRO stage 2, 8 devices': near(2 + 14 / 8),
                'bytes per parameter on each device, ZeRO stage 1, however many devices (the least it can be)': near(4),
                'devices needed for ZeRO stage 3 to fit a 70-billion-parameter model in 80 GB each': whole(14),
                'the lowest ZeRO stage that fits a 7-billion-parameter model on 8 devices of 80 GB (0 for plain DDP)': whole(1)}
    hints = {'bytes per parameter on each device, ZeRO stage 2, 8 devices':
                 "stage 2 shares out the optimizer state and the gradients; every device still holds all the 16-bit weights",
             'bytes per parameter on each device, ZeRO stage 1, however many devices (the least it can be)':
                 "stage 1 shares out only the optimizer state: what is left when its share goes to zero?",
             'devices needed for ZeRO stage 3 to fit a 70-billion-parameter model in 80 GB each':
                 "stage 3 divides all 16 bytes per parameter by the number of devices; round up to a whole device",
             'the lowest ZeRO stage that fits a 7-billion-parameter model on 8 devices of 80 GB (0 for plain DDP)':
                 "start at DDP's 16 bytes per parameter and go up one stage at a time until 7e9 parameters fit in 80e9 bytes"}
    return check_predictions(answer, expected, hints, "what the byte count gives")
