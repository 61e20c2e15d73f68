"""Stage-id assignment: which recall / rank / rule / display strategy serves a request.

For now every request gets its scene's defaults from the strategy file; the multi-layer
experiment platform replaces this object behind the same `Assigner` protocol.
"""

from __future__ import annotations

from typing import Protocol

from tuijian.config import StrategyFile
from tuijian.domain import RecommendRequest, StageIds


class Assigner(Protocol):
    def assign(self, request: RecommendRequest) -> StageIds: ...


class DefaultAssigner:
    def __init__(self, strategies: StrategyFile) -> None:
        self._ids = {
            scene: StageIds(d.recall, d.rank, d.rule, d.display)
            for scene, d in strategies.scenes.items()
        }

    def assign(self, request: RecommendRequest) -> StageIds:
        return self._ids[request.scene]
