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
        # city -> (index object, its version, pool, lat, lon, newness + hotness): the pool's
        # columns gathered once per index version, not once per request
        self._pools: dict[int, tuple[object, int, IntArray, FloatArray, FloatArray,
                                     FloatArray]] = {}

    async def recall(self, ctx: RecallContext, k: int) -> tuple[IntArray, FloatArray]:
        if ctx.city < 0:
            return np.empty(0, np.int64), np.empty(0)
        lat, lon = ctx.lat, ctx.lon
        if lat is None or lon is None:
            centre = city_centre(ctx.city)
            if centre is None:
                return np.empty(0, np.int64), np.empty(0)
            lat, lon = centre
        pool, lats, lons, base = self._pool(ctx.city)
        dist = np.nan_to_num(distance_km(lat, lon, lats, lons), nan=50.0)
        score = base / (1.0 + dist / self.scale_km)
        if score.shape[0] > k:
            part = np.argpartition(-score, k - 1)[:k]
            top = part[np.argsort(-score[part], kind="stable")]
        else:
            top = np.argsort(-score, kind="stable")
        return pool[top], score[top]

    def _pool(self, city: int) -> tuple[IntArray, FloatArray, FloatArray, FloatArray]:
        index = self.catalog.index
        cached = self._pools.get(city)
        if cached is not None and cached[0] is index and cached[1] == index.version:
            return cached[2], cached[3], cached[4], cached[5]
        fresh = index.fresh_by_city.get(city, np.empty(0, np.int64))
        pool = np.unique(np.concatenate([fresh, index.city_list(city)[: self.hot_pool]]))
        cols = self.catalog.store.gather(pool, ("lat", "lon", "refreshed_ts"))
        ts = cols["refreshed_ts"].astype(np.float64)
        newness = (ts - ts.min(initial=0.0)) / max(float(np.ptp(ts)) if ts.size else 0.0, 1.0)
        hot = index.hot[pool]
        base = newness + hot / max(float(hot.max(initial=0.0)), 1e-9)
        lats, lons = cols["lat"].astype(np.float64), cols["lon"].astype(np.float64)
        self._pools[city] = (index, index.version, pool, lats, lons, base)
        return pool, lats, lons, base
