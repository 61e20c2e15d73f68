"""Every ranking-model kind by the name `tuijian train --model` and model files use.

Kinds are imported on first use: the PyTorch kinds cost seconds to import, which a CLI
command or a server ranking with LR or GBDT should not pay.
"""

from __future__ import annotations

import importlib

from tuijian.rank.models.base import RankModel

RANK_MODELS: dict[str, str] = {
    "lr": "linear:LogisticRegressionModel",
    "ftrl": "ftrl:FTRLModel",
    "gbdt": "gbdt:GBDTModel",
    "gbdt_lr": "hybrid:GBDTLRModel",
    "gbdt_fm": "hybrid:GBDTFMModel",
    "fm": "deep:FMModel",
    "fnn": "deep:FNNModel",
    "wide_deep": "deep:WideDeepModel",
    "deepfm": "deep:DeepFMModel",
    "esmm": "deep:ESMMModel",
}


def model_class(kind: str) -> type[RankModel]:
    try:
        module, name = RANK_MODELS[kind].split(":")
    except KeyError:
        raise ValueError(f"unknown model kind {kind!r} "
                         f"(known: {', '.join(sorted(RANK_MODELS))})") from None
    cls: type[RankModel] = getattr(importlib.import_module(f"tuijian.rank.models.{module}"),
                                   name)
    return cls
