"""Display: turn the final items into the response payload the display strategy asks for.

The style and its field list come from the display id, so the client renders whatever the
experiment chose; codes are expanded to names here, at the edge, and nowhere earlier.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tuijian.config import DisplayStrategy
from tuijian.data import vocab
from tuijian.data.items import ItemFeatureCenter
from tuijian.domain import Candidates

_NAMES: dict[str, Callable[[int], str]] = {
    "line": lambda c: vocab.LINES[c],
    "category": lambda c: vocab.CATEGORIES[c],
    "city": lambda c: vocab.CITY_NAMES[c],
    "district": lambda c: vocab.DISTRICTS[c][1],
    "brand": lambda c: vocab.BRANDS[c],
    "series": lambda c: vocab.SERIES[c],
}
DISPLAYABLE = (
    "title", "body", "tags", "image_hashes", "price", "line", "category", "city", "district",
    "brand", "series", "rooms", "area", "year", "mileage_km", "lat", "lon", "publisher_id",
)


def render_items(
    cands: Candidates, store: ItemFeatureCenter, strategy: DisplayStrategy
) -> list[dict[str, Any]]:
    """One dict per final item: item_id, score, style and the style's fields."""
    fields = [f for f in strategy.fields if f in DISPLAYABLE]
    cols = store.gather(cands.idx, ("item_id", *fields))
    out: list[dict[str, Any]] = []
    for j in range(len(cands)):
        item: dict[str, Any] = {
            "item_id": int(cols["item_id"][j]),
            "score": round(float(cands.score[j]), 6),
            "style": strategy.style,
        }
        for f in fields:
            item[f] = _value(f, cols[f][j])
        out.append(item)
    return out


def _value(name: str, v: Any) -> Any:
    if isinstance(v, np.floating):
        return None if np.isnan(v) else round(float(v), 2)
    if isinstance(v, np.integer):
        code = int(v)
        if name in _NAMES:
            return _NAMES[name](code) if code >= 0 else None
        return code
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v
