"""EASE^R (Steck, WWW 2019): a shallow linear item-to-item autoencoder in closed form.

Hand-written because it is a two-line closed form (B = I - P / diag(P), P = (XᵀX + λI)⁻¹) that
no maintained library ships in a usable form. Cost is two dense n_items² matrices and a
Cholesky solve, so it suits catalogs up to MAX_ITEMS; recall over millions uses other models.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from tuijian.domain import FloatArray, IntArray
from tuijian.recall.models.base import ModelBase, top_k

MAX_ITEMS = 20_000  # two float64 matrices of 3.2 GB each at the limit


class EASE(ModelBase):
    """Scores items as X @ B, B the zero-diagonal item weights that best reconstruct X.

    l2: the ridge penalty λ; larger values trust co-occurrence less (hundreds on MovieLens).
    """

    name = "ease"
    _state = ("weights_",)

    def __init__(self, l2: float = 500.0) -> None:
        self.l2 = l2

    @classmethod
    def unsupported(cls, n_users: int, n_items: int) -> str | None:
        if n_items <= MAX_ITEMS:
            return None
        return f"EASE holds dense n_items² matrices; {n_items} items exceed {MAX_ITEMS}"

    def fit(self, X: sp.csr_matrix) -> Self:
        X = sp.csr_matrix(X, dtype=np.float64)
        if (reason := self.unsupported(*X.shape)) is not None:
            raise ValueError(reason)
        gram = (X.T @ X).toarray()
        gram[np.diag_indices_from(gram)] += self.l2
        # XᵀX + λI is symmetric positive definite: Cholesky in place beats a general inverse.
        factor = scipy.linalg.cho_factor(gram, overwrite_a=True)
        weights = scipy.linalg.cho_solve(factor, np.eye(X.shape[1]), overwrite_b=True)
        del gram, factor
        weights /= -np.diag(weights)
        weights[np.diag_indices_from(weights)] = 0.0
        self.weights_: FloatArray = weights
        return self

    def _score(self, users: IntArray, X: sp.csr_matrix) -> FloatArray:
        return np.asarray(X @ self.weights_)

    def similar_items(self, items: IntArray, k: int) -> tuple[IntArray, FloatArray]:
        """Items that item i's presence predicts most strongly (row i of B)."""
        rows = self.weights_[np.asarray(items, dtype=np.int64)].copy()
        rows[np.arange(rows.shape[0]), items] = -np.inf
        return top_k(rows, k)
