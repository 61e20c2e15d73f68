"""Display: turn the final items into the response payload the display strategy asks for.

The style and its field list come from the display id, so the client renders whatever the
experiment chose; codes are expanded to names here, at the edge, and nowhere earlier.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

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
    "salary_band": lambda c: vocab.SALARY_BANDS[c],
    "job_type": lambda c: vocab.JOB_TYPES[c],
}
IMAGE_STYLES = ("card", "big_image", "small_image")
DISPLAYABLE = (
    "image", "title", "body", "tags", "images", "price", "line", "category", "city", "district",
    "brand", "series", "rooms", "area", "year", "mileage_km", "lat", "lon", "publisher_id",
)


def item_styles(strategy: DisplayStrategy, n: int) -> list[str]:
    """The style of each of n positions (`mixed` alternates big and small images)."""
    if strategy.style != "mixed":
        return [strategy.style] * n
    return ["big_image" if p % strategy.big_every == 0 else "small_image" for p in range(n)]


def render_items(
    cands: Candidates, store: ItemFeatureCenter, strategy: DisplayStrategy,
    creatives: list[str | None] | None = None,
) -> list[dict[str, Any]]:
    """One dict per final item: item_id, score, style and the style's fields. `image` is the
    chosen creative, or for an item without photos the URL of its generated card."""
    fields = [f for f in strategy.fields if f != "image"]
    cols = store.gather(cands.idx, ("item_id", *fields))
    styles = item_styles(strategy, len(cands))
    template = strategy.creative.generated_template
    shows_image = "image" in strategy.fields
    # whole columns converted at once: per-cell numpy scalars cost more than the rest of display
    values = [(f, display_values(f, cols[f])) for f in fields]
    out: list[dict[str, Any]] = []
    for j, (item_id, score) in enumerate(zip(cols["item_id"].tolist(), cands.score.tolist(),
                                             strict=True)):
        item: dict[str, Any] = {"item_id": item_id, "score": round(score, 6),
                                "style": styles[j]}
        if shows_image and styles[j] in IMAGE_STYLES:
            chosen = creatives[j] if creatives is not None else None
            if chosen is not None:
                item["image"] = {"creative": chosen}
            elif template is not None:
                item["image"] = {"generated": f"/v1/items/{item_id}/creative.png"
                                              f"?template={template}"}
        for f, column in values:
            item[f] = column[j]
        out.append(item)
    return out


def display_values(name: str, column: npt.NDArray[Any]) -> list[Any]:
    """A column as people see it (as `display_value`, for every row at once)."""
    if column.dtype.kind == "f":
        return [None if v != v else round(v, 2) for v in column.tolist()]
    if column.dtype.kind in "iu":
        codes = column.tolist()
        names = _NAMES.get(name)
        return codes if names is None else [names(c) if c >= 0 else None for c in codes]
    return [_value(name, v) for v in column]


def display_value(name: str, value: Any) -> Any:
    """A stored value as people see it: a code as its name, "not applicable" as None.

    Accepts numpy scalars (column reads) and plain Python values (`store.record`), so every
    consumer (the creative builder, too) spells codes the same way as the API does."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = np.int64(value)
    elif isinstance(value, float):
        value = np.float64(value)
    return _value(name, value)


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
