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
from typing import Any

import numpy as np

from tuijian.domain import FloatArray, IntArray
from tuijian.recall.neighbors import NeighborSource

MAX_USERS = 200_000


class RealtimeItemCF:
    def __init__(self, history: int = 20, window_s: float = 86_400.0,
                 max_neighbors: int = 200) -> None:
        self.history, self.window_s, self.max_neighbors = history, window_s, max_neighbors
        self._co: dict[int, dict[int, float]] = {}
        self._mass: dict[int, float] = {}
        self._recent: OrderedDict[str, deque[tuple[int, float]]] = OrderedDict()

    def observe_click(self, user_id: str, idx: int, ts: float) -> None:
        recent = self._recent.get(user_id)
        if recent is None:
            recent = self._recent[user_id] = deque(maxlen=self.history)
            if len(self._recent) > MAX_USERS:
                self._recent.popitem(last=False)
        else:
            self._recent.move_to_end(user_id)
        self._mass[idx] = self._mass.get(idx, 0.0) + 1.0
        for other, other_ts in recent:
            if other != idx and abs(ts - other_ts) <= self.window_s:
                self._bump(idx, other)
                self._bump(other, idx)
        recent.append((idx, ts))

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

    def _bump(self, i: int, j: int) -> None:
        row = self._co.setdefault(i, {})
        row[j] = row.get(j, 0.0) + 1.0
        if len(row) > 2 * self.max_neighbors:  # keep memory bounded: drop the weakest half
            keep = sorted(row.items(), key=lambda kv: -kv[1])[: self.max_neighbors]
            self._co[i] = dict(keep)

    def stats(self) -> dict[str, Any]:
        return {"items": len(self._co), "users": len(self._recent),
                "pairs": sum(len(r) for r in self._co.values()) // 2,
                "mean_mass": math.fsum(self._mass.values()) / max(len(self._mass), 1)}


class ItemCFRealtimeSource(NeighborSource):
    name = "item_cf_realtime"
    model = "item_cf_realtime"
