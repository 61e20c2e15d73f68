"""Search recall for few/no-result searches: the user's filters as a retrieval-engine query,
relaxed step by step.

Each relaxation step drops or widens one filter (district, then price, then the fine
attributes, then the business line) until enough listings match. Results keep the order of the
step that found them — the score is the step's tier, exact matches highest — and the hot order
within a step; the steps taken are reported back so the client can say "showing results near
your search".
"""

from __future__ import annotations

from typing import Any

from tuijian.domain import FloatArray, IntArray
from tuijian.recall.base import Catalog, RecallContext
from tuijian.recall.tiers import by_tier, search_tiers

RELAX_STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("exact", ()),
    ("drop_district", ("district",)),
    ("widen_price", ("price",)),
    ("drop_attributes", ("rooms", "brand", "category")),
    ("drop_line", ("line",)),
)
TERMS = ("district", "category", "rooms", "brand")
WIDEN = 1.5


def relaxed_queries(f: dict[str, Any], city: int, limit: int
                    ) -> list[tuple[str, dict[str, Any]]]:
    """The (step, Query kwargs) sequence for filters `f`; steps that change nothing are left
    out."""
    out: list[tuple[str, dict[str, Any]]] = []
    dropped: set[str] = set()
    for step, drops in RELAX_STEPS:
        if step != "exact" and not any(
                k in f for d in drops for k in (("price_min", "price_max") if d == "price"
                                                else (d,))):
            continue
        dropped.update(drops)
        widen = WIDEN if "price" in dropped else 1.0
        lo, hi = f.get("price_min"), f.get("price_max")
        ranges = {} if lo is None and hi is None else {"price": (
            None if lo is None else lo / widen, None if hi is None else hi * widen)}
        out.append((step, {
            "city": city if city >= 0 else None,
            "line": None if "line" in dropped else f.get("line"),
            "terms": {t: f[t] for t in TERMS if t in f and t not in dropped},
            "ranges": ranges, "sort": "hotness", "limit": limit,
        }))
    return out


class SearchSource:
    name = "search"

    def __init__(self, catalog: Catalog, params: dict[str, Any]) -> None:
        self.catalog = catalog
        self.enough = int(params.get("enough", 50))

    async def recall(self, ctx: RecallContext, k: int) -> tuple[IntArray, FloatArray]:
        plan = relaxed_queries(ctx.request.filters, ctx.city, k)
        tiers = search_tiers(self.catalog.engine, [kwargs for _, kwargs in plan], self.enough)
        steps = [step for step, _ in plan[: len(tiers)]]
        ctx.notes["relaxed"] = steps[1:]
        ctx.notes["exact_matches"] = int(tiers[0].shape[0]) if tiers else 0
        return by_tier(tiers, len(plan), k)
