"""The funnel: any dimensions, filters and time range over the cube, always up to date.

The offline cube holds facts up to its `built_until`; the event log's facts after it are read
live and unioned at the fact level, so unique users and medians stay exact across the seam.
A query that groups by exactly a rollup's dimensions, with no time range, reads the rollup
when nothing has arrived since the build.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from tuijian.analytics.cube import (
    LOCAL_TZ,
    MEASURE,
    MEASURES,
    RATIOS,
    SCALED,
    check_dims,
    facts_sql,
)
from tuijian.analytics.store import ROLLUPS, CubeStore, aggregate_sql
from tuijian.data.items import ItemFeatureCenter

ITEMS_VIEW = "cube_items"
Rows = list[dict[str, Any]]


@dataclass(slots=True)
class FunnelQuery:
    dims: list[str]
    filters: dict[str, list[str]] = field(default_factory=dict)
    start: float | None = None  # unix seconds, inclusive
    end: float | None = None  # exclusive

    @classmethod
    def parse(cls, dims: str, filters: str | None = None, start: str | None = None,
              end: str | None = None) -> FunnelQuery:
        """From the strings the endpoint and the CLI take; ValueError names the field."""
        return cls([d for d in dims.split(",") if d], parse_filters(filters),
                   parse_time(start, "from"), parse_time(end, "to"))

    def __post_init__(self) -> None:
        check_dims(self.dims)
        check_dims(list(self.filters), "filters")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("to: must be after from")


# how reports and alarms run a funnel query: the server's (cube + live log) or a CLI's
Query = Callable[["FunnelQuery"], Rows]


def parse_filters(text: str | None) -> dict[str, list[str]]:
    """`platform:ios|android,scene:feed` → {"platform": ["ios", "android"], "scene": […]}."""
    out: dict[str, list[str]] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, sep, values = part.partition(":")
        if not sep or not values:
            raise ValueError(f"filters: {part!r} is not dim:value[|value…]")
        out.setdefault(name.strip(), []).extend(v for v in values.split("|") if v)
    return out


def parse_time(text: str | None, where: str) -> float | None:
    """Unix seconds, or an ISO date / datetime (local time, UTC+8, unless it names a zone)."""
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{where}: {text!r} is neither unix seconds nor an ISO date") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=LOCAL_TZ)
    return t.timestamp()


def items_table(store: ItemFeatureCenter) -> pa.Table:
    """The catalog's columns that dimensions read (codes)."""
    return pa.table({c: store.column(c) for c in ("item_id", "line", "city")})


def connect(store: ItemFeatureCenter) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.register(ITEMS_VIEW, items_table(store))
    return con


def live_facts(events_sql: str, experiment_layers: dict[int, str]) -> str:
    return facts_sql(events_sql, f"SELECT * FROM {ITEMS_VIEW}", experiment_layers)


def funnel(con: duckdb.DuckDBPyConnection, cube: CubeStore, live: str | None,
           q: FunnelQuery) -> list[dict[str, Any]]:
    """Rows of the dimensions' values and every measure and ratio, most exposures first."""
    until = cube.built_until()
    stored = cube.facts_relation()
    relation = _rollup(con, cube, live, until, q)
    if relation is None:
        parts = []
        if stored is not None:
            parts.append(f"SELECT * FROM {stored} WHERE ts < {until!r}")
        if live is not None:
            parts.append(f"SELECT * FROM ({live}) WHERE ts >= {until!r}")
        if not parts:
            return []
        relation = "(" + " UNION ALL BY NAME ".join(parts) + ")"
        sql = aggregate_sql(relation, q.dims, where_sql(q))
    else:
        sql = f"SELECT * FROM {relation} {('WHERE ' + where_sql(q)) if q.filters else ''}"
    rel = con.sql(f"{sql} ORDER BY exposures DESC, {', '.join(q.dims) or '1'}")
    return finish_rows(rel.columns, rel.fetchall())


def _rollup(con: duckdb.DuckDBPyConnection, cube: CubeStore, live: str | None, until: float,
            q: FunnelQuery) -> str | None:
    if q.start is not None or q.end is not None or not set(q.filters) <= set(q.dims):
        return None
    name = next((n for n, dims in ROLLUPS.items() if set(dims) == set(q.dims)), None)
    if name is None or (relation := cube.rollup_relation(name)) is None:
        return None
    if live is not None and con.sql(
            f"SELECT count(*) FROM ({live}) WHERE ts >= {until!r}").fetchall()[0][0]:
        return None  # events since the build: the facts path includes them
    return relation


def where_sql(q: FunnelQuery, time_col: str = "ts") -> str:
    """The query's time range and filters as a SQL condition ('' when there are none)."""
    conds = []
    if q.start is not None:
        conds.append(f"{time_col} >= {q.start!r}")
    if q.end is not None:
        conds.append(f"{time_col} < {q.end!r}")
    for name, values in q.filters.items():
        lits = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
        conds.append(f"CAST({name} AS VARCHAR) IN ({lits})")
    return " AND ".join(conds)


def finish_rows(columns: list[str], rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Rows as dicts, without the empty cell an aggregate over nothing returns."""
    out = [finish_row(dict(zip(columns, r, strict=True))) for r in rows]
    return [r for r in out if any(r[m.name] for m in MEASURES if m.additive)]


def finish_row(row: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready values, plus the ratios and scaled measures derived from the measures."""
    for k, v in row.items():
        if isinstance(v, dt.date):
            row[k] = v.isoformat()
        elif k in MEASURE and MEASURE[k].additive and v is not None:
            row[k] = int(v)
    for name, source, scale in SCALED:
        row[name] = row[source] / scale if row.get(source) is not None else None
    for name, num, den in RATIOS:
        n, d = row.get(num), row.get(den)
        row[name] = n / d if n is not None and d else None
    return row

