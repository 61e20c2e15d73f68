"""A deployable model: a directory holding the model's files, its fitted feature config and a
manifest. The one inference interface the rank stage calls, whatever the model kind.

    model.json      manifest: kind, objective, task, params, negative sampling rate, metrics
    features.json   the fitted feature config the model was trained with
    <kind's files>  weights.safetensors, gbdt.txt, ...

Loading validates everything before the model may serve: manifest schema, a known kind, a
fitted feature config whose layout matches the manifest's, the model files against that
layout, and a warm-up prediction that must be finite. Anything else is a ModelFileError.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tuijian.config import ConfigError, explain_errors
from tuijian.domain import FloatArray
from tuijian.rank.features.featureset import FeatureSet, Raw
from tuijian.rank.features.spec import load_features
from tuijian.rank.models.base import ModelFileError, RankModel, Task
from tuijian.rank.models.registry import model_class

MANIFEST = "model.json"
FEATURES = "features.json"
Objective = Literal["click", "convert", "dwell"]


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str
    objective: Objective
    task: Task
    params: dict[str, Any] = Field(default_factory=dict)
    # negatives were kept with this probability at training; predictions are corrected for it
    negative_rate: float = Field(1.0, gt=0, le=1)
    # "exposures" or "clicks": the population the model predicts over (CVR on clicks, ESMM…)
    population: Literal["exposures", "clicks"] = "exposures"
    # how the regression target was transformed for training (undone at prediction)
    target: Literal["identity", "log1p"] = "identity"
    n_dense: int = Field(ge=0)
    field_sizes: list[int]
    metrics: dict[str, float] = Field(default_factory=dict)
    trained_at: float = Field(default_factory=time.time)
    train_rows: int = 0


def correct_sampling(p: FloatArray, rate: float) -> FloatArray:
    """Undo negative down-sampling: a model that saw each negative with probability `rate`
    predicts odds inflated by 1/rate; p = p' / (p' + (1 - p') / rate)."""
    if rate >= 1.0:
        return p
    return p / (p + (1.0 - p) / rate)


class DeployedModel:
    def __init__(self, manifest: Manifest, features: FeatureSet, model: RankModel) -> None:
        self.manifest, self.features, self.model = manifest, features, model

    @property
    def objective(self) -> str:
        return self.manifest.objective

    def predict(self, raw: Raw) -> FloatArray:
        p = self.model.predict(self.features.transform(raw))
        if self.manifest.task == "binary":
            return correct_sampling(p, self.manifest.negative_rate)
        return np.expm1(np.maximum(p, 0.0)) if self.manifest.target == "log1p" else p

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.model.save(path)
        (path / FEATURES).write_bytes(self.features.config.dumps())
        (path / MANIFEST).write_bytes(orjson.dumps(self.manifest.model_dump(),
                                                   option=orjson.OPT_INDENT_2))

    @classmethod
    def load(cls, path: Path) -> DeployedModel:
        try:
            manifest = Manifest.model_validate(orjson.loads((path / MANIFEST).read_bytes()))
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ModelFileError(f"{MANIFEST}: {exc}") from None
        except ValidationError as exc:
            raise ModelFileError(explain_errors(exc, MANIFEST)) from None
        try:
            features = FeatureSet(load_features(path / FEATURES))
        except (ConfigError, ValueError) as exc:
            raise ModelFileError(f"{FEATURES}: {exc}") from None
        layout = features.layout
        if (layout.n_dense, list(layout.field_sizes)) != (manifest.n_dense,
                                                          manifest.field_sizes):
            raise ModelFileError(f"{FEATURES}: its layout differs from the one in {MANIFEST}")
        try:
            cls_ = model_class(manifest.kind)
        except ValueError as exc:
            raise ModelFileError(f"{MANIFEST}: {exc}") from None
        deployed = cls(manifest, features, cls_.load(path, layout, manifest.task,
                                                     manifest.params))
        deployed.warm()
        return deployed

    def warm(self, rows: int = 16) -> None:
        """Predict once on a synthetic batch: pays first-call costs (allocations, lazy
        initialisation) off the request path and proves the model produces finite scores."""
        raw = {name: np.zeros(rows) for name in self.features.config.inputs}
        try:
            p = self.predict(raw)
        except Exception as exc:
            raise ModelFileError(f"warm-up prediction failed: {exc!r}") from None
        if p.shape != (rows,) or not np.all(np.isfinite(p)):
            raise ModelFileError("warm-up prediction is not one finite score per row")
