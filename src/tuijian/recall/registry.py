"""Every recall source by the name strategy files use.

Built-in sources are registered here exactly as a user's own would be (`register_source`),
so adding a source is one module plus one line, never an edit to the pipeline.
"""

from __future__ import annotations

from tuijian.recall.association import AssociationSource
from tuijian.recall.base import SourceFactory
from tuijian.recall.cf import ItemCFSource, UserCFSource
from tuijian.recall.hot import HotSource
from tuijian.recall.interest import InterestSource
from tuijian.recall.item_cf_realtime import ItemCFRealtimeSource
from tuijian.recall.mf import MFSource
from tuijian.recall.region import RegionSource
from tuijian.recall.related import RelatedSource
from tuijian.recall.search import SearchSource
from tuijian.recall.two_tower import TwoTowerSource

SOURCES: dict[str, SourceFactory] = {}
# Source codes are stored in events (the `sources` bit mask) and tracking params, so they are
# fixed per name, never derived from registration order. "fallback" and "pinned" mark items the
# pipeline itself placed (the cached hot list, a push landing's notified item).
SOURCE_CODE: dict[str, int] = {"fallback": 0, "pinned": 1}
SOURCE_NAMES: dict[int, str] = {0: "fallback", 1: "pinned"}
MAX_CODE = 62  # the bit mask is an int64


def register_source(name: str, factory: SourceFactory, code: int) -> None:
    """Register a source under a code of its own, for good (events keep the code)."""
    if SOURCE_NAMES.get(code, name) != name or SOURCE_CODE.get(name, code) != code:
        raise ValueError(f"source code {code} or name {name!r} is already taken")
    if not 0 <= code <= MAX_CODE:
        raise ValueError(f"source code must be within 0..{MAX_CODE}")
    SOURCES[name] = factory
    SOURCE_CODE[name] = code
    SOURCE_NAMES[code] = name


register_source("hot", HotSource, 2)
register_source("region", RegionSource, 3)
register_source("related", RelatedSource, 4)
register_source("search", SearchSource, 5)
register_source("association", AssociationSource, 6)
register_source("item_cf_realtime", ItemCFRealtimeSource, 7)
register_source("item_cf", ItemCFSource, 8)
register_source("user_cf", UserCFSource, 9)
register_source("interest", InterestSource, 10)
register_source("mf", MFSource, 11)
register_source("two_tower", TwoTowerSource, 12)
