"""Region recall: nearest-newest and nearest-hottest listings around the user.

Classifieds are local: a flat two streets away beats a better one across town. The pool is the
city's newest listings plus its hot list (columns cached per index version) plus the nearest
listings from the retrieval engine's geo index, all scored by (newness + hotness) / (1 +
distance), so one vectorized distance computation answers both questions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from tuijian.domain import FloatArray, IntArray
from tuijian.recall.base import Catalog, RecallContext
from tuijian.recall.index import city_centre
from tuijian.retrieval.base import Query
from tuijian.retrieval.geo import distance_km

Norm = Callable[[IntArray, npt.NDArray[Any]], FloatArray]
PoolEntry = tuple[IntArray, FloatArray, FloatArray, FloatArray, Norm]


class RegionSource:
    name = "region"

    def __init__(self, catalog: Catalog, params: dict[str, Any]) -> None:
        self.catalog = catalog
        self.scale_km = float(params.get("scale_km", 3.0))
        self.hot_pool = int(params.get("hot_pool", 2000))
        self.nearest = int(params.get("nearest", 40))
        # city -> (index object, its version, (pool, lat, lon, newness + hotness, scorer)):
        # the pool's columns gathered once per index version, not once per request
        self._pools: dict[int, tuple[object, int, PoolEntry]] = {}

    async def recall(self, ctx: RecallContext, k: int) -> tuple[IntArray, FloatArray]:
        if ctx.city < 0:
            return np.empty(0, np.int64), np.empty(0)
        lat, lon = ctx.lat, ctx.lon
        if lat is None or lon is None:
            centre = city_centre(ctx.city)
            if centre is None:
                return np.empty(0, np.int64), np.empty(0)
            lat, lon = centre
        pool, lats, lons, base, norm = self._pool(ctx.city)
        # plus the nearest listings whatever their age or heat: the pool only holds the city's
        # newest and hottest, and a big city has far more listings than that near any one user
        near, _ = self.catalog.engine.search(Query(city=ctx.city, near=(lat, lon),
                                                   limit=min(self.nearest, k)))
        # pool is sorted (np.unique): a binary search drops the ones it already holds
        at = np.minimum(np.searchsorted(pool, near), max(pool.shape[0] - 1, 0))
        near = near[pool[at] != near] if pool.size else near
        if near.size:
            extra = self.catalog.store.gather(near, ("lat", "lon", "refreshed_ts"))
            pool = np.concatenate([pool, near])
            lats = np.concatenate([lats, extra["lat"].astype(np.float64)])
            lons = np.concatenate([lons, extra["lon"].astype(np.float64)])
            base = np.concatenate([base, norm(near, extra["refreshed_ts"])])
        dist = np.nan_to_num(distance_km(lat, lon, lats, lons), nan=50.0)
        score = base / (1.0 + dist / self.scale_km)
        if score.shape[0] > k:
            part = np.argpartition(-score, k - 1)[:k]
            top = part[np.argsort(-score[part], kind="stable")]
        else:
            top = np.argsort(-score, kind="stable")
        return pool[top], score[top]

    def _pool(self, city: int) -> tuple[IntArray, FloatArray, FloatArray, FloatArray, Norm]:
        index = self.catalog.index
        cached = self._pools.get(city)
        if cached is not None and cached[0] is index and cached[1] == index.version:
            return cached[2]
        fresh = index.fresh_by_city.get(city, np.empty(0, np.int64))
        pool = np.unique(np.concatenate([fresh, index.city_list(city)[: self.hot_pool]]))
        cols = self.catalog.store.gather(pool, ("lat", "lon", "refreshed_ts"))
        ts = cols["refreshed_ts"].astype(np.float64)
        t0 = float(ts.min(initial=0.0))
        span = max(float(np.ptp(ts)) if ts.size else 0.0, 1.0)
        top_hot = max(float(index.hot[pool].max(initial=0.0)), 1e-9)

        def norm(idx: IntArray, refreshed: npt.NDArray[Any]) -> FloatArray:
            """newness + hotness, both on the pool's scale (so outsiders compare fairly)."""
            newness = np.clip((refreshed.astype(np.float64) - t0) / span, 0.0, 1.0)
            return newness + np.minimum(index.hot[idx] / top_hot, 1.0)

        entry = (pool, cols["lat"].astype(np.float64), cols["lon"].astype(np.float64),
                 norm(pool, cols["refreshed_ts"]), norm)
        self._pools[city] = (index, index.version, entry)
        return entry
