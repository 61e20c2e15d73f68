"""Feature-center batch read: 150 random items' ranking features at 1M items.

The ranker reads every candidate's features in one gather per column; this measures that
gather (target p99 ≤ 0.2 ms), beside a baseline of the same read done item by item through a
Python dict of rows, measured in the same run so the ratio holds on a noisy machine.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from tuijian.data.generator import generate_marketplace
from tuijian.data.items import ColumnarItemStore

COLUMNS = ("line", "category", "district", "price", "quality", "refreshed_ts", "clicks",
           "exposures", "publisher_id", "brand")


def measure(store: ColumnarItemStore, batch: int, rounds: int, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    out = []
    n = len(store)
    for _ in range(rounds):
        idx = rng.integers(0, n, batch)
        t0 = time.perf_counter()
        store.gather(idx, COLUMNS)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tuijian-bench-") as tmp:
        generate_marketplace(Path(tmp), args.items, 10, 1, now=time.time())
        t0 = time.perf_counter()
        store = ColumnarItemStore(pq.read_table(Path(tmp) / "items.parquet"))
        load_s = time.perf_counter() - t0
    times = np.array(measure(store, args.batch, args.rounds, 2)) * 1000
    # baseline: the same read as per-item lookups in a dict of row dicts (10k items suffice)
    rows = {i: {c: store.column(c)[i] for c in COLUMNS} for i in range(10_000)}
    rng = np.random.default_rng(3)
    base = []
    for _ in range(2000):
        ids = rng.integers(0, 10_000, args.batch).tolist()
        t0 = time.perf_counter()
        _ = [[rows[i][c] for c in COLUMNS] for i in ids]
        base.append(time.perf_counter() - t0)
    base_ms = np.array(base) * 1000
    print(json.dumps({
        "bench": "features", "backend": "embedded", "items": args.items, "batch": args.batch,
        "columns": len(COLUMNS), "load_s": round(load_s, 2),
        "p50_ms": round(float(np.percentile(times, 50)), 4),
        "p99_ms": round(float(np.percentile(times, 99)), 4),
        "dict_rows_p50_ms": round(float(np.percentile(base_ms, 50)), 4),
        "speedup_vs_dict_rows_p50": round(float(np.median(base_ms) / np.median(times)), 1),
    }))


if __name__ == "__main__":
    main()
