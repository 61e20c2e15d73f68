"""The rule ranker: smoothed CTR × freshness, the baseline every learned model must beat.

Its score reads as an estimated click probability discounted by age, which is what lets a push
threshold be a plain number in the strategy file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuijian.domain import Candidates, FloatArray
from tuijian.rank.base import ModelLookup, RankContext

if TYPE_CHECKING:
    from tuijian.rank.deployed import DeployedModel
from tuijian.rank.signals import freshness, smoothed_ctr


class RuleOrderRanker:
    name = "rule_order"

    def __init__(self, params: dict[str, Any]) -> None:
        self.half_life_h = float(params.get("freshness_half_life_h", 72.0))
        self.floor = float(params.get("freshness_floor", 0.3))

    def click_model(self, models: ModelLookup) -> DeployedModel | None:
        return None

    def score(self, cands: Candidates, ctx: RankContext) -> FloatArray:
        c = ctx.store.gather(cands.idx, ("clicks", "exposures", "quality", "refreshed_ts"))
        ctr = smoothed_ctr(c["clicks"], c["exposures"], c["quality"], ctx.prior_ctr)
        fresh = freshness(c["refreshed_ts"], ctx.request.now, self.half_life_h)
        return ctr * (self.floor + (1.0 - self.floor) * fresh)
