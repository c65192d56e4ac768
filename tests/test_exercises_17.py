"""The exercises of 17_distributed: each usual mistake fails with its hint, hard-coded answers fail on fresh inputs, and
the facts the checks rest on hold (test_exercises.py covers the layout, the reference solutions and untouched starters)."""
import pytest, torch

from conftest import correct
from exercises import run_check
from exercises.nb_17 import reference_reduce_scatter, sampler_indices, shard_cases
from test_exercises import failing, mutated, solved

STEM = '17_distributed'


# ---- 17.1 and 17.4: predictions ----

def test_17_1_wrong_predictions_fail_with_the_hint_for_that_mistake():
    right = solved(STEM, '17.1')['sharding']
    correct(run_check('17.1', right))
    for key, wrong, hint in [('items in one forward pass of one rank', 24, 'cut twice'),
                             ('items in one forward pass of one rank', 32, 'cut twice'),
                             ('optimizer steps per epoch', 105, 'whole global batches'),
                             ('optimizer steps per epoch', 104.2, 'whole global batches'),
                             ('training items left out of each epoch', 0, 'last whole global batch'),
                             ('items each rank trains on per epoch', 9984, 'its shard'),
                             ('backward passes per optimizer step, on each rank, that all-reduce the gradients', 3, 'no_sync'),
                             ('forward passes per optimizer step on each rank', True, 'one forward pass per micro-batch')]:
        r = failing(run_check('17.1', right | {key: wrong}), hint)
        assert str(right[key]) not in r.hint   # the hint does not give the answer away
    failing(run_check('17.1', right | {'optimizer steps per epoch': ...}), 'still to answer')
    failing(run_check('17.1', {'items': 8}), 'keys')


