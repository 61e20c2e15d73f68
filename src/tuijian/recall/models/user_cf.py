"""User-based collaborative filtering: items liked by the most similar users.

Plain scipy sparse products; similarities are computed at request time against the stored,
row-normalised behavior matrix, so a user with fresh history gets fresh neighbours.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.sparse as sp

from tuijian.domain import FloatArray, IntArray
from tuijian.recall.models.base import ModelBase, top_per_row


def _inverse_norms(X: sp.csr_matrix) -> FloatArray:
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return np.asarray(1.0 / norms)


class UserCF(ModelBase):
    """Scores item j as Σ_v cos(u, v) · x_vj over the user's n_neighbors most similar users.

    A user's own training row is never its own neighbour: it would only echo their history.
    """

    name = "user_cf"
    _state = ("user_items_", "inverse_norms_")

    def __init__(self, n_neighbors: int = 50) -> None:
        self.n_neighbors = n_neighbors

    def fit(self, X: sp.csr_matrix) -> Self:
        self.user_items_: sp.csr_matrix = sp.csr_matrix(X, dtype=np.float64)
        self.inverse_norms_: FloatArray = _inverse_norms(self.user_items_)
        return self

    def _score(self, users: IntArray, X: sp.csr_matrix) -> FloatArray:
        X = sp.csr_matrix(X, dtype=np.float64)
        # cos(u, v) = (x_u / |x_u|) · (x_v / |x_v|), without storing a normalised copy.
        sim = sp.csr_matrix(
            sp.diags(_inverse_norms(X)) @ X @ self.user_items_.T @ sp.diags(self.inverse_norms_)
        )
        rows = np.repeat(np.arange(sim.shape[0]), np.diff(sim.indptr))
        sim.data[sim.indices == users[rows]] = 0.0
        sim.eliminate_zeros()
        return np.asarray((top_per_row(sim, self.n_neighbors) @ self.user_items_).toarray())
