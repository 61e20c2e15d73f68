"""Related recall for a detail page: the viewed listing's attributes as retrieval queries.

Tiers from tight to loose — same category, district, series and a close price; then same
category and a wider price band; then the category; then the business line — each one a
retrieval-engine query over the anchor's city, hot first. The score is the tier (see the
strategy's `rank_within_tiers`), so the closest matches lead and the ranker orders within each.

A listing's related candidates depend on nothing but the listing and the catalog, and detail
page views are as skewed as listings' popularity: the few most viewed listings take a large
share of requests, and they tend to sit in the biggest categories, whose loose tiers are the
dearest queries (6-10 ms at 1M items). So each listing's answer is kept for `cache_s` seconds
(LRU, `cache_size` listings). Staleness is harmless: a candidate that stopped being eligible
meanwhile is dropped by the filters after fusion, which read the live catalog.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

import numpy as np

from tuijian.domain import FloatArray, IntArray
from tuijian.recall.base import Catalog, RecallContext
from tuijian.recall.tiers import by_tier, search_tiers

ATTRS = ("category", "district", "price", "series", "line", "city", "rooms")


def related_queries(a: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    """Query kwargs per tier for an anchor's attributes (codes; -1 / NaN = not applicable)."""
    price = float(a["price"])
    has_price = price == price and price > 0

    def band(width: float) -> dict[str, tuple[float | None, float | None]]:
        return {"price": (price / width, price * width)} if has_price else {}

    cat = {"category": int(a["category"])}
    tight = {**cat, "district": int(a["district"])}
    if int(a["series"]) >= 0:
        tight["series"] = int(a["series"])
    elif int(a["rooms"]) >= 0:
        tight["rooms"] = int(a["rooms"])
    base = {"city": int(a["city"]), "line": int(a["line"]), "sort": "hotness", "limit": limit}
    return [
        {**base, "terms": tight, "ranges": band(1.3)},
        {**base, "terms": cat, "ranges": band(1.6)},
        {**base, "terms": cat},
        {**base},
    ]


class RelatedSource:
    name = "related"

    def __init__(self, catalog: Catalog, params: dict[str, Any]) -> None:
        self.catalog = catalog
        self.cache_s = float(params.get("cache_s", 60.0))
        self.cache_size = int(params.get("cache_size", 4096))
        # (anchor, k) -> (when, ids, scores), least recently used first
        self._cache: OrderedDict[tuple[int, int], tuple[float, IntArray, FloatArray]] = (
            OrderedDict())

    async def recall(self, ctx: RecallContext, k: int) -> tuple[IntArray, FloatArray]:
        if ctx.anchor < 0:
            return np.empty(0, np.int64), np.empty(0)
        key, now = (ctx.anchor, k), time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.cache_s:
            self._cache.move_to_end(key)
            return hit[1], hit[2]
        cols = self.catalog.store.gather(np.array([ctx.anchor]), ATTRS)
        anchor = {name: v[0] for name, v in cols.items()}
        plan = related_queries(anchor, k)
        tiers = search_tiers(self.catalog.engine, plan, k, np.array([ctx.anchor], np.int64))
        ids, scores = by_tier(tiers, len(plan), k)
        ids.flags.writeable = scores.flags.writeable = False  # shared by every hit
        if self.cache_s > 0:
            self._cache[key] = (now, ids, scores)
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return ids, scores