def test_17_1_the_answers_are_what_distributed_cb_does():
    "The arithmetic of 17.1, on DistributedCB's own sampler: 104 steps of 8-item micro-batches, 3 per step, 2,496 items a rank."
    from exp.nb_03 import BatchSampler
    from exp.nb_17 import ShardSampler
    per_rank = [list(BatchSampler(ShardSampler(10_000, r, 4, keep_multiple_of=96), 96 // (4 * 3))) for r in range(4)]
    assert all(len(b) == 104 * 3 and {len(x) for x in b} == {8} for b in per_rank)
    assert sum(len(x) for x in per_rank[0]) == 2496 and 10_000 - 4 * 2496 == 16


def test_17_4_wrong_predictions_fail_with_the_hint_for_that_mistake():
    right = solved(STEM, '17.4')['zero_memory']
    correct(run_check('17.4', right))
    keys = list(right)
    for key, wrong, hint in [(keys[0], 16 / 8, 'all the 16-bit weights'), (keys[0], 2 + 12 / 8, 'all the 16-bit weights'),
                             (keys[1], 0, 'share goes to zero'), (keys[1], 2, 'share goes to zero'),
                             (keys[2], 13, 'round up'), (keys[2], 13.125, 'round up'),   # 14 is 1,120 GB / 80 GB
                             (keys[3], 0, 'one stage at a time'), (keys[3], 2, 'one stage at a time')]:
        failing(run_check('17.4', right | {key: wrong}), hint)


def test_17_4_the_answers_follow_from_the_notebooks_byte_count():
    "2 + 2 + 12 bytes: stage 2 on 8 devices, stage 1's floor, stage 3's device count, and where 7B parameters fit in 80 GB."
    assert 2 + 14 / 8 == 3.75 and 2 + 2 == 4
    assert 16 * 70e9 / 14 <= 80e9 < 16 * 70e9 / 13
    assert 16 * 7e9 > 80e9 >= (4 + 12 / 8) * 7e9


# ---- 17.2: a rank's shard ----

def test_17_2_the_reference_passes_and_hard_coded_or_sampler_answers_fail():
    shard_indices = solved(STEM, '17.2')['shard_indices']
    correct(run_check('17.2', shard_indices))
    n, W, bs, epoch, seed = shard_cases()[0]
    memo = {r: sampler_indices(n, r, W, bs, epoch, seed) for r in range(W)}
    failing(run_check('17.2', lambda n_, rank, *_: memo[rank]))   # right on one case only
    from exp.nb_17 import ShardSampler   # noqa: F401 (the name the check looks for)
    def uses_the_class(n, rank, world_size, global_bs, epoch, seed):
        s = ShardSampler(n, rank, world_size, seed=seed, keep_multiple_of=global_bs)
        s.set_epoch(epoch)
        return list(s)
    failing(run_check('17.2', uses_the_class), 'without the class')


@pytest.mark.parametrize('old, new, hint', [
    ('order = order[:n - n % global_bs]', 'pass', 'whole global batches only'),
    ('return order[rank::world_size].tolist()', 'k = len(order) // world_size; return order[rank * k:(rank + 1) * k].tolist()',
     'positions r, r + W'),
    ('manual_seed(seed + epoch)', 'manual_seed(seed)', 'seed + epoch'),
    ('manual_seed(seed + epoch)', 'manual_seed(seed + epoch + rank)', 'the same order'),
])
def test_17_2_each_usual_mistake_fails_with_its_hint(old, new, hint):
    failing(run_check('17.2', mutated(STEM, '17.2', 'shard_indices', old, new)), hint)


def test_17_2_a_shuffled_or_unseeded_order_fails():
    shard_indices = solved(STEM, '17.2')['shard_indices']
    failing(run_check('17.2', lambda *a: sorted(shard_indices(*a))), 'randperm')
    failing(run_check('17.2', lambda n, rank, W, bs, epoch, seed: torch.randperm(n)[:n - n % bs][rank::W].tolist()), 'seed + epoch')
    r = run_check('17.2', lambda *a: ...)
    assert r.state == 'not attempted', str(r)


# ---- 17.3: the ring's reduce-scatter ----

def test_17_3_the_reference_matches_notebook_17s_ring_schedule():
    "The check's reference is the reduce-scatter half of ring_schedule, the schedule ring_all_reduce runs."
    from exp.nb_17 import ring_schedule
    g = torch.Generator().manual_seed(3)
    for W in range(2, 7):
        chunks = [[torch.randint(-9, 9, (k,), generator=g) for k in range(W)] for _ in range(W)]
        ours = [[c.clone() for c in rank] for rank in chunks]
        schedules = [list(ring_schedule(r, W))[:W - 1] for r in range(W)]
        for s in range(W - 1):
            sent = [(schedules[r][s][1], ours[r][schedules[r][s][1]].clone()) for r in range(W)]
            for r in range(W):
                op, _, recv = schedules[r][s]
                assert op == 'add' and sent[(r - 1) % W][0] == recv
                ours[r][recv] = ours[r][recv] + sent[(r - 1) % W][1]
        ref = reference_reduce_scatter(chunks)
        assert all(torch.equal(a, b) for ra, rb in zip(ours, ref) for a, b in zip(ra, rb))
        total = [sum(chunks[r][c] for r in range(W)) for c in range(W)]
        assert all(torch.equal(ref[r][(r + 1) % W], total[(r + 1) % W]) for r in range(W))


@pytest.mark.parametrize('old, new, hint', [
    ('sent[(r - 1) % W]', 'sent[(r + 1) % W]', 'right neighbour'),
    ('((r - step) % W, chunks[r][(r - step) % W].clone())', '((r + step) % W, chunks[r][(r + step) % W].clone())', '(r - s) mod W'),
    ('chunks[r][index] = chunks[r][index] + values', 'chunks[r][index] = values', 'adds what it receives'),
    ('for step in range(W - 1):', 'for step in range(W):', 'W - 1 steps'),
])
def test_17_3_each_usual_mistake_fails_with_its_hint(old, new, hint):
    failing(run_check('17.3', mutated(STEM, '17.3', 'ring_reduce_scatter', old, new)), hint)


def test_17_3_adding_into_the_callers_tensors_fails():
    def in_place(chunks):   # the reference without its copies: the caller's chunks are added into
        W = len(chunks)
        for step in range(W - 1):
            sent = [((r - step) % W, chunks[r][(r - step) % W].clone()) for r in range(W)]
            for r in range(W):
                index, values = sent[(r - 1) % W]
                chunks[r][index].add_(values)
        return chunks
    failing(run_check('17.3', in_place), 'work on copies')


def test_17_3_other_wrong_answers_fail():
    ring_reduce_scatter = solved(STEM, '17.3')['ring_reduce_scatter']
    def all_reduce(chunks):   # the whole all-reduce: every chunk complete everywhere
        W = len(chunks)
        return [[sum(chunks[k][c] for k in range(W)) for c in range(W)] for _ in range(W)]
    failing(run_check('17.3', all_reduce), 'all-gather')
    def one_behind(chunks):   # a consistent schedule, but each rank sends chunk (r - s - 1): a chunk never reaches them all
        W = len(chunks)
        chunks = [[c.clone() for c in rank] for rank in chunks]
        for step in range(W - 1):
            sent = [((r - step - 1) % W, chunks[r][(r - step - 1) % W].clone()) for r in range(W)]
            for r in range(W):
                index, values = sent[(r - 1) % W]
                chunks[r][index] = chunks[r][index] + values
        return chunks
    r = failing(run_check('17.3', one_behind), 'follow one chunk')
    assert 'holds the values of ranks' in r.message, str(r)

    def sequential(chunks):   # one rank after the other, in place: right, since no rank sends the chunk it receives
        W = len(chunks)
        chunks = [[c.clone() for c in rank] for rank in chunks]
        for step in range(W - 1):
            for r in range(W):
                i = (r - step) % W
                chunks[(r + 1) % W][i] = chunks[(r + 1) % W][i] + chunks[r][i]
        return chunks
    correct(run_check('17.3', sequential))
    failing(run_check('17.3', lambda chunks: [[c for c in rank] for rank in chunks]))
    failing(run_check('17.3', lambda chunks: [torch.cat(rank) for rank in chunks]), 'list of')
    from exp.nb_17 import ring_schedule   # noqa: F401 (the name the check looks for)
    def with_schedule(chunks):
        list(ring_schedule(0, len(chunks)))
        return ring_reduce_scatter(chunks)
    failing(run_check('17.3', with_schedule), 'yourself')
    assert run_check('17.3', lambda chunks: ...).state == 'not attempted'
