"""Each batch job on the embedded engine (DuckDB) and on Spark over the same log, one JSON line.

The log is bench_cube's synthetic day (its event mix and JSON Lines segments); every job runs
as `tuijian jobs run --engine …` runs it, publishing its artifact. Spark's session start is
timed apart from the jobs, since a scheduler pays it once per run of all the jobs.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from bench_cube import ITEMS, write_log
from tuijian.analytics.build import build_cube
from tuijian.analytics.store import ParquetCubeStore
from tuijian.jobs.base import JobContext
from tuijian.jobs.engine import Engine, open_engine
from tuijian.jobs.join import join
from tuijian.jobs.registry import JOBS

JOB_NAMES = ("hot", "association", "item_cf", "user_cf")


def run_all(engine: Engine, data: Path, items: pa.Table, now: float) -> dict[str, float]:
    steps: dict[str, Callable[[], object]] = {
        **{name: (lambda name=name: JOBS[name].run(JobContext(data, engine, now)))
           for name in JOB_NAMES},
        "join": lambda: join(engine, data / "samples"),
        "cube": lambda: build_cube(engine, ParquetCubeStore(data / "cube"), items,
                                   {1: "recall"}, until=now),
    }
    out = {}
    for name, step in steps.items():
        t0 = time.perf_counter()
        step()
        out[name] = round(time.perf_counter() - t0, 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--spark", default="local[*]", help="the Spark master")
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    items = pa.table({"item_id": np.arange(1, ITEMS + 1), "line": rng.integers(0, 6, ITEMS),
                      "city": rng.integers(0, 20, ITEMS)})
    result: dict[str, object] = {"bench": "batch_engines", "events": args.events,
                                 "spark_master": args.spark}
    with tempfile.TemporaryDirectory() as d:
        now = time.time()
        write_log(Path(d) / "events", args.events, now - 86400)
        for label, spec in (("duckdb", "duckdb"), ("spark", args.spark)):
            t0 = time.perf_counter()
            engine = open_engine(spec, Path(d) / "events")
            result[f"{label}_start_s"] = round(time.perf_counter() - t0, 2)
            try:
                result[label] = run_all(engine, Path(d) / label, items, now)
            finally:
                engine.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
