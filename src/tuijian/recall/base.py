"""The recall boundary: what a source receives and what it must return.

A source answers (item indexes, scores), best first. Sources are built once per process from
the shared `Catalog` and their strategy-file params; a new source is one module plus one line
in `recall/registry.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from tuijian.data.items import ItemFeatureCenter
from tuijian.data.users import UserProfile
from tuijian.domain import FloatArray, IntArray, RecommendRequest
from tuijian.recall.index import RecallIndex
from tuijian.retrieval.base import SearchEngine


class Catalog:
    """The item store, the current recall index (swapped whole on rebuild) and the models
    recall sources read: job artifacts (reloaded when a job publishes a new version) and
    real-time tables, by name."""

    def __init__(self, store: ItemFeatureCenter, index: RecallIndex,
                 engine: SearchEngine) -> None:
        self.store = store
        self.index = index
        self.engine = engine
        self.models: dict[str, object] = {}


@dataclass(slots=True)
class RecallContext:
    request: RecommendRequest
    profile: UserProfile
    city: int  # -1 when neither the request nor the profile names one
    lat: float | None
    lon: float | None
    anchor: int = -1  # the detail page's item (dense index), or a push's item
    notes: dict[str, Any] = field(default_factory=dict)  # e.g. search relaxations


class RecallSource(Protocol):
    """`recall` is a coroutine. One that never waits (work in process, or a blocking client)
    runs inline in the pipeline, timed alone and skipped when late; one that awaits I/O goes
    on in a task, concurrently with the others, and is cancelled at its budget."""

    name: str

    async def recall(self, ctx: RecallContext, k: int) -> tuple[IntArray, FloatArray]: ...


class SourceFactory(Protocol):
    def __call__(self, catalog: Catalog, params: dict[str, Any]) -> RecallSource: ...
