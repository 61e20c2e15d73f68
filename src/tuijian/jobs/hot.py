"""Recent hotness: per-item PV, UV, clicks and expected clicks over the last days.

The live counters are all-time; a listing that was hot last month should not lead today's hot
lists. This job recomputes, over a recent window, what the hot score needs: page views
(exposures), unique visitors (distinct users who clicked), clicks, and the clicks the item's
positions predicted (for COEC). The index builder prefers these when a version is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from tuijian.data.items import ItemFeatureCenter
from tuijian.domain import FloatArray
from tuijian.jobs.artifacts import Artifact
from tuijian.jobs.base import JobContext
from tuijian.rank.signals import MAX_POSITION, default_position_ctr, position_ctr


@dataclass(slots=True)
class RecentStats:
    """Recent counters aligned with the service's dense item indexes (0 for unseen items)."""

    pv: FloatArray
    uv: FloatArray
    clicks: FloatArray
    expected: FloatArray

    @classmethod
    def from_table(cls, table: pa.Table, store: ItemFeatureCenter) -> RecentStats:
        idx = store.index_of(table.column("item_id").to_pylist())
        ok = idx >= 0
        cols = {}
        for name in ("pv", "uv", "clicks", "expected"):
            col = np.zeros(len(store))
            col[idx[ok]] = table.column(name).to_numpy().astype(np.float64)[ok]
            cols[name] = col
        return cls(**cols)


class HotJob:
    name = "hot"

    def run(self, ctx: JobContext) -> Artifact:
        days = float(ctx.params.get("window_days", 7.0))
        since = ctx.now - days * 86_400
        con = duckdb.connect()
        con.execute(f"""CREATE TEMP TABLE recent AS SELECT * FROM {ctx.events_sql}
                        WHERE ts >= {since} AND ts <= {ctx.now}""").fetchall()
        by_pos = con.sql(f"""
            SELECT least(coalesce(position, 0), {MAX_POSITION - 1}) AS p,
                   count(DISTINCT CASE WHEN type = 'exposure' THEN exposure_id || item_id END),
                   count(DISTINCT CASE WHEN type = 'click' THEN exposure_id || item_id END)
            FROM recent GROUP BY 1""").fetchall()
        exposures, clicks = np.zeros(MAX_POSITION), np.zeros(MAX_POSITION)
        for p, e, c in by_pos:
            exposures[p], clicks[p] = e, c
        prior = clicks.sum() / exposures.sum() if exposures.sum() >= 1000 else None
        curve = position_ctr(clicks, exposures, default_position_ctr(prior) if prior
                             else default_position_ctr())
        con.register("curve", pa.table({"p": np.arange(MAX_POSITION), "ctr": curve}))
        ctx.progress("aggregate", 0.5)
        parts = con.sql(f"""
            WITH e AS (
                SELECT item_id, least(coalesce(position, 0), {MAX_POSITION - 1}) AS p,
                       count(DISTINCT exposure_id) AS n
                FROM recent WHERE type = 'exposure' GROUP BY 1, 2)
            SELECT item_id,
                   sum(n)::DOUBLE AS pv,
                   sum(n * ctr) AS expected,
                   0.0 AS uv, 0.0 AS clicks
            FROM e JOIN curve USING (p) GROUP BY item_id
            UNION ALL
            SELECT item_id, 0.0, 0.0, count(DISTINCT user_id)::DOUBLE,
                   count(DISTINCT exposure_id)::DOUBLE
            FROM recent WHERE type = 'click' GROUP BY item_id""").to_arrow_table()
        con.register("parts", parts)
        summed = con.sql("""SELECT item_id, sum(pv) AS pv, sum(uv) AS uv, sum(clicks) AS clicks,
                                   sum(expected) AS expected
                            FROM parts GROUP BY item_id ORDER BY item_id""").to_arrow_table()
        return ctx.artifacts.write(self.name, {"items": summed},
                                   {"params": {"window_days": days}, "items": summed.num_rows,
                                    "now": ctx.now})
