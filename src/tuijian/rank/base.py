"""The ranker boundary: score every candidate of one request in one vectorized call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from tuijian.data.items import ItemFeatureCenter
from tuijian.data.users import UserProfile
from tuijian.domain import Candidates, FloatArray, RecommendRequest


@dataclass(slots=True)
class RankContext:
    request: RecommendRequest
    profile: UserProfile
    store: ItemFeatureCenter
    prior_ctr: float


class Ranker(Protocol):
    name: str

    def score(self, cands: Candidates, ctx: RankContext) -> FloatArray:
        """One score per candidate, higher is better; comparable across requests (push
        thresholds compare it to a fixed bar)."""
        ...


class RankerFactory(Protocol):
    def __call__(self, params: dict[str, Any]) -> Ranker: ...
