"""Every interaction model by the name strategy files and `tuijian eval` use."""

from __future__ import annotations

from typing import Any

from tuijian.recall.models.als import ALS
from tuijian.recall.models.base import ModelBase
from tuijian.recall.models.bpr import BPR
from tuijian.recall.models.ease import EASE
from tuijian.recall.models.item_cf import ItemCF
from tuijian.recall.models.popularity import Popularity
from tuijian.recall.models.sar import SAR
from tuijian.recall.models.two_tower import TwoTower
from tuijian.recall.models.user_cf import UserCF

MODELS: dict[str, type[ModelBase]] = {
    model.name: model
    for model in (Popularity, ItemCF, UserCF, ALS, BPR, EASE, SAR, TwoTower)
}


def create_model(name: str, **params: Any) -> ModelBase:
    """A fresh, unfitted model; unknown names list the known ones."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}")
    return MODELS[name](**params)
