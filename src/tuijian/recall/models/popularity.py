"""Most-interacted items first: the baseline every other model has to beat."""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.sparse as sp

from tuijian.domain import FloatArray, IntArray
from tuijian.recall.models.base import ModelBase


class Popularity(ModelBase):
    """Scores an item by how many users interacted with it, the same list for everyone."""

    name = "popularity"
    _state = ("item_counts_",)

    def __init__(self) -> None:
        pass

    def fit(self, X: sp.csr_matrix) -> Self:
        self.item_counts_: FloatArray = sp.csr_matrix(X).getnnz(axis=0).astype(np.float64)
        return self

    def _score(self, users: IntArray, X: sp.csr_matrix) -> FloatArray:
        return np.tile(self.item_counts_, (users.size, 1))
