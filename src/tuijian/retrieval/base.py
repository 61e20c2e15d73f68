"""The retrieval boundary: what a query may ask and what a search engine must answer.

Recall sources (interest, related, region, search fallback) describe the listings they want as
a `Query`; an engine answers with dense item indexes and the score they were sorted by, best
first. The field tables below are the whole query vocabulary, checked when a `Query` is built,
so a typo in a strategy fails at once with the field's name instead of matching nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from tuijian.domain import FloatArray, IntArray

Sort = Literal["freshness", "hotness", "distance", "relevance"]
SORTS: tuple[Sort, ...] = ("freshness", "hotness", "distance", "relevance")
TermValue = int | str | Sequence[int] | Sequence[str]

# Equality / IN filters: integer codes (see data/vocab.py), except `tags`, which takes strings.
TERM_FIELDS: tuple[str, ...] = (
    "line",
    "city",
    "category",
    "district",
    "rooms",
    "brand",
    "series",
    "salary_band",
    "job_type",
    "price_band",
    "publisher_id",
    "tags",
)
STRING_TERM_FIELDS: tuple[str, ...] = ("tags",)
# Inclusive [low, high] filters on numeric columns; None leaves a side open.
RANGE_FIELDS: tuple[str, ...] = (
    "price",
    "area",
    "floor",
    "year",
    "mileage_km",
    "quality",
    "created_ts",
    "refreshed_ts",
)


@dataclass(slots=True, frozen=True)
class Query:
    """Listings to retrieve: every given condition must hold (AND); a list of term values is IN.

    `geo` = (lat, lon, radius_km) keeps items within the radius; `near` = (lat, lon) keeps the
    `limit` items nearest the point. `text` matches titles containing every word of it. `sort`
    defaults to distance when there is a point, else relevance when there is text, else
    freshness; ties go to the larger dense index (the newer listing), so results are stable.
    """

    line: int | None = None
    city: int | None = None
    terms: Mapping[str, TermValue] = field(default_factory=dict)
    ranges: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)
    geo: tuple[float, float, float] | None = None
    near: tuple[float, float] | None = None
    text: str | None = None
    exclude: IntArray | Sequence[int] = ()
    sort: Sort | None = None
    limit: int = 100

    def __post_init__(self) -> None:
        for name, code in (("line", self.line), ("city", self.city)):
            if code is not None and code < 0:
                raise ValueError(f"{name}: a code >= 0 or None, got {code}")
        for name, value in self.terms.items():
            _check_term(name, value)
        for name, bounds in self.ranges.items():
            if name not in RANGE_FIELDS:
                raise ValueError(f"unknown range field {name!r} (known: {', '.join(RANGE_FIELDS)})")
            if len(bounds) != 2:
                raise ValueError(f"range {name!r}: expected (low, high), got {bounds!r}")
        if self.geo is not None and self.near is not None:
            raise ValueError("a query takes either geo (within a radius) or near, not both")
        point = self.point()
        if point is not None and not (-90 <= point[0] <= 90 and -180 <= point[1] <= 180):
            raise ValueError(f"invalid coordinates: lat {point[0]}, lon {point[1]}")
        if self.geo is not None and not (self.geo[2] > 0 and math.isfinite(self.geo[2])):
            raise ValueError(f"geo radius_km must be a positive number, got {self.geo[2]}")
        if self.sort is not None and self.sort not in SORTS:
            raise ValueError(f"unknown sort {self.sort!r} (known: {', '.join(SORTS)})")
        if self.sort == "distance" and point is None:
            raise ValueError("sort 'distance' needs a point: set geo or near")
        if self.sort == "relevance" and not self.text:
            raise ValueError("sort 'relevance' needs text")
        if self.limit < 0:
            raise ValueError(f"limit must be >= 0, got {self.limit}")

    def point(self) -> tuple[float, float] | None:
        """The reference point of distances, if the query has one."""
        if self.geo is not None:
            return self.geo[0], self.geo[1]
        return self.near

    def order(self) -> Sort:
        """The sort actually applied (see the class docstring for the default)."""
        if self.sort is not None:
            return self.sort
        if self.point() is not None:
            return "distance"
        return "relevance" if self.text else "freshness"


def _check_term(name: str, value: TermValue) -> None:
    if name not in TERM_FIELDS:
        raise ValueError(f"unknown term field {name!r} (known: {', '.join(TERM_FIELDS)})")
    values = [value] if isinstance(value, int | str) else list(value)
    want: type = str if name in STRING_TERM_FIELDS else int
    for v in values:
        if not isinstance(v, want) or isinstance(v, bool):
            raise ValueError(f"term {name!r} takes {want.__name__} values, got {v!r}")


def term_values(value: TermValue) -> list[int | str]:
    """A term filter's values as a list (one value is a list of one)."""
    return [value] if isinstance(value, int | str) else list(value)


class SearchEngine(Protocol):
    """An item search engine: filtered, sorted retrieval over dense item indexes."""

    def search(self, query: Query) -> tuple[IntArray, FloatArray]:
        """Matching item indexes, best first, at most `query.limit`, with their sort scores
        (refreshed_ts for freshness, hot score for hotness, km for distance, BM25 for
        relevance)."""
        ...

    def add(self, idx: IntArray) -> None:
        """Index new or changed items, read from the item store; call it right after
        `store.upsert` so they are searchable on the next request."""
        ...

    def set_hotness(self, hot: FloatArray) -> None:
        """The per-item hot scores that sort="hotness" orders by (kept by reference)."""
        ...
