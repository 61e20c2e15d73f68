"""The daily cube from N events (default 10M; target ≤ 60 s on 2 cores): an event log of
synthetic exposures, clicks, conversions and dwell over 100k items is written in the log's own
JSON Lines format, then `build_cube` materializes facts and rollups. The same day then goes
through the daily tracking alarms and the real-time minute buckets with their alarm checks.
Prints one JSON line."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from contextlib import closing
from functools import partial
from pathlib import Path

import duckdb
import numpy as np

from tuijian.analytics.build import build_cube
from tuijian.analytics.funnel import FunnelQuery, funnel, live_facts
from tuijian.analytics.store import ParquetCubeStore
from tuijian.data.eventlog import snapshot_sql
from tuijian.jobs.engine import DuckDBEngine

ITEMS = 100_000


def write_log(root: Path, n: int, start: float) -> float:
    """n events as the event log stores them (one segment per ~2M), like a day of traffic."""
    root.mkdir(parents=True)
    t0 = time.perf_counter()
    con = duckdb.connect()
    per = 2_000_000
    for s, lo in enumerate(range(0, n, per)):
        m = min(per, n - lo)
        path = root / f"events-2026112{s % 10}-{s:03d}.jsonl"
        con.execute(f"""
            COPY (SELECT
                'e' || i AS event_id,
                CASE WHEN i % 20 = 0 THEN 'click' WHEN i % 97 = 0 THEN 'convert'
                     WHEN i % 21 = 0 THEN 'dwell' ELSE 'exposure' END AS type,
                'u' || (hash(i) % 500000) AS user_id,
                CAST(1 + hash(i * 7) % {ITEMS} AS BIGINT) AS item_id,
                {start} + (i * 86400.0 / {n}) AS ts,
                CASE WHEN i % 97 = 0 THEN ['chat','call','favorite','share'][1 + i % 4] END
                    AS subtype,
                CASE WHEN i % 21 = 0 THEN CAST(hash(i) % 120000 AS BIGINT) / 1000.0 END
                    AS dwell_s,
                'x' || (i // 10) AS exposure_id,
                ['guess_you_like','feed','detail_related','search_fallback'][1 + i % 4] AS scene,
                CASE WHEN (i // 10) % 2 = 0 THEN 'r_default' ELSE 'r_rrf' END AS recall_id,
                'rk_ctr_cvr' AS rank_id, 'ru_default' AS rule_id, 'd_card' AS display_id,
                CAST(i % 10 AS INTEGER) AS position,
                ['hot','region','interest','item_cf','mf'][1 + i % 5] AS source,
                ['android','ios','web','m'][1 + CAST(hash(i // 10) % 4 AS INTEGER)] AS platform,
                CASE WHEN (i // 10) % 2 = 0 THEN ['1:control'] ELSE ['1:rrf'] END
                    AS experiments
              FROM range({lo}, {lo + m}) t(i))
            TO '{path}' (FORMAT json)""")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as d:
        start = time.time() - 86400
        written = write_log(Path(d) / "events", args.events, start)
        import pyarrow as pa

        items = pa.table({
            "item_id": np.arange(1, ITEMS + 1), "line": rng.integers(0, 6, ITEMS),
            "city": rng.integers(0, 20, ITEMS)})
        con = duckdb.connect()
        con.register("cube_items", items)
        cube = ParquetCubeStore(Path(d) / "cube")
        events = snapshot_sql(Path(d) / "events")
        with closing(DuckDBEngine(events)) as engine:
            res = build_cube(engine, cube, items, {1: "recall"}, until=time.time())
        t0 = time.perf_counter()
        rows = funnel(con, cube, None, FunnelQuery(["slot", "platform", "exp_recall"]))
        query_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        live = live_facts(events, {1: "recall"})
        funnel(con, cube, live, FunnelQuery(["slot", "platform"], start=start, end=start + 3600))
        tail_s = time.perf_counter() - t0
        stream = bench_alarms(con, cube, live, events, start, Path(d))
    print(json.dumps({
        "bench": "cube_build", "events": args.events, "facts": res.facts,
        "build_s": round(res.seconds, 1), "target_s": 60,
        "write_log_s": round(written, 1), "funnel_query_s": round(query_s, 3),
        "funnel_rows": len(rows), "funnel_with_live_scan_s": round(tail_s, 2), **stream,
    }))


def bench_alarms(con: duckdb.DuckDBPyConnection, cube: ParquetCubeStore, live: str,
                 events: str, start: float, root: Path) -> dict[str, float]:
    """The daily alarms over the built day; the minute buckets refilled from the log (as at
    a server's start) and one stream check over them."""
    from tuijian.analytics.alarms import check_day
    from tuijian.analytics.cube import local_date
    from tuijian.analytics.monitor import StreamMonitor
    from tuijian.analytics.stream import MinuteCube
    from tuijian.data.eventlog import quarantine_snapshot_sql
    from tuijian.data.generator import generate_marketplace
    from tuijian.data.items import ColumnarItemStore

    day = local_date(start + 43200)
    t0 = time.perf_counter()
    alarms = check_day(partial(funnel, con, cube, live), events,
                       quarantine_snapshot_sql(root / "events"), day)
    daily_s = time.perf_counter() - t0
    generate_marketplace(root / "gen", ITEMS, 1000, seed=1, now=start)
    items = ColumnarItemStore.open(root / "gen" / "items.parquet", root / "items.journal")
    now = start + 86400
    minutes = MinuteCube(items, lambda: {1: "recall"}, clock=lambda: now)
    t0 = time.perf_counter()
    minutes.load(events)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    StreamMonitor(minutes, clock=lambda: now).check()
    check_s = time.perf_counter() - t0
    return {"daily_alarms_s": round(daily_s, 2), "daily_alarms": len(alarms),
            "stream_refill_s": round(load_s, 1), "stream_check_s": round(check_s, 3)}


if __name__ == "__main__":
    main()
