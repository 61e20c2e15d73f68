"""Every ranking-model kind by the name `tuijian train --model` and model files use."""

from __future__ import annotations

from tuijian.rank.models.base import RankModel
from tuijian.rank.models.gbdt import GBDTModel
from tuijian.rank.models.linear import LogisticRegressionModel

RANK_MODELS: dict[str, type[RankModel]] = {
    "lr": LogisticRegressionModel,
    "gbdt": GBDTModel,
}


def model_class(kind: str) -> type[RankModel]:
    try:
        return RANK_MODELS[kind]
    except KeyError:
        raise ValueError(f"unknown model kind {kind!r} "
                         f"(known: {', '.join(sorted(RANK_MODELS))})") from None
