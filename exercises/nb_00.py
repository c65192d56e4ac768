"The example exercise of 00_exports, which shows how every exercise of the course works."
import math, random

from exercises import NotAttempted, Wrong, exercise


@exercise('00.1', 'mean_and_std of a list of numbers')
def check_mean_and_std(mean_and_std):
    rng = random.Random(0)
    for case in range(8):   # fresh lists, so no hard-coded answer fits
        xs = [round(rng.uniform(-10, 10), 3) for _ in range(rng.randint(2, 12) if case < 6 else 1)]
        got = mean_and_std(xs)
        if got is Ellipsis or got is None: raise NotAttempted()
        n, mean = len(xs), sum(xs) / len(xs)
        std = math.sqrt(sum((x - mean) ** 2 for x in xs) / n)
        if not (isinstance(got, tuple) and len(got) == 2):
            raise Wrong(f"mean_and_std({xs}) returned {got!r}; expected a pair (mean, std)")
        if not math.isclose(got[0], mean, rel_tol=1e-9, abs_tol=1e-12):
            raise Wrong(f"mean_and_std({xs}): the mean came back as {got[0]!r}", "the mean is the sum divided by how many numbers there are")
        if n > 1 and math.isclose(got[1], std * math.sqrt(n / (n - 1)), rel_tol=1e-9):
            raise Wrong(f"mean_and_std({xs}): the std came back as {got[1]!r}, the sample (n - 1) estimate",
                        "this exercise asks for the population standard deviation: divide by n")
        if not math.isclose(got[1], std, rel_tol=1e-9, abs_tol=1e-12):
            raise Wrong(f"mean_and_std({xs}): the std came back as {got[1]!r}",
                        "the square root of the mean squared distance from the mean")
    return "right on 8 random lists, a single number included"
