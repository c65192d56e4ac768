# Reference solutions for the exercises of nbs/17_distributed.ipynb.
# Each `# %% exercise ID` section replaces that exercise's starter cell (`run_notebook.py --solutions`).
# Try the exercise first: the check under it tells you what is wrong without giving the answer away.

# %% exercise 17.1
sharding = {
    'items in one forward pass of one rank': 8,              # 96 / (4 ranks x 3 micro-batches)
    'forward passes per optimizer step on each rank': 3,     # one per micro-batch
    'optimizer steps per epoch': 104,                        # 10,000 // 96: whole global batches only
    'training items left out of each epoch': 16,             # 10,000 - 104 x 96
    'items each rank trains on per epoch': 2496,             # 104 steps x 24 items (3 micro-batches of 8)
    'backward passes per optimizer step, on each rank, that all-reduce the gradients': 1,   # the last micro-batch's
}

# %% exercise 17.2
def shard_indices(n, rank, world_size, global_bs, epoch, seed):
    "The item indices rank `rank` trains on in epoch `epoch`, in order (a list of ints)."
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))   # the same on every rank
    order = order[:n - n % global_bs]                                                  # whole global batches only
    return order[rank::world_size].tolist()                                            # positions rank, rank + W, ...

# %% exercise 17.3
def ring_reduce_scatter(chunks):
    "Every rank's chunks after the W - 1 reduce-scatter steps of the ring (chunks[r][c]: rank r's chunk c)."
    W = len(chunks)
    chunks = [[c.clone() for c in rank_chunks] for rank_chunks in chunks]
    for step in range(W - 1):
        sent = [((r - step) % W, chunks[r][(r - step) % W].clone()) for r in range(W)]   # every rank sends at once
        for r in range(W):
            index, values = sent[(r - 1) % W]               # from the left neighbour
            chunks[r][index] = chunks[r][index] + values
    return chunks

# %% exercise 17.4
zero_memory = {
    'bytes per parameter on each device, ZeRO stage 2, 8 devices': 2 + 14 / 8,   # all the weights, 1/8 of the rest
    'bytes per parameter on each device, ZeRO stage 1, however many devices (the least it can be)': 4,   # weights and gradients stay whole
    'devices needed for ZeRO stage 3 to fit a 70-billion-parameter model in 80 GB each': 14,   # 16 x 70e9 / 80e9
    'the lowest ZeRO stage that fits a 7-billion-parameter model on 8 devices of 80 GB (0 for plain DDP)': 1,   # 112 GB, then 38.5 GB
}
