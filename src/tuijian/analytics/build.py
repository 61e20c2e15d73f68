"""The offline cube build: the event log's facts up to a cut-off, materialized with the
declared rollups (`tuijian report --build`, the `cube` step of `make run`)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import duckdb

from tuijian.analytics.funnel import live_facts
from tuijian.analytics.store import CubeStore


@dataclass(frozen=True, slots=True)
class BuildResult:
    facts: int
    built_until: float  # the cube holds the events with ts before this
    seconds: float


def build_cube(con: duckdb.DuckDBPyConnection, cube: CubeStore, events_sql: str,
               experiment_layers: dict[int, str], until: float | None = None) -> BuildResult:
    """`con` has the catalog view registered (funnel.connect)."""
    until = time.time() if until is None else until
    t0 = time.perf_counter()
    query = f"SELECT * FROM ({live_facts(events_sql, experiment_layers)}) WHERE ts < {until!r}"
    n = cube.replace(con, query, until)
    return BuildResult(n, until, time.perf_counter() - t0)
