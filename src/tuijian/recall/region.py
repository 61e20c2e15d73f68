"""Region recall: nearest-newest and nearest-hottest listings around the user.

Classifieds are local: a flat two streets away beats a better one across town. The pool is the
city's newest listings plus its hot list, scored by (freshness + hotness) / (1 + distance), so
one vectorized distance computation over a few thousand items answers both questions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tuijian.domain import FloatArray, IntArray
from tuijian.recall.base import Catalog, RecallContext
from tuijian.recall.index import city_centre
from tuijian.retrieval.geo import distance_km


class RegionSource:
    name = "region"

    def __init__(self, catalog: Catalog, params: dict[str, Any]) -> None:
        self.catalog = catalog
        self.scale_km = float(params.get("scale_km", 3.0))
        self.hot_pool = int(params.get("hot_pool", 2000))

    async def recall(self, ctx: RecallContext, k: int) -> tuple[IntArray, FloatArray]:
        index = self.catalog.index
        if ctx.city < 0:
            return np.empty(0, np.int64), np.empty(0)
        fresh = index.fresh_by_city.get(ctx.city, np.empty(0, np.int64))
        pool = np.unique(np.concatenate([fresh, index.city_list(ctx.city)[: self.hot_pool]]))
        lat, lon = ctx.lat, ctx.lon
        if lat is None or lon is None:
            centre = city_centre(ctx.city)
            if centre is None:
                return np.empty(0, np.int64), np.empty(0)
            lat, lon = centre
        cols = self.catalog.store.gather(pool, ("lat", "lon", "refreshed_ts"))
        dist = distance_km(lat, lon, cols["lat"].astype(np.float64),
                           cols["lon"].astype(np.float64))
        dist = np.nan_to_num(dist, nan=50.0)
        ts = cols["refreshed_ts"].astype(np.float64)
        newness = (ts - ts.min()) / max(float(ts.max() - ts.min()), 1.0)
        hot = index.hot[pool]
        hotness = hot / max(float(hot.max()), 1e-9)
        score = (newness + hotness) / (1.0 + dist / self.scale_km)
        top = np.argsort(-score, kind="stable")[:k]
        return pool[top], score[top]
