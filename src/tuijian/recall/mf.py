"""Matrix-factorization recall: ALS user vectors folded in from the current history.

A user the batch fit knew gets their learned factors; anyone with fresh clicks gets factors
solved from those clicks against the published item factors (the ALS user step for one user:
(YᵀY + λI + Σ αw·yyᵀ) u = Σ (1 + αw) y), so today's clicks count before the next batch run.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from tuijian.data.items import ItemFeatureCenter
from tuijian.domain import IntArray
from tuijian.recall.ann import ItemIndex
from tuijian.recall.vectors import VectorIndex, VectorSource

Vector = npt.NDArray[np.float32]


class FactorRecall:
    def __init__(self, items: pa.Table, users: pa.Table, regularization: float, alpha: float,
                 store: ItemFeatureCenter) -> None:
        item_ids = items.column("item_id").to_numpy().astype(np.int64)
        self.item_factors = np.stack(items.column("vector").to_numpy(zero_copy_only=False)
                                     ).astype(np.float32) if items.num_rows else \
            np.zeros((0, 1), np.float32)
        self.vectors = VectorIndex(ItemIndex.build(self.item_factors), item_ids, store)
        self.users = {u: i for i, u in enumerate(users.column("user_id").to_pylist())}
        self.user_factors = np.stack(users.column("vector").to_numpy(zero_copy_only=False)
                                     ).astype(np.float32) if users.num_rows else \
            np.zeros((0, 1), np.float32)
        y = self.item_factors.astype(np.float64)
        self.gram = y.T @ y + regularization * np.eye(y.shape[1])
        self.alpha = alpha

    def user_vector(self, user_id: str, history: IntArray) -> Vector | None:
        rows = self.vectors.rows_of(history)
        rows = rows[rows >= 0]
        if rows.size:
            y = self.item_factors[rows].astype(np.float64)
            a = self.gram + self.alpha * (y.T @ y)
            b = (1.0 + self.alpha) * y.sum(axis=0)
            return np.linalg.solve(a, b).astype(np.float32)
        known = self.users.get(user_id)
        return None if known is None else self.user_factors[known]


class MFSource(VectorSource):
    name = "mf"
    model = "mf"
