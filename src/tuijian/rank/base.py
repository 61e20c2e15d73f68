"""The ranker boundary: score every candidate of one request in one vectorized call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from tuijian.data.items import ItemFeatureCenter
from tuijian.data.users import StaticUsers, UserProfile
from tuijian.domain import Candidates, FloatArray, RecommendRequest

if TYPE_CHECKING:
    from tuijian.rank.deployed import DeployedModel

# A deployed model by registry name, or None while none is serving (read per request).
ModelLookup = Callable[[str], "DeployedModel | None"]


def no_models(name: str) -> DeployedModel | None:
    return None


@dataclass(slots=True)
class RankContext:
    request: RecommendRequest
    profile: UserProfile
    store: ItemFeatureCenter
    prior_ctr: float
    users: StaticUsers | None = None
    models: ModelLookup = no_models
    # degradations the ranker chose (e.g. a model not deployed yet), for the response/metrics
    degraded: list[str] = field(default_factory=list)


class Ranker(Protocol):
    name: str

    def score(self, cands: Candidates, ctx: RankContext) -> FloatArray:
        """One score per candidate, higher is better; comparable across requests (push
        thresholds compare it to a fixed bar)."""
        ...

    def click_model(self, models: ModelLookup) -> DeployedModel | None:
        """The deployed model predicting P(click) over exposures, if this ranker ranks with
        one. The pipeline logs its prediction at each shown position, so effect data can
        watch the model's calibration against the clicks that follow."""
        ...


class RankerFactory(Protocol):
    def __call__(self, params: dict[str, Any]) -> Ranker: ...
