"""The offline cube build: the event log's facts up to a cut-off, materialized with the
declared rollups (`tuijian report --build`, the `cube` step of `make run`), on any batch
engine."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pyarrow as pa

from tuijian.analytics.cube import facts_sql
from tuijian.analytics.funnel import ITEMS_VIEW
from tuijian.analytics.store import CubeStore
from tuijian.jobs.engine import EVENTS, Engine


@dataclass(frozen=True, slots=True)
class BuildResult:
    facts: int
    built_until: float  # the cube holds the events with ts before this
    seconds: float


def build_cube(engine: Engine, cube: CubeStore, items: pa.Table,
               experiment_layers: dict[int, str], until: float | None = None) -> BuildResult:
    """The facts of the engine's event log up to `until`; `items` is the catalog's columns
    that dimensions read (funnel.items_table)."""
    until = time.time() if until is None else until
    t0 = time.perf_counter()
    engine.register(ITEMS_VIEW, items)
    facts = facts_sql(EVENTS, f"SELECT * FROM {ITEMS_VIEW}", experiment_layers, engine.dialect)
    n = cube.replace(engine, f"SELECT * FROM ({facts}) AS f WHERE ts < {until!r}", until)
    return BuildResult(n, until, time.perf_counter() - t0)
