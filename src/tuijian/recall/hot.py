"""Hot recall: the best smoothed-CTR × fresh listings of the user's city, by interest line.

The cold-start workhorse: with no behavior it returns the city's hot list; once a user has
clicked, half the quota goes to the hot lists of the business lines they engage with.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tuijian.domain import FloatArray, IntArray
from tuijian.recall.base import Catalog, RecallContext


class HotSource:
    name = "hot"

    def __init__(self, catalog: Catalog, params: dict[str, Any]) -> None:
        self.catalog = catalog
        self.interest_share = float(params.get("interest_share", 0.5))

    async def recall(self, ctx: RecallContext, k: int) -> tuple[IntArray, FloatArray]:
        index = self.catalog.index
        parts: list[IntArray] = []
        lines = ctx.profile.interests.get("line")
        if lines and ctx.city >= 0:
            top_lines = sorted(lines, key=lines.__getitem__, reverse=True)[:2]
            per_line = max(1, int(k * self.interest_share) // len(top_lines))
            parts.extend(index.group_list(ctx.city, line)[:per_line] for line in top_lines)
        parts.append(index.city_list(ctx.city)[:k])
        merged = np.concatenate(parts)
        _, first = np.unique(merged, return_index=True)
        idx = merged[np.sort(first)][:k]
        return idx, index.hot[idx]
