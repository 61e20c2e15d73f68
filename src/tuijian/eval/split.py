"""The per-user stratified split of Microsoft Recommenders' `python_stratified_split`.

Same semantics, so our numbers compare with their benchmark table: every row gets a uniform
random number from the legacy numpy generator seeded with `seed` (their `np.random.seed(seed)`
then `np.random.rand(n)`), rows are ordered by (user, random number), and a user's row of rank
r out of n is train when r / n <= ratio. Given rows in the same order as their loader (file
order for MovieLens) the split is identical row for row, not just statistically alike.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

BoolArray = npt.NDArray[np.bool_]


def stratified_split(users: npt.ArrayLike, ratio: float = 0.75, seed: int = 42) -> BoolArray:
    """True for the rows that go to train: about `ratio` of each user's rows, at random."""
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"ratio must be in (0, 1), not {ratio}")
    users = np.asarray(users)
    n = users.size
    noise = np.random.RandomState(seed).rand(n)
    order = np.lexsort((noise, users))
    grouped = users[order]
    starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
    sizes = np.diff(np.r_[starts, n])
    group = np.repeat(np.arange(starts.size), sizes)
    rank = (np.arange(n) - starts[group] + 1) / sizes[group]
    train = np.empty(n, dtype=bool)
    train[order] = rank <= ratio
    return train
