"""Two-tower recall: the user tower embeds the current history at request time; the item
tower's vectors sit in a faiss index built at fit time (recall/models/two_tower.py)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from tuijian.data.items import ItemFeatureCenter
from tuijian.domain import IntArray
from tuijian.recall.models.two_tower import TwoTower
from tuijian.recall.vectors import VectorIndex, VectorSource


class TowerRecall:
    def __init__(self, model: TwoTower, items: pa.Table, store: ItemFeatureCenter) -> None:
        self.model = model
        item_ids = items.column("item_id").to_numpy().astype(np.int64)
        self.vectors = VectorIndex(model.index_, item_ids, store)

    def user_vector(self, user_id: str, history: IntArray) -> npt.NDArray[np.float32] | None:
        rows = self.vectors.rows_of(history)
        rows = rows[rows >= 0]
        # a visitor with no history the model knows: hot and region serve them, not a
        # one-size-fits-all "empty history" vector
        return self.model.user_vector(rows) if rows.size else None


class TwoTowerSource(VectorSource):
    name = "two_tower"
    model = "two_tower"
