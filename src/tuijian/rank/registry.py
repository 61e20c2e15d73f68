"""Every ranker by the name strategy files use. Add a model: one line here."""

from __future__ import annotations

from tuijian.rank.base import RankerFactory
from tuijian.rank.model_ranker import ModelRanker
from tuijian.rank.rule_order import RuleOrderRanker

RANKERS: dict[str, RankerFactory] = {
    "rule_order": RuleOrderRanker,
    "model": ModelRanker,
}
