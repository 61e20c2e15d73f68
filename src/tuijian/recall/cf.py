"""Batch collaborative-filtering recall: item-CF neighbours and user-CF precomputed lists."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa

from tuijian.data.items import ItemFeatureCenter
from tuijian.domain import FloatArray, IntArray
from tuijian.recall.base import Catalog, RecallContext
from tuijian.recall.neighbors import NeighborSource


class ItemCFSource(NeighborSource):
    """Items similar (batch item-CF) to the page's item or the user's recent clicks."""

    name = "item_cf"
    model = "item_cf"


_EMPTY = (np.empty(0, np.int64), np.empty(0))


@runtime_checkable
class KeyedLists(Protocol):
    """Precomputed lists by key: in memory (`UserLists`) or in Redis (`lists_redis`)."""

    def get(self, user_id: str) -> tuple[IntArray, FloatArray]: ...


class UserLists:
    """Per-user precomputed recommendations (user_id → item indexes, scores), best first."""

    def __init__(self, lists: dict[str, tuple[IntArray, FloatArray]]) -> None:
        self.lists = lists

    def get(self, user_id: str) -> tuple[IntArray, FloatArray]:
        return self.lists.get(user_id, _EMPTY)

    def items(self) -> Iterator[tuple[str, IntArray, FloatArray]]:
        """Every (user, items, scores), for publishing to a shared store."""
        for user, (idx, score) in self.lists.items():
            yield user, idx, score

    @classmethod
    def from_table(cls, table: pa.Table, store: ItemFeatureCenter) -> UserLists:
        users = np.asarray(table.column("user_id").to_pylist(), dtype=object)
        idx = store.index_of(table.column("item_id").to_pylist())
        score = table.column("score").to_numpy().astype(np.float64)
        ok = idx >= 0
        users, idx, score = users[ok], idx[ok], score[ok]
        order = np.lexsort((-score, users))
        users, idx, score = users[order], idx[order], score[order]
        bounds = np.flatnonzero(users[1:] != users[:-1]) + 1
        starts = np.concatenate([[0], bounds]).tolist()
        ends = np.concatenate([bounds, [len(users)]]).tolist()
        return cls({str(users[s]): (idx[s:e], score[s:e])
                    for s, e in zip(starts, ends, strict=True) if e > s})


class UserCFSource:
    """The user's batch user-CF list; users the last job did not see get nothing here."""

    name = "user_cf"

    def __init__(self, catalog: Catalog, params: dict[str, Any]) -> None:
        self.catalog = catalog

    async def recall(self, ctx: RecallContext, k: int) -> tuple[IntArray, FloatArray]:
        lists = self.catalog.models.get("user_cf")
        if not isinstance(lists, KeyedLists):
            return _EMPTY
        idx, score = lists.get(ctx.request.user_id)
        return idx[:k], score[:k]
