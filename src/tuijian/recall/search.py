"""Search recall for few/no-result searches: the user's filters, relaxed step by step.

Each relaxation step drops or widens one filter (district, then price, then the fine
attributes, then the business line) until enough listings match. Results keep the order of the
step that found them, so exact matches always lead; the steps taken are reported back so the
client can say "showing results near your search".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tuijian.domain import FloatArray, IntArray
from tuijian.recall.base import Catalog, RecallContext

RELAX_STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("exact", ()),
    ("drop_district", ("district",)),
    ("widen_price", ("price",)),
    ("drop_attributes", ("rooms", "brand", "category")),
    ("drop_line", ("line",)),
)
FILTER_COLUMNS = ("line", "district", "category", "price", "rooms", "brand")


class SearchSource:
    name = "search"

    def __init__(self, catalog: Catalog, params: dict[str, Any]) -> None:
        self.catalog = catalog
        self.enough = int(params.get("enough", 50))

    async def recall(self, ctx: RecallContext, k: int) -> tuple[IntArray, FloatArray]:
        f = ctx.request.filters
        index = self.catalog.index
        line = f.get("line")
        pool = (index.group_list(ctx.city, line) if line is not None and ctx.city >= 0
                else index.city_list(ctx.city))
        if line is not None:
            # the "drop_line" step needs the whole city, not just the line's list
            pool = np.concatenate([pool, index.city_list(ctx.city)])
            _, first = np.unique(pool, return_index=True)
            pool = pool[np.sort(first)]
        cols = self.catalog.store.gather(pool, FILTER_COLUMNS)
        found: list[IntArray] = []
        tiers: list[FloatArray] = []
        taken = np.zeros(pool.shape[0], bool)
        dropped: set[str] = set()
        steps: list[str] = []
        for step, drops in RELAX_STEPS:
            dropped.update(drops)
            mask = _match(cols, f, dropped) & ~taken
            if step != "exact" and not drops_apply(f, drops):
                continue
            steps.append(step)
            found.append(np.flatnonzero(mask))
            tiers.append(np.full(found[-1].size, float(len(RELAX_STEPS) - len(steps) + 1)))
            taken |= mask
            if taken.sum() >= max(self.enough, 1):
                break
        ctx.notes["relaxed"] = steps[1:]
        ctx.notes["exact_matches"] = int(found[0].size) if found else 0
        if not found:
            return np.empty(0, np.int64), np.empty(0)
        # the score is the relaxation tier: exact matches highest (see rank_within_tiers)
        return pool[np.concatenate(found)[:k]], np.concatenate(tiers)[:k]


def drops_apply(filters: dict[str, Any], drops: tuple[str, ...]) -> bool:
    keys = {"price": ("price_min", "price_max")}
    return any(k in filters for d in drops for k in keys.get(d, (d,)))


def _match(cols: dict[str, Any], f: dict[str, Any], dropped: set[str]) -> Any:
    mask = np.ones(cols["line"].shape[0], bool)
    for name in ("line", "district", "category", "rooms", "brand"):
        if name in f and name not in dropped:
            mask &= cols[name] == f[name]
    price = cols["price"]
    widen = 1.5 if "price" in dropped else 1.0
    if "price_min" in f:
        mask &= price >= f["price_min"] / widen
    if "price_max" in f:
        mask &= price <= f["price_max"] * widen
    return mask
