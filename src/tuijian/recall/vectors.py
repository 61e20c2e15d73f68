"""Embedding recall: a user vector, computed at request time, against an ANN index of items.

Matrix factorization and the two-tower model both come down to this: each model publishes
item vectors keyed by item id, the service maps them onto its own item indexes and an ANN
index (recall/ann.py), and at request time turns the user's current history into a vector.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from tuijian.data.items import ItemFeatureCenter
from tuijian.domain import FloatArray, IntArray
from tuijian.recall.ann import ItemIndex
from tuijian.recall.base import Catalog, RecallContext

_EMPTY = (np.empty(0, np.int64), np.empty(0, np.float64))


class VectorIndex:
    """ANN rows ↔ the service's dense item indexes."""

    def __init__(self, ann: ItemIndex, item_ids: IntArray, store: ItemFeatureCenter) -> None:
        self.ann = ann
        self.row_to_idx = store.index_of(item_ids.tolist())
        self.idx_to_row = np.full(len(store), -1, np.int64)
        known = self.row_to_idx >= 0
        self.idx_to_row[self.row_to_idx[known]] = np.flatnonzero(known)

    def rows_of(self, idx: IntArray) -> IntArray:
        """Model rows of item indexes; -1 for items the model never saw (new since the fit)."""
        inside = (idx >= 0) & (idx < self.idx_to_row.shape[0])
        return np.where(inside, self.idx_to_row[np.where(inside, idx, 0)], -1)

    def search(self, vector: npt.NDArray[np.float32], k: int, exclude_idx: IntArray
               ) -> tuple[IntArray, FloatArray]:
        """Top k items by inner product, none of `exclude_idx` (over-fetched by their count,
        then filtered here: cheaper than building an exclusion matrix for one query)."""
        rows = self.rows_of(exclude_idx)
        rows = rows[rows >= 0]
        found, scores = self.ann.search(vector[None, :], k + rows.shape[0])
        ok = (found[0] >= 0) & ~np.isin(found[0], rows)
        idx = self.row_to_idx[found[0][ok]]
        keep = idx >= 0  # items removed from the catalog since the fit
        return idx[keep][:k], scores[0][ok][keep][:k]


@runtime_checkable
class UserEmbedder(Protocol):
    """A published embedding model as the service uses it."""

    vectors: VectorIndex

    def user_vector(self, user_id: str, history: IntArray) -> npt.NDArray[np.float32] | None:
        """The user's vector from their current history (item indexes, oldest first), or
        None when the model can say nothing about them."""
        ...


class VectorSource:
    """Recall by a user vector against a model's item ANN index."""

    name = "vectors"
    model = ""

    def __init__(self, catalog: Catalog, params: dict[str, Any]) -> None:
        self.catalog = catalog
        self.history = int(params.get("history", 50))
        # Embeddings know taste, not place: over-fetch and keep the request's city, since a
        # classifieds user wants listings where they live.
        self.local = bool(params.get("local", True))
        self.overfetch = int(params.get("overfetch", 4))

    async def recall(self, ctx: RecallContext, k: int) -> tuple[IntArray, FloatArray]:
        model = self.catalog.models.get(self.model)
        if not isinstance(model, UserEmbedder):
            return _EMPTY
        history = ctx.profile.clicked_array()[-self.history:]
        if ctx.anchor >= 0:
            history = np.concatenate([history, [ctx.anchor]])
        vector = model.user_vector(ctx.request.user_id, history)
        if vector is None:
            return _EMPTY
        if not self.local or ctx.city < 0:
            return model.vectors.search(vector, k, history)
        idx, scores = model.vectors.search(vector, k * self.overfetch, history)
        keep = self.catalog.store.gather(idx, ("city",))["city"] == ctx.city
        return idx[keep][:k], scores[keep][:k]
