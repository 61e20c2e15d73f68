"""The join: the event log becomes training samples and funnel numbers.

One row per exposed (list, item), labelled with click, conversions by subtype and dwell, all
joined on the exposure id carried by the tracking param. Runs on a batch engine straight over
the log's segment files, so it can run beside a serving process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuijian.data.vocab import CONVERT_SUBTYPES
from tuijian.jobs.engine import Engine

FUNNEL_DIMS: tuple[str, ...] = ("scene", "recall_id", "rank_id", "rule_id", "display_id",
                                "platform", "source")


def samples_sql() -> str:
    """One row per exposed (list, item). An exposure logged twice keeps its first position
    and time; the other columns take the smallest value, so every engine agrees."""
    subtypes = ",\n".join(
        f"count(*) FILTER (WHERE type = 'convert' AND subtype = '{s}') AS convert_{s}"
        for s in CONVERT_SUBTYPES
    )
    labels = ", ".join(f"coalesce(a.convert_{s}, 0) AS convert_{s}" for s in CONVERT_SUBTYPES)
    return f"""
    WITH exp AS (
        SELECT exposure_id, item_id, min(user_id) AS user_id, min(ts) AS ts,
               min(scene) AS scene, min(recall_id) AS recall_id,
               min(rank_id) AS rank_id, min(rule_id) AS rule_id,
               min(display_id) AS display_id, min(position) AS position,
               min(source) AS source, min(platform) AS platform,
               min(sources) AS sources, min(features) AS features
        FROM events WHERE type = 'exposure' GROUP BY exposure_id, item_id),
    act AS (
        SELECT exposure_id, item_id,
               count(*) FILTER (WHERE type = 'click') AS clicks,
               count(*) FILTER (WHERE type = 'convert') AS converts,
               {subtypes},
               sum(dwell_s) FILTER (WHERE type = 'dwell') AS dwell_s
        FROM events WHERE type <> 'exposure' GROUP BY exposure_id, item_id)
    SELECT e.*, CAST(coalesce(a.clicks, 0) > 0 AS INTEGER) AS click,
           CAST(coalesce(a.converts, 0) > 0 AS INTEGER) AS convert, {labels},
           coalesce(a.dwell_s, 0.0) AS dwell_s
    FROM exp e LEFT JOIN act a ON a.exposure_id = e.exposure_id AND a.item_id = e.item_id
    """


def join(engine: Engine, out: Path) -> dict[str, Any]:
    """Write `out/samples.parquet`; return its size, the funnel by each dimension, and how
    many click events matched no exposure (a tracking bug when it is not ~0)."""
    out.mkdir(parents=True, exist_ok=True)
    n = engine.materialize("samples", samples_sql())
    path = out / "samples.parquet"
    engine.write_parquet("SELECT * FROM samples", path)
    unmatched = engine.table(
        """SELECT count(*) AS n FROM events c WHERE c.type = 'click' AND NOT EXISTS (
            SELECT 1 FROM samples s WHERE s.exposure_id = c.exposure_id
            AND s.item_id = c.item_id)""").column("n")[0].as_py()
    return {
        "samples": n,
        "path": str(path),
        "unmatched_clicks": int(unmatched),
        "funnel": {dim: funnel(engine, dim) for dim in FUNNEL_DIMS},
    }


def funnel(engine: Engine, dim: str) -> list[dict[str, Any]]:
    return engine.table(f"""
        SELECT {dim} AS value, count(*) AS exposures, CAST(sum(click) AS BIGINT) AS clicks,
               sum(click) / count(*) AS ctr, CAST(sum(convert) AS BIGINT) AS conversions,
               CASE WHEN sum(click) > 0 THEN sum(convert) / sum(click) END AS cvr,
               avg(dwell_s) FILTER (WHERE click = 1) AS mean_dwell_s
        FROM samples GROUP BY {dim}
        ORDER BY exposures DESC, value NULLS LAST""").to_pylist()
