# Reference solutions for the exercises of nbs/01_matmul.ipynb.
# Each `# %% exercise ID` section replaces that exercise's starter cell (`run_notebook.py --solutions`).
# Try the exercise first: the check under it tells you what is wrong without giving the answer away.

# %% exercise 01.1
predicted_shapes = {
    'c[None] + c[:, None]': (3, 3),                              # (1, 3) and (3, 1): both stretch
    'm + c[:, None]': (3, 3),                                    # the column repeated across
    'torch.zeros(5, 1, 4) * torch.zeros(3, 1)': (5, 3, 4),       # (5, 1, 4) over (1, 3, 1)
    'torch.zeros(64, 784) - torch.zeros(784)': (64, 784),        # the bias case
    'torch.zeros(2, 3) + torch.zeros(2)': 'error',               # trailing 3 against 2
    'torch.zeros(64, 10)[..., None] * torch.zeros(10)': (64, 10, 10),   # (64, 10, 1) over (1, 1, 10)
}

# %% exercise 01.2
homework = {
    'small_a[0, :, None].shape': (3, 1),                         # row 0, [1, 2, 3], as a column
    '(small_a[0, :, None] * small_b).shape': (3, 2),
    'small_a[0, :, None] * small_b': [[1, 0], [0, 2], [3, 3]],   # row k of small_b times small_a[0, k]
    '(small_a[0, :, None] * small_b).sum(0)': [4, 5],            # row 0 of small_a @ small_b
}

# %% exercise 01.3
einsum_strings = {
    'transpose': 'ij->ji',
    'batch matmul': 'bik,bkj->bij',
    'trace': 'ii->',
    'row sums': 'ij->i',
    'diagonal': 'ii->i',
    'matrix-vector': 'ik,k->i',
    'batch outer product': 'ni,nj->nij',   # 02's weight gradient sums these over n: 'ni,nj->ij'
}

# %% exercise 01.4
def matmul_no_loop(a, b):
    "A @ B by broadcasting: (rows, inner, 1) times (1, inner, cols), summed over the inner axis."
    return (a[:, :, None] * b[None]).sum(1)
