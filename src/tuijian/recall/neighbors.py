"""Item → neighbour tables and the recall that walks them from the user's anchor items.

Association rules, batch item-CF and real-time item-CF all answer the same question — "given
the items this user just engaged with (or the item on screen), which items go with them?" — so
they share one source implementation over a `Neighbors` lookup.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa

from tuijian.data.items import ItemFeatureCenter
from tuijian.domain import FloatArray, IntArray
from tuijian.recall.base import Catalog, RecallContext

_EMPTY_I = np.empty(0, np.int64)
_EMPTY_F = np.empty(0, np.float64)


@runtime_checkable
class Neighbors(Protocol):
    def neighbors(self, idx: int) -> tuple[IntArray, FloatArray]: ...

    def neighbors_many(self, anchors: Sequence[int]) -> list[tuple[IntArray, FloatArray]]:
        """Every anchor's neighbours: one round trip where the table is remote."""
        ...


class NeighborTable:
    """A static CSR table over dense item indexes, loaded from (item_id, neighbor_id, score)."""

    def __init__(self, indptr: IntArray, neighbor: IntArray, score: FloatArray) -> None:
        self.indptr, self.neighbor, self.score = indptr, neighbor, score

    @classmethod
    def from_table(cls, table: pa.Table, store: ItemFeatureCenter) -> NeighborTable:
        src = store.index_of(table.column("item_id").to_pylist())
        dst = store.index_of(table.column("neighbor_id").to_pylist())
        score = table.column("score").to_numpy().astype(np.float64)
        ok = (src >= 0) & (dst >= 0)
        src, dst, score = src[ok], dst[ok], score[ok]
        order = np.lexsort((-score, src))
        counts = np.bincount(src, minlength=len(store))
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(indptr, dst[order], score[order])

    def items(self) -> Iterator[tuple[int, IntArray, FloatArray]]:
        """Every (anchor, neighbours, scores) with neighbours, for publishing."""
        for i in np.flatnonzero(np.diff(self.indptr)).tolist():
            a, b = self.indptr[i], self.indptr[i + 1]
            yield i, self.neighbor[a:b], self.score[a:b]

    def neighbors_many(self, anchors: Sequence[int]) -> list[tuple[IntArray, FloatArray]]:
        return [self.neighbors(a) for a in anchors]

    def neighbors(self, idx: int) -> tuple[IntArray, FloatArray]:
        if idx < 0 or idx + 1 >= self.indptr.shape[0]:
            return _EMPTY_I, _EMPTY_F
        a, b = self.indptr[idx], self.indptr[idx + 1]
        return self.neighbor[a:b], self.score[a:b]


class NeighborSource:
    """Recall by walking a neighbour table from anchors: the page's item, else the user's most
    recent clicks, each weighted by recency (`decay` per step back)."""

    name = "neighbors"
    model = ""  # the catalog model (job artifact or real-time table) this source reads

    def __init__(self, catalog: Catalog, params: dict[str, Any]) -> None:
        self.catalog = catalog
        self.anchors = int(params.get("anchors", 10))
        self.decay = float(params.get("decay", 0.8))

    async def recall(self, ctx: RecallContext, k: int) -> tuple[IntArray, FloatArray]:
        table = self.catalog.models.get(self.model)
        if table is None:
            return _EMPTY_I, _EMPTY_F
        assert isinstance(table, Neighbors)
        anchors = [ctx.anchor] if ctx.anchor >= 0 else \
            list(reversed(ctx.profile.recent_clicks))[: self.anchors]
        return walk(table, anchors, self.decay, k)


def walk(table: Neighbors, anchors: Sequence[int], decay: float, k: int,
         exclude: IntArray | None = None) -> tuple[IntArray, FloatArray]:
    """Sum the anchors' neighbour scores, the i-th anchor weighted decay**i; drop the anchors
    themselves (and `exclude`); the top k, best first."""
    ids: list[IntArray] = []
    scores: list[FloatArray] = []
    for step, (n, s) in enumerate(table.neighbors_many(anchors)):
        ids.append(n)
        scores.append(s * decay ** step)
    cand = np.concatenate(ids) if ids else _EMPTY_I
    if cand.size == 0:
        return _EMPTY_I, _EMPTY_F
    uniq, inverse = np.unique(cand, return_inverse=True)
    total = np.zeros(uniq.shape[0])
    np.add.at(total, inverse, np.concatenate(scores))
    banned = np.asarray(anchors, np.int64)
    if exclude is not None:
        banned = np.concatenate([banned, exclude])
    keep = ~np.isin(uniq, banned)
    uniq, total = uniq[keep], total[keep]
    top = np.argsort(-total, kind="stable")[:k]
    return uniq[top], total[top]
