"""The event-driven recall sources, evaluated with the serving code itself.

Association rules and real-time item-CF are not fitted on a matrix: they read the event
stream. So the evaluation turns each training rating into a click event at its timestamp and
runs exactly what the service runs — the association job's DuckDB query over an event log,
the real-time item-CF fed click by click in time order — then recommends the way their recall
sources do: a walk from each user's most recent training items. Parameters are the service's
defaults (sessions of a day, a 30-day half-life), not tuned.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from tuijian.data.eventlog import EventLog
from tuijian.domain import Event, IntArray
from tuijian.jobs.association import AssociationJob
from tuijian.jobs.base import JobContext
from tuijian.jobs.engine import DuckDBEngine
from tuijian.recall.item_cf_realtime import RealtimeItemCF
from tuijian.recall.neighbors import Neighbors, NeighborTable, walk

ANCHORS = 10
DECAY = 0.8


class _DenseIds:
    """Item ids are already the dense indexes: the store-shaped mapping the loader needs."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def index_of(self, keys: list[Any]) -> IntArray:
        ids = np.asarray(keys, np.int64)
        return np.where((ids >= 0) & (ids < self.n), ids, -1)


def _association(users: IntArray, items: IntArray, ts: IntArray, n_items: int) -> Neighbors:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with EventLog(root / "events") as log:
            log.append([Event(f"e{j}", "click", str(u), int(i), float(t), exposure_id=f"x{j}")
                        for j, (u, i, t) in enumerate(zip(users.tolist(), items.tolist(),
                                                          ts.tolist(), strict=True))])
        now = float(ts.max()) + 1.0
        params = {"window_days": 1e5, "half_life_days": 30.0, "min_support": 0.01, "k": 100}
        with closing(DuckDBEngine.over_log(root / "events")) as engine:
            artifact = AssociationJob().run(JobContext(root, engine, now, params=params))
        table: pa.Table = artifact.table("neighbors")
        return NeighborTable.from_table(table, _DenseIds(n_items))  # type: ignore[arg-type]


def _realtime(users: IntArray, items: IntArray, ts: IntArray) -> Neighbors:
    cf = RealtimeItemCF(half_life_s=30 * 86_400.0)
    for j in np.argsort(ts, kind="stable").tolist():
        cf.observe_click(str(users[j]), int(items[j]), float(ts[j]))
    return cf


BUILDERS: dict[str, Callable[[IntArray, IntArray, IntArray, int], Neighbors]] = {
    "association": _association,
    "item_cf_realtime": lambda u, i, t, n: _realtime(u, i, t),
}


def recommend_streams(name: str, users: IntArray, items: IntArray, ts: IntArray,
                      n_items: int, scored: IntArray, k: int) -> tuple[IntArray, float]:
    """(recs for `scored` users, seconds to build) for one event-driven source."""
    started = time.perf_counter()
    table = BUILDERS[name](users, items, ts, n_items)
    build_s = time.perf_counter() - started
    order = np.lexsort((-ts, users))  # each user's items, newest first
    by_user = np.split(items[order], np.flatnonzero(np.diff(users[order])) + 1)
    owner = users[order][np.concatenate([[0], np.flatnonzero(np.diff(users[order])) + 1])]
    history = dict(zip(owner.tolist(), by_user, strict=True))
    recs = np.full((scored.shape[0], k), -1, np.int64)
    for row, u in enumerate(scored.tolist()):
        seen = history.get(u, np.empty(0, np.int64))
        got, _ = walk(table, seen[:ANCHORS].tolist(), DECAY, k, exclude=seen)
        recs[row, : got.shape[0]] = got
    return recs, build_s
