"""Item-based collaborative filtering over the behavior matrix (cosine or BM25 weighted).

The k-nearest-neighbour search and the weightings are implicit's (`all_pairs_knn`,
`normalize`, `bm25_weight`): a maintained, multithreaded sparse implementation that never forms
the full item × item product. Scoring is ours so that it works on any user's current history.
"""

from __future__ import annotations

from typing import Literal, Self

import numpy as np
import scipy.sparse as sp
from implicit.nearest_neighbours import all_pairs_knn, bm25_weight, normalize

from tuijian.domain import FloatArray, IntArray
from tuijian.recall.models.base import ModelBase, top_k_sparse, top_per_row


class ItemCF(ModelBase):
    """Scores item j for a user as Σ_i x_ui · sim(i, j) over the user's items i.

    similarity: "cosine" over item columns, or "bm25" (item columns BM25-weighted by
        bm25_k1 / bm25_b, which damps heavy users and popular items).
    n_neighbors: neighbours kept per item, self excluded.
    """

    name = "item_cf"
    _state = ("similarity_",)

    def __init__(
        self,
        similarity: Literal["cosine", "bm25"] = "cosine",
        n_neighbors: int = 100,
        bm25_k1: float = 1.2,
        bm25_b: float = 0.75,
        num_threads: int = 1,
    ) -> None:
        self.similarity = similarity
        self.n_neighbors = n_neighbors
        self.bm25_k1 = bm25_k1
        self.bm25_b = bm25_b
        self.num_threads = num_threads

    def fit(self, X: sp.csr_matrix) -> Self:
        # implicit weighs rows, so items go in as rows and come back as columns.
        items = sp.csr_matrix(X, dtype=np.float32).T
        if self.similarity == "cosine":
            weighted = normalize(items)
        elif self.similarity == "bm25":
            weighted = bm25_weight(items, K1=self.bm25_k1, B=self.bm25_b)
        else:
            raise ValueError(f"similarity must be 'cosine' or 'bm25', not {self.similarity!r}")
        # One spare neighbour: an item is usually its own nearest, and is dropped below.
        knn = all_pairs_knn(
            sp.csr_matrix(weighted.T),
            self.n_neighbors + 1,
            show_progress=False,
            num_threads=self.num_threads,
        )
        sim = sp.csr_matrix(knn, dtype=np.float64)
        sim.setdiag(0.0)
        sim.eliminate_zeros()
        self.similarity_: sp.csr_matrix = top_per_row(sim, self.n_neighbors)
        return self

    def _score(self, users: IntArray, X: sp.csr_matrix) -> FloatArray:
        return np.asarray((X @ self.similarity_).toarray())

    def similar_items(self, items: IntArray, k: int) -> tuple[IntArray, FloatArray]:
        return top_k_sparse(self.similarity_[np.asarray(items, dtype=np.int64)], k)
