"""FTRL-Proximal: offline quality against sklearn's LR, its files, and online learning from the
event stream (the learner alone, then through the real service)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from tuijian.domain import Event, EventStatus, EventType, FloatArray, RecommendRequest, Scene
from tuijian.jobs.engine import DuckDBEngine
from tuijian.jobs.join import join
from tuijian.jobs.simulate import simulate
from tuijian.rank.deployed import DeployedModel, Manifest
from tuijian.rank.features.featureset import FeatureSet, Raw
from tuijian.rank.features.marketplace import INPUTS, offline_inputs
from tuijian.rank.features.spec import FeatureConfig, load_features
from tuijian.rank.models.base import ModelFileError, TrainSet
from tuijian.rank.models.ftrl import STATE, FTRLModel
from tuijian.rank.models.linear import LogisticRegressionModel
from tuijian.rank.online import OnlineLearner
from tuijian.serving.service import Service

from ..conftest import NOW

CONFIG = Path(__file__).parents[2] / "src/tuijian/rank/features/marketplace.yaml"
NEUTRAL = 7  # a code of field `a` with no effect on the click in the synthetic data


def _config() -> FeatureConfig:
    return FeatureConfig.model_validate({"name": "synthetic", "features": [
        {"name": "x0", "side": "item", "inputs": ["x0"], "transform": "numeric"},
        {"name": "x1", "side": "user", "inputs": ["x1"], "transform": "numeric"},
        {"name": "a", "side": "user", "inputs": ["a"], "transform": "categorical", "size": 20},
        {"name": "b", "side": "item", "inputs": ["b"], "transform": "categorical",
         "size": 2000},
        {"name": "c", "side": "context", "inputs": ["c"], "transform": "categorical",
         "size": 50},
    ]})


class SyntheticCTR:
    """A sparse CTR problem: a Zipf-distributed high-cardinality id with mostly-zero true
    effects, two small fields, two dense values; clicks drawn from the true logistic model."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.wa = rng.normal(0, 0.7, 20)
        self.wa[NEUTRAL] = 0.0
        self.wb = rng.normal(0, 1.0, 2000) * (rng.random(2000) < 0.3)
        self.wc = rng.normal(0, 0.5, 50)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[Raw, FloatArray]:
        raw = {"x0": rng.normal(size=n), "x1": rng.normal(size=n),
               "a": rng.integers(0, 20, n), "b": np.minimum(rng.zipf(1.3, n) - 1, 1999),
               "c": rng.integers(0, 50, n)}
        margin = (-3.0 + 0.8 * raw["x0"] - 0.5 * raw["x1"] + self.wa[raw["a"]]
                  + self.wb[raw["b"]] + self.wc[raw["c"]])
        return raw, (rng.random(n) < 1.0 / (1.0 + np.exp(-margin))).astype(np.float64)


@pytest.fixture(scope="module")
def problem() -> tuple[FeatureSet, TrainSet, TrainSet]:
    features = FeatureSet(_config())
    gen, rng = SyntheticCTR(), np.random.default_rng(1)
    raw, y = gen.sample(40_000, rng)
    raw_test, y_test = gen.sample(20_000, rng)
    return (features, TrainSet(features.transform(raw), y),
            TrainSet(features.transform(raw_test), y_test))


def _ftrl(features: FeatureSet, train: TrainSet, **params: Any) -> FTRLModel:
    model = FTRLModel(features.layout, "binary", params)
    model.fit(train)
    return model


def _deployed(features: FeatureSet, model: FTRLModel, negative_rate: float = 1.0
              ) -> DeployedModel:
    layout = features.layout
    manifest = Manifest(kind="ftrl", objective="click", task="binary",
                        negative_rate=negative_rate, n_dense=layout.n_dense,
                        field_sizes=list(layout.field_sizes))
    return DeployedModel(manifest, features, model)


