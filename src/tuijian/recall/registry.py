"""Every recall source by the name strategy files use. Add a source: one line here."""

from __future__ import annotations

from tuijian.recall.base import SourceFactory
from tuijian.recall.hot import HotSource
from tuijian.recall.region import RegionSource
from tuijian.recall.related import RelatedSource
from tuijian.recall.search import SearchSource

SOURCES: dict[str, SourceFactory] = {
    "hot": HotSource,
    "region": RegionSource,
    "related": RelatedSource,
    "search": SearchSource,
}
# Stable small codes for the per-candidate source column and tracking params.
SOURCE_NAMES: tuple[str, ...] = tuple(SOURCES) + ("fallback", "pinned")
SOURCE_CODE: dict[str, int] = {name: i for i, name in enumerate(SOURCE_NAMES)}
