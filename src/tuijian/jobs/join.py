"""The join: the event log becomes training samples and funnel numbers.

One row per exposed (list, item), labelled with click, conversions by subtype and dwell, all
joined on the exposure id carried by the tracking param. Runs in DuckDB straight over the log's
segment files, so it can run beside a serving process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from tuijian.data.vocab import CONVERT_SUBTYPES

FUNNEL_DIMS: tuple[str, ...] = ("scene", "recall_id", "rank_id", "rule_id", "display_id",
                                "platform", "source")


def samples_sql(events_sql: str) -> str:
    subtypes = ",\n".join(
        f"count(*) FILTER (WHERE type = 'convert' AND subtype = '{s}') AS convert_{s}"
        for s in CONVERT_SUBTYPES
    )
    labels = ", ".join(f"coalesce(a.convert_{s}, 0) AS convert_{s}" for s in CONVERT_SUBTYPES)
    return f"""
    WITH ev AS (SELECT * FROM {events_sql}),
    exp AS (
        SELECT exposure_id, item_id, any_value(user_id) AS user_id, min(ts) AS ts,
               any_value(scene) AS scene, any_value(recall_id) AS recall_id,
               any_value(rank_id) AS rank_id, any_value(rule_id) AS rule_id,
               any_value(display_id) AS display_id, min(position) AS position,
               any_value(source) AS source, any_value(platform) AS platform,
               any_value(sources) AS sources, any_value(features) AS features
        FROM ev WHERE type = 'exposure' GROUP BY exposure_id, item_id),
    act AS (
        SELECT exposure_id, item_id,
               count(*) FILTER (WHERE type = 'click') AS clicks,
               count(*) FILTER (WHERE type = 'convert') AS converts,
               {subtypes},
               sum(dwell_s) FILTER (WHERE type = 'dwell') AS dwell_s
        FROM ev WHERE type <> 'exposure' GROUP BY exposure_id, item_id)
    SELECT e.*, (coalesce(a.clicks, 0) > 0)::INTEGER AS click,
           (coalesce(a.converts, 0) > 0)::INTEGER AS convert, {labels},
           coalesce(a.dwell_s, 0.0) AS dwell_s
    FROM exp e LEFT JOIN act a USING (exposure_id, item_id)
    """


def join(events_sql: str, out: Path) -> dict[str, Any]:
    """Write `out/samples.parquet`; return its size, the funnel by each dimension, and how
    many click events matched no exposure (a tracking bug when it is not ~0)."""
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"CREATE TEMP TABLE samples AS {samples_sql(events_sql)}").fetchall()
    path = out / "samples.parquet"
    con.execute(f"COPY samples TO '{path}' (FORMAT parquet)").fetchall()
    n = con.execute("SELECT count(*) FROM samples").fetchall()[0]
    unmatched = con.execute(
        f"""SELECT count(*) FROM {events_sql} c WHERE c.type = 'click' AND NOT EXISTS (
            SELECT 1 FROM samples s WHERE s.exposure_id = c.exposure_id
            AND s.item_id = c.item_id)"""
    ).fetchall()[0]
    return {
        "samples": int(n[0]),
        "path": str(path),
        "unmatched_clicks": int(unmatched[0]),
        "funnel": {dim: funnel(con, dim) for dim in FUNNEL_DIMS},
    }


def funnel(con: duckdb.DuckDBPyConnection, dim: str) -> list[dict[str, Any]]:
    rel = con.sql(f"""
        SELECT {dim} AS value, count(*) AS exposures, sum(click) AS clicks,
               sum(click) / count(*) AS ctr, sum(convert) AS conversions,
               CASE WHEN sum(click) > 0 THEN sum(convert) / sum(click) END AS cvr,
               avg(dwell_s) FILTER (WHERE click = 1) AS mean_dwell_s
        FROM samples GROUP BY {dim} ORDER BY exposures DESC""")
    cols = rel.columns
    return [dict(zip(cols, row, strict=True)) for row in rel.fetchall()]
