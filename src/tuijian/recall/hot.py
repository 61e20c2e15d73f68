"""Hot recall: the best listings at every granularity the user's profile can name.

The cold-start workhorse. A share of the quota goes to each granularity the profile knows —
the user's home district, their top interest categories and series, their top business lines —
and the rest to the city's hot list, so a user with no behavior still gets their city's best
and a returning user gets the hot items of what they engage with.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tuijian.data.users import UserProfile
from tuijian.domain import FloatArray, IntArray
from tuijian.recall.base import Catalog, RecallContext

# granularity -> (profile interest it follows, default share of k)
SHARES: dict[str, tuple[str, float]] = {
    "district": ("district", 0.2),
    "city_category": ("category", 0.2),
    "city_series": ("series", 0.1),
    "city_line": ("line", 0.2),
}


class HotSource:
    name = "hot"

    def __init__(self, catalog: Catalog, params: dict[str, Any]) -> None:
        self.catalog = catalog
        self.shares = {g: float(params.get(f"{g}_share", share))
                       for g, (_, share) in SHARES.items()}
        self.top_interests = int(params.get("top_interests", 2))

    async def recall(self, ctx: RecallContext, k: int) -> tuple[IntArray, FloatArray]:
        index = self.catalog.index
        parts: list[IntArray] = []
        if ctx.city >= 0:
            for granularity, (interest, _) in SHARES.items():
                values = self._wanted(ctx.profile, interest)
                if not values:
                    continue
                per = max(1, int(k * self.shares[granularity]) // len(values))
                for v in values:
                    codes = (v,) if granularity == "district" else (ctx.city, v)
                    parts.append(index.list_for(granularity, *codes)[:per])
        parts.append(index.city_list(ctx.city)[:k])
        merged = np.concatenate(parts)
        _, first = np.unique(merged, return_index=True)
        idx = merged[np.sort(first)][:k]
        return idx, index.hot[idx]

    def _wanted(self, profile: UserProfile, interest: str) -> list[int]:
        """The profile's strongest values of one interest (the home district counts too)."""
        tags = profile.interests.get(interest, {})
        top = sorted(tags, key=tags.__getitem__, reverse=True)[: self.top_interests]
        if interest == "district" and profile.district >= 0 and profile.district not in top:
            top = [profile.district, *top][: self.top_interests]
        return top
