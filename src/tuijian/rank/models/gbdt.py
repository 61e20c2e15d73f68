"""Gradient-boosted trees (LightGBM), and the tree leaves other models take as features.

LightGBM reads the dense values and, as native categorical features, the ids of the fields
small enough for it (high-cardinality hashed ids such as item_id are left to the embedding
models). The model file is LightGBM's own text format.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Self

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

from tuijian.domain import FloatArray, IntArray
from tuijian.rank.features.featureset import FeatureLayout, FeatureMatrix
from tuijian.rank.models.base import ModelFileError, Progress, Task, TrainSet, require

MODEL_FILE = "gbdt.txt"
MAX_CATEGORICAL = 1024  # fields with more ids than this are not given to the trees

DEFAULTS: dict[str, Any] = {
    "num_leaves": 31, "learning_rate": 0.05, "n_estimators": 300, "min_data_in_leaf": 50,
    "feature_fraction": 0.9, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0,
    "cat_smooth": 10.0, "early_stopping_rounds": 30,
}


class TreeInputs:
    """Which matrix columns the trees see, and as what."""

    def __init__(self, layout: FeatureLayout) -> None:
        self.fields = [j for j, s in enumerate(layout.field_sizes) if s <= MAX_CATEGORICAL]
        self.offsets = layout.offsets[self.fields]
        self.names = [*layout.dense_names, *(layout.field_names[j] for j in self.fields)]
        self.categorical = list(range(layout.n_dense, len(self.names)))

    def matrix(self, x: FeatureMatrix) -> npt.NDArray[np.float64]:
        local = x.cat[:, self.fields] - self.offsets
        return np.hstack([x.dense.astype(np.float64), local.astype(np.float64)])


class GBDTModel:
    kind: ClassVar[str] = "gbdt"

    def __init__(self, layout: FeatureLayout, task: Task, params: dict[str, Any]) -> None:
        self.layout, self.task = layout, task
        self.params = {**DEFAULTS, **params}
        self.inputs = TreeInputs(layout)
        self.booster: lgb.Booster | None = None

    def fit(self, train: TrainSet, valid: TrainSet | None = None,
            progress: Progress | None = None) -> None:
        p = dict(self.params)
        rounds = int(p.pop("n_estimators"))
        stop = int(p.pop("early_stopping_rounds"))
        p.update(objective="binary" if self.task == "binary" else "regression", verbose=-1,
                 num_threads=int(p.get("num_threads", 0)), seed=int(p.get("seed", 0)))
        data = self._dataset(train)
        sets = [data]
        callbacks: list[Callable[..., Any]] = []
        if valid is not None:
            sets.append(self._dataset(valid, reference=data))
            callbacks.append(lgb.early_stopping(stop, verbose=False))
        if progress is not None:
            def report(env: Any) -> None:
                if env.iteration % 10 == 0:
                    progress("gbdt: boosting", env.iteration / rounds)
            callbacks.append(report)
        self.booster = lgb.train(p, data, rounds, valid_sets=sets[1:] or None,
                                 callbacks=callbacks)

    def _dataset(self, t: TrainSet, reference: lgb.Dataset | None = None) -> lgb.Dataset:
        return lgb.Dataset(self.inputs.matrix(t.x), t.y, weight=t.weight,
                           feature_name=self.inputs.names,
                           categorical_feature=self.inputs.categorical, reference=reference,
                           free_raw_data=False)

    def _booster(self) -> lgb.Booster:
        if self.booster is None:
            raise RuntimeError("gbdt: not fitted")
        return self.booster

    def predict(self, x: FeatureMatrix) -> FloatArray:
        b = self._booster()
        return np.asarray(b.predict(self.inputs.matrix(x), num_iteration=_best(b),
                                    num_threads=1), np.float64)

    def leaves(self, x: FeatureMatrix) -> IntArray:
        """The leaf each row falls into in every tree, as ids in one space
        (tree × max leaves + leaf): the features of GBDT+LR and GBDT+FM."""
        b = self._booster()
        leaf = np.asarray(b.predict(self.inputs.matrix(x), pred_leaf=True, num_threads=1,
                                    num_iteration=_best(b)), np.int64)
        return leaf + np.arange(leaf.shape[1], dtype=np.int64) * self.max_leaves

    @property
    def max_leaves(self) -> int:
        return int(self.params["num_leaves"])

    @property
    def n_trees(self) -> int:
        b = self._booster()
        return _best(b) or int(b.num_trees())

    def save(self, path: Path) -> None:
        b = self._booster()
        b.save_model(str(path / MODEL_FILE), num_iteration=_best(b))

    @classmethod
    def load(cls, path: Path, layout: FeatureLayout, task: Task,
             params: dict[str, Any]) -> Self:
        model = cls(layout, task, params)
        text = require(path / MODEL_FILE).read_text(errors="replace")
        # LightGBM aborts the whole process (not an exception) on some truncated files; it
        # always ends a complete model with this marker, so check before handing it over
        if "end of trees" not in text or "end of parameters" not in text:
            raise ModelFileError(f"{MODEL_FILE}: truncated (no end-of-trees/parameters mark)")
        try:
            model.booster = lgb.Booster(model_str=text)
        except lgb.basic.LightGBMError as exc:
            raise ModelFileError(f"{MODEL_FILE}: unreadable ({exc})") from None
        names = model.booster.feature_name()
        if names != model.inputs.names:
            raise ModelFileError(
                f"{MODEL_FILE}: trained on features {names[:5]}…, the feature config gives "
                f"{model.inputs.names[:5]}…")
        return model


def _best(b: lgb.Booster) -> int | None:
    """The early-stopped iteration count, or None for all trees (a loaded booster says -1)."""
    return int(b.best_iteration) if b.best_iteration and b.best_iteration > 0 else None
