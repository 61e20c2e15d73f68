"""Real-time item-CF: item neighbours updated from the event stream as clicks arrive.

When a user clicks item j, every item i they clicked within `window_s` (their last `history`
clicks) gains co-click weight with j in both directions; an item's neighbours are ranked by
co-clicks over the geometric mean of the two items' click counts (cosine on co-occurrence).
So an item first clicked a minute ago already has neighbours, long before the batch job runs.
Hand-written because it is a few dict updates per click; no streaming library fits in-process.
Called from the event loop thread only (ingestion folds, start-up replay).
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from tuijian.domain import FloatArray, IntArray
from tuijian.recall.neighbors import NeighborSource

MAX_USERS = 200_000
MAX_ITEMS = 500_000


class RealtimeItemCF:
    """Co-click weights that fade: each item's row (and click mass) is scaled by
    2^(-Δt / half_life) whenever it is touched, so last week's co-clicks count half; rows of
    items untouched for longest are dropped beyond MAX_ITEMS."""

    def __init__(self, history: int = 20, window_s: float = 86_400.0,
                 max_neighbors: int = 200, half_life_s: float = 7 * 86_400.0) -> None:
        self.history, self.window_s, self.max_neighbors = history, window_s, max_neighbors
        self.half_life_s = half_life_s
        self._co: OrderedDict[int, dict[int, float]] = OrderedDict()
        self._mass: dict[int, float] = {}
        self._touched: dict[int, float] = {}
        self._recent: OrderedDict[str, deque[tuple[int, float]]] = OrderedDict()

    def observe_click(self, user_id: str, idx: int, ts: float) -> None:
        recent = self._recent.get(user_id)
        if recent is None:
            recent = self._recent[user_id] = deque(maxlen=self.history)
            if len(self._recent) > MAX_USERS:
                self._recent.popitem(last=False)
        else:
            self._recent.move_to_end(user_id)
        self._decay(idx, ts)
        self._mass[idx] = self._mass.get(idx, 0.0) + 1.0
        for other, other_ts in recent:
            if other != idx and abs(ts - other_ts) <= self.window_s:
                self._decay(other, ts)
                self._bump(idx, other)
                self._bump(other, idx)
        recent.append((idx, ts))

    def neighbors_many(self, anchors: Sequence[int]) -> list[tuple[IntArray, FloatArray]]:
        return [self.neighbors(a) for a in anchors]

    def neighbors(self, idx: int) -> tuple[IntArray, FloatArray]:
        row = self._co.get(idx)
        if not row:
            return np.empty(0, np.int64), np.empty(0)
        ids = np.fromiter(row.keys(), np.int64, len(row))
        co = np.fromiter(row.values(), np.float64, len(row))
        mass = np.fromiter((self._mass.get(j, 1.0) for j in row), np.float64, len(row))
        score = co / np.sqrt(mass * self._mass.get(idx, 1.0))
        order = np.argsort(-score, kind="stable")
        return ids[order], score[order]

    def _decay(self, i: int, ts: float) -> None:
        last = self._touched.get(i)
        self._touched[i] = ts if last is None else max(last, ts)
        if last is None or ts <= last:
            return
        factor = 2.0 ** (-(ts - last) / self.half_life_s)
        if i in self._mass:
            self._mass[i] *= factor
        row = self._co.get(i)
        if row:
            for j in row:
                row[j] *= factor

    def _bump(self, i: int, j: int) -> None:
        if i in self._co:
            self._co.move_to_end(i)
        elif len(self._co) >= MAX_ITEMS:
            gone, _ = self._co.popitem(last=False)
            self._mass.pop(gone, None)
            self._touched.pop(gone, None)
        row = self._co.setdefault(i, {})
        row[j] = row.get(j, 0.0) + 1.0
        if len(row) > 2 * self.max_neighbors:  # keep memory bounded: drop the weakest half
            self._co[i] = dict(sorted(row.items(), key=lambda kv: -kv[1])[: self.max_neighbors])

    def stats(self) -> dict[str, Any]:
        return {"items": len(self._co), "users": len(self._recent),
                "pairs": sum(len(r) for r in self._co.values()) // 2,
                "mean_mass": math.fsum(self._mass.values()) / max(len(self._mass), 1)}


class ItemCFRealtimeSource(NeighborSource):
    name = "item_cf_realtime"
    model = "item_cf_realtime"