def test_offline_fit_matches_sklearn_lr_and_l1_gives_exact_zeros(
        problem: tuple[FeatureSet, TrainSet, TrainSet]) -> None:
    features, train, test = problem
    lr = LogisticRegressionModel(features.layout, "binary", {})
    lr.fit(train)
    auc_lr = roc_auc_score(test.y, lr.predict(test.x))
    ftrl = _ftrl(features, train)
    auc_ftrl = roc_auc_score(test.y, ftrl.predict(test.x))
    assert auc_ftrl > auc_lr - 0.02, (auc_ftrl, auc_lr)

    seen = np.unique(train.x.cat)
    dense_l2 = _ftrl(features, train, l1=0.0).weights().w_ids[seen]
    sparse = _ftrl(features, train, l1=5.0).weights().w_ids[seen]
    assert np.count_nonzero(dense_l2 == 0.0) == 0
    # L1 zeroes the weights of rare, uninformative ids exactly, not just makes them small
    assert np.count_nonzero(sparse == 0.0) > 0.2 * len(seen)
    assert roc_auc_score(test.y, _ftrl(features, train, l1=5.0).predict(test.x)) > auc_lr - 0.03


def test_params_are_checked(problem: tuple[FeatureSet, TrainSet, TrainSet]) -> None:
    layout = problem[0].layout
    with pytest.raises(ValueError, match="alpha"):
        FTRLModel(layout, "binary", {"alpha": 0.0})
    with pytest.raises(ValueError, match="unknown"):
        FTRLModel(layout, "binary", {"learning_rate": 0.1})
    with pytest.raises(ValueError, match="task"):
        FTRLModel(layout, "regression", {})


def test_save_load_round_trip_and_corrupt_files(
        problem: tuple[FeatureSet, TrainSet, TrainSet], tmp_path: Path) -> None:
    features, train, test = problem
    model = _ftrl(features, train, epochs=1)
    deployed = _deployed(features, model)
    deployed.save(tmp_path / "m")
    again = DeployedModel.load(tmp_path / "m")
    assert isinstance(again.model, FTRLModel)
    np.testing.assert_array_equal(again.model.predict(test.x), model.predict(test.x))

    (tmp_path / "m" / STATE).write_bytes(b"\x00" * 40)
    with pytest.raises(ModelFileError, match="unreadable"):
        DeployedModel.load(tmp_path / "m")
    (tmp_path / "m" / STATE).unlink()
    with pytest.raises(ModelFileError, match="missing"):
        FTRLModel.load(tmp_path / "m", features.layout, "binary", {})
    # a state saved for another layout is refused by shape
    model.save(tmp_path)
    other = FeatureSet(_config().model_copy(update={"features": _config().features[:3]}))
    with pytest.raises(ModelFileError, match="shape"):
        FTRLModel.load(tmp_path, other.layout, "binary", {})


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_online_learner_learns_a_clicked_id_within_seconds(
        problem: tuple[FeatureSet, TrainSet, TrainSet], tmp_path: Path) -> None:
    features, train, _ = problem
    model = _ftrl(features, train)
    deployed = _deployed(features, model)
    neutral_id = int(features.layout.offsets[0]) + NEUTRAL + 1  # categorical: code + 1
    w0 = model.weights().w_ids[neutral_id]
    rng = np.random.default_rng(3)
    probe, _ = SyntheticCTR().sample(200, rng)
    probe["a"][:] = NEUTRAL
    p0 = deployed.predict(probe).mean()

    clock = FakeClock()
    learner = OnlineLearner(deployed, delay_s=5.0, clock=clock)
    gen = SyntheticCTR()
    for e in range(50):  # 50 lists of 10; the neutral id is shown 3 times in each, always clicked
        raw, y = gen.sample(10, rng)
        raw["a"][:3] = NEUTRAL
        learner.add_exposures(f"e{e}", np.arange(10) + 100 * e, raw)
        for j in np.flatnonzero(np.arange(10) < 3):
            assert learner.mark_click(f"e{e}", 100 * e + int(j))
    assert learner.pending_rows == 500
    assert learner.tick(clock.t + 4.9) == 0  # nothing has waited delay_s yet
    clock.t += 5.0
    assert learner.tick() == 500
    s = learner.stats
    assert (s.updates, s.rows, s.positives, s.late_clicks) == (1, 500, 150, 0)
    assert learner.pending_rows == 0
    w1 = model.weights().w_ids[neutral_id]
    p1 = deployed.predict(probe).mean()
    assert w1 > w0 + 0.1 and p1 > p0 + 0.05, (w0, w1, p0, p1)
    # the weights patched per update equal those derived afresh from the saved z and n
    deployed.save(tmp_path)
    np.testing.assert_allclose(DeployedModel.load(tmp_path).predict(probe),
                               deployed.predict(probe), rtol=1e-12)

    # a click after its exposure was learnt is learnt as an extra positive, not lost
    assert learner.mark_click("e0", 5)
    assert learner.mark_click("e0", 5)  # a repeat is a no-op
    assert learner.stats.late_clicks == 1 and learner.pending_rows == 1
    assert learner.tick() == 1
    assert (learner.stats.rows, learner.stats.positives) == (501, 151)
    assert not learner.mark_click("e0", 12345) and not learner.mark_click("nope", 1)
    assert learner.stats.unmatched_clicks == 2


