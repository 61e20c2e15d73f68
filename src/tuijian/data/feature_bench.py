"""`tuijian bench features`: the ranker's batch read of candidates' features, per backend.

Generates a marketplace, loads its items into the backend (the embedded columnar store, or
Redis under a fresh key prefix dropped afterwards), then times reads of `batch` random items'
ranking columns. Each backend is measured beside a baseline in the same run, so the ratio holds
on a noisy machine: for the embedded store, the same read item by item from a dict of rows;
for Redis, the same read one item per round trip (what pipelining saves).
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from tuijian.data.generator import generate_marketplace
from tuijian.data.items import ColumnarItemStore, ItemFeatureCenter
from tuijian.data.redis_backend import RedisTarget
from tuijian.data.redis_columns import RedisItemStore

# what the ranker's features read per candidate (static attributes and live counters)
COLUMNS = ("line", "category", "district", "price", "quality", "refreshed_ts", "clicks",
           "exposures", "publisher_id", "brand")


def _times(read: Any, n: int, batch: int, rounds: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty(rounds)
    for r in range(rounds):
        idx = rng.integers(0, n, batch)
        t0 = time.perf_counter()
        read(idx)
        out[r] = time.perf_counter() - t0
    return out * 1000.0


def _pct(ms: np.ndarray, q: float) -> float:
    return round(float(np.percentile(ms, q)), 4)


def run_features_bench(backend: str | None, items: int, batch: int, rounds: int,
                       seed: int = 1) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tuijian-bench-") as tmp:
        generate_marketplace(Path(tmp), items, 10, seed, now=time.time())
        table = pq.read_table(Path(tmp) / "items.parquet")
    store: ItemFeatureCenter
    t0 = time.perf_counter()
    if backend is None:
        store = ColumnarItemStore(table)
    else:
        target = RedisTarget.parse(backend)
        store = RedisItemStore(f"{target.url}{'&' if '?' in target.url else '?'}"
                               f"prefix=tjbench{uuid.uuid4().hex[:8]}")
        for s in range(0, table.num_rows, 20_000):
            store.upsert(table.slice(s, 20_000))
    load_s = time.perf_counter() - t0
    del table
    try:
        store.add_counts(np.arange(len(store)), "exposures", 1.0)  # live counters are set
        _times(lambda idx: store.gather(idx, COLUMNS), items, batch, min(rounds, 500), seed)
        ms = _times(lambda idx: store.gather(idx, COLUMNS), items, batch, rounds, seed + 1)
        if backend is None:
            rows = {i: {c: store.column(c)[i] for c in COLUMNS} for i in range(10_000)}
            base = _times(lambda idx: [[rows[i][c] for c in COLUMNS] for i in idx.tolist()],
                          10_000, batch, min(rounds, 2000), seed + 2)
            baseline = "dict_rows"
        else:
            one = np.empty(1, np.int64)

            def per_item(idx: np.ndarray) -> None:
                for i in idx.tolist():
                    one[0] = i
                    store.gather(one, COLUMNS)

            base = _times(per_item, items, batch, min(rounds, 200), seed + 2)
            baseline = "one_round_trip_per_item"
    finally:
        if isinstance(store, RedisItemStore):
            store.drop()
    return {
        "bench": "features", "backend": "embedded" if backend is None
        else RedisTarget.parse(backend).redacted(),
        "batch": batch, "p50_ms": _pct(ms, 50), "p99_ms": _pct(ms, 99),
        "items": items, "columns": len(COLUMNS), "rounds": rounds, "load_s": round(load_s, 2),
        "baseline": baseline, "baseline_p50_ms": _pct(base, 50),
        "speedup_vs_baseline_p50": round(float(np.median(base) / np.median(ms)), 1),
    }
