"""Retrieval engine: index build time and filtered-query latency at 1M items.

Queries are the ones recall sources send, each built around a random real item so it has
matches: a housing search (city + line + district + rooms + price range, newest first), a car
search (city + line + brand + year range, hottest first), a 3 km geo search within one line
(nearest first), the 50 nearest jobs, and a title-text search within a city. The target is
p99 <= 2 ms over the mix; one JSON line, with each kind's own percentiles beside.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from tuijian.data.generator import generate_marketplace
from tuijian.data.items import ColumnarItemStore
from tuijian.data.vocab import LINES
from tuijian.retrieval import Query, RetrievalEngine

RENT, CAR, JOB = LINES.index("house_rent"), LINES.index("car"), LINES.index("job")
Make = Callable[[int], Query]


def query_makers(store: ColumnarItemStore) -> dict[str, tuple[int, Make]]:
    """Per kind: the line its anchors come from, and the query built from an anchor item."""
    c = {name: store.column(name) for name in (
        "city", "line", "district", "rooms", "price", "brand", "year", "lat", "lon", "title")}

    def house(a: int) -> Query:
        p = float(c["price"][a])
        return Query(city=int(c["city"][a]), line=RENT,
                     terms={"district": int(c["district"][a]), "rooms": int(c["rooms"][a])},
                     ranges={"price": (0.8 * p, 1.2 * p)}, sort="freshness", limit=100)

    def car(a: int) -> Query:
        y = float(c["year"][a])
        return Query(city=int(c["city"][a]), line=CAR, terms={"brand": int(c["brand"][a])},
                     ranges={"year": (y - 2, y + 2)}, sort="hotness", limit=100)

    def geo(a: int) -> Query:
        return Query(line=int(c["line"][a]),
                     geo=(float(c["lat"][a]), float(c["lon"][a]), 3.0), limit=100)

    def nearest(a: int) -> Query:
        return Query(line=JOB, near=(float(c["lat"][a]), float(c["lon"][a])), limit=50)

    def text(a: int) -> Query:
        word = str(c["title"][a]).split()[0]  # a district, a brand or a category word
        return Query(city=int(c["city"][a]), text=word, limit=100)

    return {"house_district_rooms_price": (RENT, house), "car_brand_year_hot": (CAR, car),
            "geo_3km_line_distance": (-1, geo), "nearest_50_jobs": (JOB, nearest),
            "text_city_relevance": (-1, text)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=2000, help="per kind")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tuijian-bench-") as tmp:
        generate_marketplace(Path(tmp), args.items, 10, args.seed, now=time.time())
        store = ColumnarItemStore(pq.read_table(Path(tmp) / "items.parquet"))
    started = time.perf_counter()
    engine = RetrievalEngine.build(store)
    build_s = time.perf_counter() - started
    rng = np.random.default_rng(args.seed)
    engine.set_hotness(rng.random(len(store)))
    kinds = query_makers(store)
    line = store.column("line")
    queries: list[tuple[str, Query]] = []
    for name, (want_line, make) in kinds.items():
        pool = np.flatnonzero(line == want_line) if want_line >= 0 else np.arange(len(store))
        queries += [(name, make(int(a))) for a in rng.choice(pool, args.queries)]
    order = rng.permutation(len(queries))
    for i in order[:200]:  # warm-up: caches, allocator
        engine.search(queries[i][1])
    times: dict[str, list[float]] = {name: [] for name in kinds}
    hits: dict[str, list[int]] = {name: [] for name in kinds}
    for i in order.tolist():
        name, q = queries[i]
        t0 = time.perf_counter()
        ids, _ = engine.search(q)
        times[name].append(time.perf_counter() - t0)
        hits[name].append(len(ids))
    every = np.concatenate([np.array(t) for t in times.values()]) * 1000
    print(json.dumps({
        "bench": "retrieval", "items": args.items, "build_s": round(build_s, 2),
        "queries": int(every.shape[0]),
        "p50_ms": round(float(np.percentile(every, 50)), 3),
        "p99_ms": round(float(np.percentile(every, 99)), 3),
        "per_query": {name: {"p50_ms": round(float(np.percentile(np.array(t) * 1000, 50)), 3),
                             "p99_ms": round(float(np.percentile(np.array(t) * 1000, 99)), 3),
                             "mean_hits": round(float(np.mean(hits[name])), 1)}
                      for name, t in times.items()},
    }))


if __name__ == "__main__":
    main()
