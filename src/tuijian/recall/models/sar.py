"""SAR (Smart Adaptive Recommendations, Microsoft Recommenders): co-occurrence item similarity.

A few sparse products, written here rather than imported because the reference implementation
pulls in pandas and works on DataFrames; this keeps the arrays-in, arrays-out contract. Unlike
the reference, affinity is the interaction weights as given: time decay belongs to whoever
builds X (the jobs weigh events by recency before fitting).
"""

from __future__ import annotations

from typing import Literal, Self

import numpy as np
import scipy.sparse as sp

from tuijian.domain import FloatArray, IntArray
from tuijian.recall.models.base import ModelBase, top_k_sparse


class SAR(ModelBase):
    """Scores item j as Σ_i x_ui · s(i, j), s from how many users hold both i and j.

    similarity: "jaccard" c_ij / (c_ii + c_jj - c_ij), "lift" c_ij / (c_ii · c_jj), or
        "cooccurrence" c_ij itself.
    threshold: co-occurrence counts below it are dropped (noise from one or two users).
    """

    name = "sar"
    _state = ("similarity_",)

    def __init__(
        self,
        similarity: Literal["jaccard", "lift", "cooccurrence"] = "jaccard",
        threshold: int = 1,
    ) -> None:
        self.similarity = similarity
        self.threshold = threshold

    def fit(self, X: sp.csr_matrix) -> Self:
        seen = sp.csr_matrix(X, dtype=np.float64)
        seen.data[:] = 1.0
        counts = sp.csr_matrix(seen.T @ seen)
        counts.data[counts.data < self.threshold] = 0.0
        counts.eliminate_zeros()
        support = seen.getnnz(axis=0).astype(np.float64)
        rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
        c, ci, cj = counts.data, support[rows], support[counts.indices]
        if self.similarity == "jaccard":
            counts.data = c / (ci + cj - c)
        elif self.similarity == "lift":
            counts.data = c / (ci * cj)
        elif self.similarity != "cooccurrence":
            raise ValueError(f"unknown similarity {self.similarity!r}")
        self.similarity_: sp.csr_matrix = counts
        return self

    def _score(self, users: IntArray, X: sp.csr_matrix) -> FloatArray:
        return np.asarray((X @ self.similarity_).toarray())

    def similar_items(self, items: IntArray, k: int) -> tuple[IntArray, FloatArray]:
        sims = sp.csr_matrix(self.similarity_[np.asarray(items, dtype=np.int64)])
        rows = np.repeat(np.arange(sims.shape[0]), np.diff(sims.indptr))
        sims.data[sims.indices == np.asarray(items)[rows]] = 0.0
        sims.eliminate_zeros()
        return top_k_sparse(sims, k)
