"""The rules stage's two costly rules, dedup and scatter, per call, on candidate lists like the
ones a request hands them at 1M items: 100-320 items of one city (mostly of one line), some of
them re-posts of others, with the default strategy (ru_default: exact + text + cover dedup;
publisher k=1/4 and category k=3/5 scatter; n=20).

Only the rows the lists use are loaded into an item store, so their ingest-time signatures are
computed as a server computes them without signing the whole catalog. Prints JSON: µs per call
(mean, p50, p99) for `Dedup.apply` and for `Scatter.apply` on what dedup left.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from harness import generated_data
from tuijian.data.items import ColumnarItemStore
from tuijian.domain import Candidates
from tuijian.rules.base import RuleContext
from tuijian.rules.dedup import Dedup
from tuijian.rules.scatter import Scatter
from tuijian.rules.spec import DedupSpec, ScatterSpec

_COLUMNS = ["item_id", "line", "category", "city", "district", "title", "body",
            "publisher_id", "image_hashes"]


def candidate_lists(items: Path, lists: int, seed: int) -> tuple[pa.Table, list[list[int]]]:
    """`lists` ranked row lists of the catalog, and the catalog rows they use (one table).

    Like the request mix: most lists are one city's items (mostly of one line) in no
    particular order; three in ten are "related items" lists, the seed item's category
    (about 60% of the list) ranked above everything else, which is what makes scatter work
    hardest (every category window is full at the top).
    """
    rng = np.random.default_rng(seed)
    meta = pq.read_table(items, columns=["city", "line", "category", "dup_of"])
    city, line = meta.column("city").to_numpy(), meta.column("line").to_numpy()
    category = meta.column("category").to_numpy()
    original = meta.column("dup_of").to_numpy() - 1  # a re-post's original row, else -1
    out: list[npt.NDArray[np.int64]] = []
    for _ in range(lists):
        size = int(rng.integers(100, 320))
        local = city == rng.integers(city.max() + 1)
        related = rng.random() < 0.3
        if related:
            seed_cat = category[rng.choice(np.flatnonzero(local))]
            same = np.flatnonzero(local & (category == seed_cat))
            rows = np.r_[rng.choice(same, min(len(same), size * 6 // 10), replace=False),
                         rng.choice(np.flatnonzero(local), size * 4 // 10, replace=False)]
        else:
            pool = np.flatnonzero(local & ((line == rng.integers(line.max() + 1))
                                           | (rng.random() < 0.3)))
            rows = rng.choice(pool, min(len(pool), size), replace=False)
        # re-posts meet their original, as recall finds both
        rows = np.unique(np.r_[rows, original[rows][original[rows] >= 0]])
        rank = rng.random(len(rows)) + (category[rows] == seed_cat if related else 0)
        out.append(rows[np.argsort(-rank)])
    used = np.unique(np.concatenate(out))
    table = pq.read_table(items, columns=_COLUMNS).take(pa.array(used))
    return table, [np.searchsorted(used, r).tolist() for r in out]


def _stats(us: list[float]) -> dict[str, float]:
    a = np.asarray(us)
    return {"mean": round(float(a.mean()), 1), "p50": round(float(np.percentile(a, 50)), 1),
            "p99": round(float(np.percentile(a, 99)), 1)}


def run(items: Path, lists: int, rounds: int, seed: int) -> dict[str, object]:
    table, rows = candidate_lists(items, lists, seed)
    store = ColumnarItemStore(table)
    ctx = RuleContext(store, 20, time.time())
    dedup = Dedup(DedupSpec())
    scatter = Scatter([ScatterSpec(field="publisher_id", k=1, window=4),
                       ScatterSpec(field="category", k=3, window=5)])
    cands = [Candidates.placed(np.asarray(r, np.int64), np.linspace(1, 0, len(r)), 0)
             for r in rows]
    deduped = [dedup.apply(c, ctx)[0] for c in cands]
    timings: dict[str, list[float]] = {"dedup": [], "scatter": []}
    gc.collect()
    gc.disable()  # a collection inside one timed call is noise, not the rule's cost
    try:
        for _ in range(rounds):
            for c, d in zip(cands, deduped, strict=True):
                t0 = time.perf_counter()
                dedup.apply(c, ctx)
                t1 = time.perf_counter()
                scatter.apply(d, ctx)
                t2 = time.perf_counter()
                timings["dedup"].append((t1 - t0) * 1e6)
                timings["scatter"].append((t2 - t1) * 1e6)
    finally:
        gc.enable()
    return {"lists": lists, "rounds": rounds,
            "items_per_list": round(float(np.mean([len(c) for c in cands])), 1),
            "removed_per_list": round(float(np.mean([len(c) - len(d) for c, d in
                                                     zip(cands, deduped, strict=True)])), 2),
            "dedup_us": _stats(timings["dedup"]), "scatter_us": _stats(timings["scatter"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--lists", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    items = generated_data(args.items, args.users) / "items.parquet"
    print(json.dumps(run(items, args.lists, args.rounds, args.seed)))


if __name__ == "__main__":
    main()
