"""From joined logs to a deployable model: clean samples, label them for an objective,
sample negatives, split by time, fit, and measure on the held-out tail.

Objectives:
- click: every valid exposure, label = clicked (CTR)
- convert: CVR. `clicks` mode trains on clicked exposures only (conversion given a click);
  `esmm` mode trains over all exposures with the click as an auxiliary label, which removes
  the sample-selection bias of the clicks-only population (needs the `esmm` model kind)
- dwell: clicked exposures, target = log1p(dwell seconds), a regression
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from tuijian.data.items import ItemFeatureCenter
from tuijian.data.users import StaticUsers
from tuijian.domain import FloatArray, IntArray
from tuijian.rank.deployed import DeployedModel, Manifest, Objective
from tuijian.rank.evaluate import binary_metrics, regression_metrics
from tuijian.rank.features.featureset import FeatureSet, Raw
from tuijian.rank.features.marketplace import INPUTS, offline_inputs
from tuijian.rank.features.spec import FeatureConfig, load_features
from tuijian.rank.models.base import Progress, Task, TrainSet
from tuijian.rank.models.registry import model_class

MARKETPLACE_FEATURES = Path(__file__).parent / "features" / "marketplace.yaml"
ESMM_KINDS = frozenset({"esmm"})


@dataclass(slots=True)
class SampleFilter:
    """Suspected bots: users with at least `bot_min_exposures` exposures whose CTR exceeds
    `bot_max_ctr` (people do not click half of what they are shown)."""

    bot_max_ctr: float = 0.5
    bot_min_exposures: int = 20


@dataclass(slots=True)
class LabelledRows:
    """The cleaned marketplace samples with every label, aligned with `raw`."""

    raw: Raw
    click: FloatArray
    convert: FloatArray
    dwell_s: FloatArray
    user: npt.NDArray[Any]
    ts: FloatArray
    sample_rows: IntArray  # each row's index in the samples table it came from
    report: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.click.shape[0])

    def take(self, rows: IntArray) -> LabelledRows:
        return LabelledRows(take(self.raw, rows), self.click[rows], self.convert[rows],
                            self.dwell_s[rows], self.user[rows], self.ts[rows],
                            self.sample_rows[rows], self.report)


@dataclass(slots=True)
class TrainOptions:
    model: str
    objective: Objective = "click"
    cvr_mode: Literal["clicks", "esmm"] = "clicks"
    negative_rate: float = 1.0
    valid_fraction: float = 0.1
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0


@dataclass(slots=True)
class ObjectiveRows:
    """Which rows an objective trains on and what it predicts."""

    rows: IntArray
    y: FloatArray
    click: FloatArray | None
    task: Task
    population: Literal["exposures", "clicks"]
    target: Literal["identity", "log1p"]


def load_rows(samples: pa.Table, store: ItemFeatureCenter, users: StaticUsers,
              filters: SampleFilter | None = None) -> LabelledRows:
    """Raw inputs and labels of joined samples, minus invalid exposures and suspected bots.
    The report counts what was dropped and why."""
    f = filters or SampleFilter()
    raw = offline_inputs(samples, store, users)
    user = np.asarray(samples.column("user_id").to_numpy(zero_copy_only=False))
    click = np.asarray(samples.column("click").to_numpy(), np.float64)
    valid = raw["known_item"] & raw["has_snapshot"] & (raw["ctx_position"] >= 0)
    _, u = np.unique(user, return_inverse=True)
    exposures = np.bincount(u)
    ctr = np.bincount(u, weights=click) / np.maximum(exposures, 1)
    bot_user = (exposures >= f.bot_min_exposures) & (ctr > f.bot_max_ctr)
    bot = bot_user[u]
    keep = np.flatnonzero(valid & ~bot)
    report = {"rows": len(click), "invalid": int((~valid).sum()),
              "bot_users": int(bot_user.sum()), "bot_rows": int((bot & valid).sum()),
              "kept": len(keep)}
    return LabelledRows(
        raw={k: v[keep] for k, v in raw.items()}, click=click[keep],
        convert=np.asarray(samples.column("convert").to_numpy(), np.float64)[keep],
        dwell_s=np.asarray(samples.column("dwell_s").to_numpy(), np.float64)[keep],
        user=user[keep], ts=np.asarray(samples.column("ts").to_numpy(), np.float64)[keep],
        sample_rows=keep, report=report)


def objective_rows(data: LabelledRows, objective: Objective,
                   cvr_mode: str = "clicks") -> ObjectiveRows:
    everything = np.arange(len(data))
    clicked = np.flatnonzero(data.click > 0)
    if objective == "click":
        return ObjectiveRows(everything, data.click, None, "binary", "exposures", "identity")
    if objective == "convert":
        if cvr_mode == "esmm":
            return ObjectiveRows(everything, data.convert, data.click, "binary", "clicks",
                              "identity")
        return ObjectiveRows(clicked, data.convert[clicked], None, "binary", "clicks",
                          "identity")
    return ObjectiveRows(clicked, np.log1p(data.dwell_s[clicked]), None, "regression", "clicks",
                      "log1p")


def time_split(ts: npt.NDArray[Any], fraction: float) -> tuple[IntArray, IntArray]:
    """Indexes before and after the time that leaves `fraction` of the rows at the end."""
    order = np.argsort(ts, kind="stable")
    cut = int(round(len(order) * (1.0 - fraction)))
    return order[:cut], order[cut:]


def negative_sample(y: FloatArray, rate: float, rng: np.random.Generator) -> IntArray:
    """Keep every positive and each negative with probability `rate` (the model's predictions
    are corrected for it at serving, see deployed.correct_sampling)."""
    if rate >= 1.0:
        return np.arange(len(y))
    return np.flatnonzero((y > 0) | (rng.random(len(y)) < rate))


def take(raw: Raw, rows: IntArray) -> Raw:
    return {k: v[rows] for k, v in raw.items()}


def fit_model(config: FeatureConfig, kind: str, task: Task, raw: Raw, y: FloatArray,
              click: FloatArray | None, valid: tuple[Raw, FloatArray, FloatArray | None] | None,
              params: dict[str, Any], progress: Progress | None = None
              ) -> tuple[FeatureSet, Any, float]:
    """Fit the feature config's statistics and then the model on the training rows; returns
    (features, model, seconds). Shared by the marketplace trainer and the dataset evals."""
    t0 = time.perf_counter()
    features = FeatureSet.fit(config, raw)
    model = model_class(kind)(features.layout, task, params)
    train = TrainSet(features.transform(raw), y, click)
    held = None if valid is None else TrainSet(features.transform(valid[0]), valid[1],
                                                valid[2])
    model.fit(train, held, progress)
    return features, model, time.perf_counter() - t0


def train(data: LabelledRows, opts: TrainOptions, config: FeatureConfig | None = None,
          progress: Progress | None = None) -> tuple[DeployedModel, dict[str, float]]:
    """Train one model for one objective; metrics are on the last `valid_fraction` of time."""
    config = config or load_features(MARKETPLACE_FEATURES)
    config.check_inputs(INPUTS)
    if opts.objective == "convert" and (opts.cvr_mode == "esmm") != (opts.model in ESMM_KINDS):
        raise ValueError("cvr mode 'esmm' goes with the esmm model kind, and only with it")
    obj = objective_rows(data, opts.objective, opts.cvr_mode)
    fit_idx, held_idx = time_split(data.ts[obj.rows], opts.valid_fraction)
    rng = np.random.default_rng(opts.seed)
    if obj.task == "binary":
        fit_idx = fit_idx[negative_sample(obj.y[fit_idx], opts.negative_rate, rng)]
    rows, held = obj.rows[fit_idx], obj.rows[held_idx]

    def labels(idx: IntArray) -> tuple[FloatArray, FloatArray | None]:
        return obj.y[idx], None if obj.click is None else obj.click[idx]

    y, click = labels(fit_idx)
    vy, vclick = labels(held_idx)
    valid = (take(data.raw, held), vy, vclick) if len(held) else None
    features, model, seconds = fit_model(config, opts.model, obj.task, take(data.raw, rows),
                                         y, click, valid, opts.params, progress)
    manifest = Manifest(
        kind=opts.model, objective=opts.objective, task=obj.task, params=opts.params,
        negative_rate=opts.negative_rate if obj.task == "binary" else 1.0,
        population=obj.population, target=obj.target, n_dense=features.layout.n_dense,
        field_sizes=list(features.layout.field_sizes), train_rows=len(rows))
    deployed = DeployedModel(manifest, features, model)
    metrics: dict[str, float] = {"train_s": seconds, "train_rows": float(len(rows)),
                                 "valid_rows": float(len(held))}
    if len(held):
        p = deployed.predict(take(data.raw, held))
        if obj.task == "binary":
            metrics.update(binary_metrics(vy, p, data.user[held]))
        else:
            metrics.update(regression_metrics(np.expm1(vy), p))
    manifest.metrics = {k: float(v) for k, v in metrics.items() if np.isfinite(v)}
    return deployed, metrics
