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
# Stable small codes for the per-candidate source column; "fallback" and "pinned" mark items
# the pipeline itself placed (the cached hot list, a push landing's notified item).
SOURCE_NAMES: list[str] = ["fallback", "pinned"]
SOURCE_CODE: dict[str, int] = {"fallback": 0, "pinned": 1}


def register_source(name: str, factory: SourceFactory) -> None:
    SOURCES[name] = factory
    if name not in SOURCE_CODE:
        SOURCE_CODE[name] = len(SOURCE_NAMES)
        SOURCE_NAMES.append(name)


register_source("hot", HotSource)
register_source("region", RegionSource)
register_source("related", RelatedSource)
register_source("search", SearchSource)
register_source("association", AssociationSource)
register_source("item_cf_realtime", ItemCFRealtimeSource)
register_source("item_cf", ItemCFSource)
register_source("user_cf", UserCFSource)
register_source("interest", InterestSource)
register_source("mf", MFSource)
register_source("two_tower", TwoTowerSource)
