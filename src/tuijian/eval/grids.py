"""The hyperparameters `evaluate` tries per model, on the validation split only.

Small grids around values that work on implicit MovieLens-sized data (their ranges were set
from validation scores, never test scores); the winner of each is refitted on the whole
training split. Seeds and thread counts are fixed, not searched.
"""

from __future__ import annotations

import itertools
from typing import Any

GRIDS: dict[str, dict[str, list[Any]]] = {
    "popularity": {},
    "item_cf": {"similarity": ["cosine", "bm25"], "n_neighbors": [50, 100, 200, 400, 800]},
    "user_cf": {"n_neighbors": [25, 50, 100, 200, 400]},
    "sar": {"similarity": ["jaccard", "lift"], "threshold": [1, 2, 4, 8, 16]},
    "ease": {"l2": [50.0, 100.0, 200.0, 400.0, 800.0, 1600.0]},
    # Implicit MovieLens wants far stronger regularization than implicit's default of 0.01.
    "als": {
        "factors": [32, 64, 128],
        "regularization": [10.0, 25.0, 50.0, 100.0],
        "alpha": [5.0, 10.0, 20.0],
    },
    # implicit's BPR overfits past a learning_rate × iterations budget of about 0.5.
    "bpr": {
        "factors": [64, 128],
        "learning_rate": [0.001, 0.005],
        "regularization": [0.001, 0.01],
        "iterations": [100, 400],
    },
    # Around the two-tower's validation optimum (factors 128, temperature 0.2); ~20 s a fit,
    # so the grid stays small. Epochs, dropout and learning rate were set on validation curves.
    "two_tower": {"factors": [64, 128], "temperature": [0.15, 0.2]},
}

# Fixed per model: implicit's models are seeded (with the run's seed) and single-threaded, so a
# rerun reproduces the table; the neighbour models are deterministic anyway.
SEEDED = frozenset({"als", "bpr", "two_tower"})


def candidates(model: str, seed: int) -> list[dict[str, Any]]:
    """Every parameter combination of `model`'s grid, with the fixed parameters added."""
    grid = GRIDS.get(model, {})
    fixed: dict[str, Any] = {"random_state": seed} if model in SEEDED else {}
    keys = list(grid)
    return [
        dict(zip(keys, values, strict=True)) | fixed
        for values in itertools.product(*(grid[key] for key in keys))
    ]
