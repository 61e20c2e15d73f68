"""Logistic regression (and ridge, for a regression objective) over one-hot ids and dense
values: the first learned model 58.com deployed, and the baseline every other must beat."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge

from tuijian.domain import FloatArray
from tuijian.rank.features.featureset import FeatureLayout, FeatureMatrix
from tuijian.rank.models.base import (
    Progress,
    Task,
    TrainSet,
    load_arrays,
    one_hot,
    require,
    save_arrays,
    sigmoid,
)

WEIGHTS = "weights.safetensors"


class LinearWeights:
    """w·dense + Σ w[id] + b, scored with two numpy gathers: no sparse matrix at serve time."""

    def __init__(self, layout: FeatureLayout) -> None:
        self.layout = layout
        self.w_dense = np.zeros(layout.n_dense, np.float64)
        self.w_ids = np.zeros(layout.n_ids, np.float64)
        self.bias = 0.0

    def margin(self, x: FeatureMatrix) -> FloatArray:
        return np.asarray(x.dense @ self.w_dense + self.w_ids[x.cat].sum(axis=1) + self.bias,
                          np.float64)

    def set_flat(self, coef: FloatArray, bias: float) -> None:
        self.w_dense = np.asarray(coef[: self.layout.n_dense], np.float64)
        self.w_ids = np.asarray(coef[self.layout.n_dense:], np.float64)
        self.bias = float(bias)

    def arrays(self) -> dict[str, Any]:
        return {"w_dense": self.w_dense, "w_ids": self.w_ids, "bias": np.array([self.bias])}

    def read(self, path: Path) -> None:
        a = load_arrays(require(path), {"w_dense": (self.layout.n_dense,),
                                        "w_ids": (self.layout.n_ids,), "bias": (1,)})
        self.w_dense, self.w_ids = a["w_dense"], a["w_ids"]
        self.bias = float(a["bias"][0])


class LogisticRegressionModel:
    kind: ClassVar[str] = "lr"

    def __init__(self, layout: FeatureLayout, task: Task, params: dict[str, Any]) -> None:
        self.layout, self.task = layout, task
        self.c = float(params.get("C", 1.0))
        self.max_iter = int(params.get("max_iter", 300))
        self.weights = LinearWeights(layout)

    def fit(self, train: TrainSet, valid: TrainSet | None = None,
            progress: Progress | None = None) -> None:
        if progress:
            progress("lr: fitting", 0.0)
        design = one_hot(train.x, self.layout)
        if self.task == "binary":
            lr = LogisticRegression(C=self.c, max_iter=self.max_iter)
            lr.fit(design, train.y, sample_weight=train.weight)
            self.weights.set_flat(lr.coef_[0], float(lr.intercept_[0]))
        else:
            ridge = Ridge(alpha=1.0 / self.c)
            ridge.fit(design, train.y, sample_weight=train.weight)
            self.weights.set_flat(np.asarray(ridge.coef_), float(ridge.intercept_))
        if progress:
            progress("lr: done", 1.0)

    def predict(self, x: FeatureMatrix) -> FloatArray:
        m = self.weights.margin(x)
        return sigmoid(m) if self.task == "binary" else m

    def save(self, path: Path) -> None:
        save_arrays(path / WEIGHTS, self.weights.arrays())

    @classmethod
    def load(cls, path: Path, layout: FeatureLayout, task: Task,
             params: dict[str, Any]) -> Self:
        model = cls(layout, task, params)
        model.weights.read(path / WEIGHTS)
        return model
