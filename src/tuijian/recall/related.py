"""Related recall for a detail page: listings like the one being viewed.

A first, vectorized attribute match over the anchor's city and business line: same category,
same district, close price (log scale), same brand/series and similar rooms score higher; the
hot score breaks ties. The retrieval-engine query version deepens this in its own issue.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tuijian.domain import FloatArray, IntArray
from tuijian.recall.base import Catalog, RecallContext

ATTRS = ("category", "district", "price", "brand", "series", "rooms", "line", "city")


class RelatedSource:
    name = "related"

    def __init__(self, catalog: Catalog, params: dict[str, Any]) -> None:
        self.catalog = catalog
        self.max_pool = int(params.get("max_pool", 50_000))

    async def recall(self, ctx: RecallContext, k: int) -> tuple[IntArray, FloatArray]:
        if ctx.anchor < 0:
            return np.empty(0, np.int64), np.empty(0)
        store, index = self.catalog.store, self.catalog.index
        a = store.gather(np.array([ctx.anchor]), ATTRS)
        pool = index.group_list(int(a["city"][0]), int(a["line"][0]))[: self.max_pool]
        pool = pool[pool != ctx.anchor]
        if pool.size == 0:
            return pool, np.empty(0)
        c = store.gather(pool, ATTRS)
        score = (
            4.0 * (c["category"] == a["category"][0])
            + 1.0 * (c["district"] == a["district"][0])
            + 1.0 * ((c["brand"] == a["brand"][0]) & (c["brand"] >= 0))
            + 1.0 * ((c["series"] == a["series"][0]) & (c["series"] >= 0))
            + 0.5 * ((c["rooms"] == a["rooms"][0]) & (c["rooms"] >= 0))
        ).astype(np.float64)
        price_gap = np.abs(np.log1p(np.nan_to_num(c["price"].astype(np.float64)))
                           - np.log1p(np.nan_to_num(float(a["price"][0]))))
        score += 2.0 * np.exp(-2.0 * price_gap)
        hot = index.hot[pool]
        score += hot / max(float(hot.max()), 1e-9)
        top = np.argsort(-score, kind="stable")[:k]
        return pool[top], score[top]
