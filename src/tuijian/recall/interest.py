"""Interest recall: the user's interest tags (from the profile) as retrieval-engine queries.

A user who clicks 2-bedroom rentals in Haidian has told us which category, district, price
band and brand they care about; each of their strongest business lines becomes a query over
the city for those values (then a looser one for the line's categories alone), hot first.
Users with no behavior get nothing here: hot and region serve them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tuijian.data.users import UserProfile
from tuijian.data.vocab import CATEGORY_LINE
from tuijian.domain import FloatArray, IntArray
from tuijian.recall.base import Catalog, RecallContext
from tuijian.recall.tiers import search_tiers


def _top(profile: UserProfile, name: str, n: int) -> list[int]:
    tags = profile.interests.get(name, {})
    return sorted(tags, key=tags.__getitem__, reverse=True)[:n]


def interest_queries(profile: UserProfile, city: int, limit: int, lines: int = 2
                     ) -> list[dict[str, Any]]:
    """Query kwargs, most specific first, for a profile's strongest interests."""
    out: list[dict[str, Any]] = []
    districts = _top(profile, "district", 2)
    bands = _top(profile, "price_band", 1)
    for line in _top(profile, "line", lines):
        cats = [c for c in _top(profile, "category", 4) if CATEGORY_LINE[c] == line]
        terms: dict[str, Any] = {"category": cats} if cats else {}
        if districts:
            near = {**terms, "district": districts}
            if bands:
                near["price_band"] = [max(bands[0] - 1, 0), bands[0], min(bands[0] + 1, 4)]
            out.append({"city": city, "line": line, "terms": near, "limit": limit})
        out.append({"city": city, "line": line, "terms": terms, "limit": limit})
    for brand in _top(profile, "brand", 1):
        out.append({"city": city, "terms": {"brand": brand}, "limit": limit})
    return out


class InterestSource:
    name = "interest"

    def __init__(self, catalog: Catalog, params: dict[str, Any]) -> None:
        self.catalog = catalog
        self.lines = int(params.get("lines", 2))

    async def recall(self, ctx: RecallContext, k: int) -> tuple[IntArray, FloatArray]:
        if ctx.city < 0 or not ctx.profile.interests:
            return np.empty(0, np.int64), np.empty(0)
        plan = interest_queries(ctx.profile, ctx.city, k, self.lines)
        tiers = search_tiers(self.catalog.engine, [{"sort": "hotness", **q} for q in plan], k)
        if not tiers:
            return np.empty(0, np.int64), np.empty(0)
        idx = np.concatenate(tiers)[:k]
        return idx, self.catalog.index.hot[idx]
