"""Recent hotness: per-item PV, UV, clicks and expected clicks over the last days.

The live counters are all-time; a listing that was hot last month should not lead today's hot
lists. This job recomputes, over a recent window, what the hot score needs: page views
(exposures), unique visitors (distinct users who clicked), clicks, and the clicks the item's
positions predicted (for COEC). The index builder prefers these when a version is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

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
        engine = ctx.engine
        engine.materialize("hot_recent", f"""SELECT * FROM events
                                             WHERE ts >= {since} AND ts <= {ctx.now}""")
        pair = "exposure_id || '|' || CAST(item_id AS STRING)"
        by_pos = engine.table(f"""
            SELECT least(coalesce(position, 0), {MAX_POSITION - 1}) AS p,
                   count(DISTINCT CASE WHEN type = 'exposure' THEN {pair} END) AS e,
                   count(DISTINCT CASE WHEN type = 'click' THEN {pair} END) AS c
            FROM hot_recent GROUP BY 1""")
        exposures, clicks = np.zeros(MAX_POSITION), np.zeros(MAX_POSITION)
        p = by_pos.column("p").to_numpy()
        exposures[p] = by_pos.column("e").to_numpy()
        clicks[p] = by_pos.column("c").to_numpy()
        prior = clicks.sum() / exposures.sum() if exposures.sum() >= 1000 else None
        curve = position_ctr(clicks, exposures, default_position_ctr(prior) if prior
                             else default_position_ctr())
        engine.register("hot_curve", pa.table({"p": np.arange(MAX_POSITION, dtype=np.int32),
                                               "ctr": curve}))
        ctx.progress("aggregate", 0.5)
        summed = engine.table(f"""
            WITH e AS (
                SELECT item_id, least(coalesce(position, 0), {MAX_POSITION - 1}) AS p,
                       count(DISTINCT exposure_id) AS n
                FROM hot_recent WHERE type = 'exposure' GROUP BY 1, 2),
            parts AS (
                SELECT item_id, CAST(sum(n) AS DOUBLE) AS pv, sum(n * ctr) AS expected,
                       CAST(0 AS DOUBLE) AS uv, CAST(0 AS DOUBLE) AS clicks
                FROM e JOIN hot_curve USING (p) GROUP BY item_id
                UNION ALL
                SELECT item_id, CAST(0 AS DOUBLE), CAST(0 AS DOUBLE),
                       CAST(count(DISTINCT user_id) AS DOUBLE),
                       CAST(count(DISTINCT exposure_id) AS DOUBLE)
                FROM hot_recent WHERE type = 'click' GROUP BY item_id)
            SELECT item_id, sum(pv) AS pv, sum(uv) AS uv, sum(clicks) AS clicks,
                   sum(expected) AS expected
            FROM parts GROUP BY item_id ORDER BY item_id""")
        return ctx.artifacts.write(self.name, {"items": summed},
                                   {"params": {"window_days": days}, "items": summed.num_rows,
                                    "now": ctx.now})