def test_online_learner_bounds_memory_and_weights_negatives(
        problem: tuple[FeatureSet, TrainSet, TrainSet]) -> None:
    features, train, _ = problem
    deployed = _deployed(features, _ftrl(features, train, epochs=1), negative_rate=0.1)
    clock = FakeClock()
    learner = OnlineLearner(deployed, clock=clock, max_pending_rows=25, max_committed_rows=10)
    raw, _ = SyntheticCTR().sample(10, np.random.default_rng(0))
    for e in range(3):
        learner.add_exposures(f"e{e}", np.arange(10), raw)
    assert learner.stats.dropped == 10 and learner.pending_rows == 20
    assert not learner.mark_click("e0", 1)  # dropped unlearnt
    clock.t += 10
    assert learner.tick() == 20
    # only the newest committed exposure is remembered for late clicks
    assert not learner.mark_click("e1", 1) and learner.mark_click("e2", 1)

    with pytest.raises(TypeError, match="ftrl"):
        lr = LogisticRegressionModel(features.layout, "binary", {})
        OnlineLearner(DeployedModel(deployed.manifest, features, lr))


class RecordingLearner(OnlineLearner):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.shown: dict[str, tuple[npt.NDArray[Any], Raw]] = {}

    def add_exposures(self, exposure_id: str, item_ids: npt.ArrayLike, raw_rows: Raw) -> None:
        self.shown[exposure_id] = (np.asarray(item_ids), raw_rows)
        super().add_exposures(exposure_id, item_ids, raw_rows)


def test_service_learns_a_click_from_the_event_stream(service: Service) -> None:
    data = service.settings.data_dir
    simulate(service, data / "generated", NOW - 86400, 0.5, 300, seed=11)
    service.exposures.flush()
    samples = pq.read_table(join(DuckDBEngine.over_log(service.log.root), data / "samples")["path"])
    raw = offline_inputs(samples, service.store, service.profiles.table)
    keep = np.flatnonzero(raw["known_item"] & raw["has_snapshot"] & (raw["ctx_position"] >= 0))
    raw = {k: v[keep] for k, v in raw.items()}
    y = np.asarray(samples.column("click").to_numpy(), np.float64)[keep]
    config = load_features(CONFIG)
    config.check_inputs(INPUTS)
    features = FeatureSet.fit(config, raw)
    model = FTRLModel(features.layout, "binary", {"epochs": 1})
    model.fit(TrainSet(features.transform(raw), y))
    clock = FakeClock()
    learner = RecordingLearner(_deployed(features, model), delay_s=5.0, clock=clock)
    service.attach_online_learner(learner)

    user = service.profiles.active_users()[0]
    req = RecommendRequest(Scene.GUESS_YOU_LIKE, user, 10, NOW, platform="ios")
    rec = asyncio.run(service.pipeline.recommend(req))
    item_ids, shown = learner.shown[rec.exposure_id]
    assert item_ids.tolist() == [it["item_id"] for it in rec.items]
    row = {k: v[:1] for k, v in shown.items()}
    before = learner.model.predict(row)[0]

    click = Event(f"{rec.exposure_id}-c0", EventType.CLICK, user, int(item_ids[0]), NOW + 1,
                  rec.item_params[0])
    assert service.ingest_sync([click])[0].status == EventStatus.ACCEPTED
    assert 'tuijian_ftrl_pending_rows 10.0' in service.metrics.render().decode()
    assert service.learn_online() == 0  # the list is still waiting for its clicks
    clock.t += 5.0
    assert service.learn_online() == len(rec.items)
    s = learner.stats
    assert s.rows == len(rec.items) > 0 and s.positives == 1 and s.updates == 1
    after = learner.model.predict(row)[0]
    assert after > before, (before, after)
    metrics = service.metrics.render().decode()
    assert f"tuijian_ftrl_rows_total {float(len(rec.items))}" in metrics
    assert "tuijian_ftrl_updates_total 1.0" in metrics
    assert "tuijian_ftrl_pending_rows 0.0" in metrics
