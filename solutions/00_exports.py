# Reference solution for the example exercise of nbs/00_exports.ipynb.
# Each `# %% exercise ID` section replaces that exercise's starter cell (`run_notebook.py --solutions`).

# %% exercise 00.1
def mean_and_std(xs):
    "The mean and the population standard deviation (divided by n) of a list of numbers."
    mean = sum(xs) / len(xs)
    return mean, (sum((x - mean) ** 2 for x in xs) / len(xs)) ** 0.5
