"""Samples → clean → label → train → deploy → the rank stage serves the model."""

import asyncio
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from tuijian.cli import app
from tuijian.config import ConfigError, Settings, load_strategies
from tuijian.domain import RecommendRequest, Scene
from tuijian.jobs.engine import DuckDBEngine
from tuijian.jobs.join import join
from tuijian.jobs.simulate import simulate
from tuijian.rank.deployed import DeployedModel, correct_sampling
from tuijian.rank.features.marketplace import ServingContext, online_inputs
from tuijian.rank.formula import compile_formula
from tuijian.rank.training import (
    SampleFilter,
    TrainOptions,
    load_rows,
    negative_sample,
    objective_rows,
    train,
)
from tuijian.serving.service import Service

from ..conftest import NOW


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory, generated: Path) -> Path:
    """A data dir with a few days of simulated, joined traffic (shared by this module)."""
    data = tmp_path_factory.mktemp("ranklogs") / "data"
    shutil.copytree(generated, data / "generated")
    svc = Service(Settings(data_dir=data), now=NOW - 3 * 86400)
    try:
        simulate(svc, data / "generated", NOW - 3 * 86400, 2.0, 1500, seed=21)
        join(DuckDBEngine.over_log(svc.log.root), data / "samples")
    finally:
        svc.close()
    return data


def _rows(data: Path, filters: SampleFilter | None = None, samples: pa.Table | None = None):  # type: ignore[no-untyped-def]
    svc = Service(Settings(data_dir=data), now=NOW)
    try:
        table = samples if samples is not None else pq.read_table(
            data / "samples" / "samples.parquet")
        return load_rows(table, svc.store, svc.profiles.table, filters)
    finally:
        svc.close()


def test_bots_and_invalid_exposures_are_filtered(logged: Path) -> None:
    samples = pq.read_table(logged / "samples" / "samples.parquet")
    template = samples.slice(0, 40).to_pylist()
    bot = [{**r, "user_id": "bot-1", "click": 1 if i % 2 == 0 else 0} for i, r in
           enumerate(template)]
    bot += [{**r, "user_id": "bot-1", "click": 1} for r in template[:10]]
    broken = [{**template[0], "features": None}, {**template[1], "item_id": 10**12}]
    planted = pa.concat_tables([samples, pa.Table.from_pylist(bot + broken,
                                                              schema=samples.schema)])
    rows = _rows(logged, SampleFilter(bot_max_ctr=0.5, bot_min_exposures=20), planted)
    assert rows.report["bot_users"] == 1
    assert rows.report["bot_rows"] == len(bot)
    assert rows.report["invalid"] == 2
    assert "bot-1" not in set(rows.user.tolist())
    assert rows.report["kept"] == samples.num_rows


def test_negative_sampling_is_corrected_back_to_the_true_rate() -> None:
    p = np.array([0.01, 0.05, 0.2, 0.5])
    rate = 0.1
    inflated = p / (p + (1 - p) * rate)  # what a model trained on sampled negatives learns
    np.testing.assert_allclose(correct_sampling(inflated, rate), p)
    rng = np.random.default_rng(0)
    y = (rng.random(100_000) < 0.05).astype(float)
    kept = negative_sample(y, rate, rng)
    assert y[kept].sum() == y.sum()  # every positive kept
    assert abs((len(kept) - y.sum()) / (len(y) - y.sum()) - rate) < 0.01


def test_trained_ctr_model_beats_chance_and_is_calibrated_after_sampling(logged: Path) -> None:
    rows = _rows(logged)
    model, m = train(rows, TrainOptions("gbdt", negative_rate=0.3, valid_fraction=0.2))
    assert m["auc"] > 0.65
    # predictions are corrected for the sampling: the mean predicted CTR matches the observed
    assert 0.75 < m["calibration"] < 1.3
    assert model.manifest.negative_rate == 0.3


def test_objectives_pick_their_populations(logged: Path) -> None:
    rows = _rows(logged)
    cvr = objective_rows(rows, "convert")
    assert len(cvr.rows) == int(rows.click.sum()) and cvr.population == "clicks"
    dwell = objective_rows(rows, "dwell")
    assert dwell.task == "regression" and (dwell.y > 0).all()
    model, m = train(rows, TrainOptions("gbdt", objective="dwell", valid_fraction=0.2))
    assert m["rmse"] > 0 and model.manifest.target == "log1p"
    with pytest.raises(ValueError, match="esmm"):
        train(rows, TrainOptions("gbdt", objective="convert", cvr_mode="esmm"))


def test_formula_fuses_objectives_and_refuses_code() -> None:
    f = compile_formula("ctr * cvr ** 0.5 + 0 * dwell", {"ctr", "cvr", "dwell"})
    out = f({"ctr": np.array([0.1, 0.2]), "cvr": np.array([0.25, 0.04]),
             "dwell": np.array([1.0, 2.0])})
    np.testing.assert_allclose(out, [0.05, 0.04])
    for bad in ("__import__('os').system('x')", "ctr.__class__", "[ctr]", "ctr * nope"):
        with pytest.raises(ValueError, match="formula"):
            compile_formula(bad, {"ctr"})


def test_strategy_file_rejects_a_bad_rank_formula(tmp_path: Path) -> None:
    from tuijian.config import DEFAULT_STRATEGIES

    raw = yaml.safe_load(DEFAULT_STRATEGIES.read_text())
    raw["rank"]["rk_ctr_cvr"]["params"]["formula"] = "ctr * conversion"
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"rank\.rk_ctr_cvr\.params.*conversion"):
        load_strategies(path)


def test_train_deploy_and_serve_through_the_pipeline(logged: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["train", "--model", "lr", "--data", str(logged),
                              "--deploy", "ctr_gbdt_lr", "--json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["metrics"]["auc"] > 0.6 and result["deployed"]["name"] == "ctr_gbdt_lr"
    loaded = DeployedModel.load(Path(result["path"]))
    assert loaded.manifest.kind == "lr"

    svc = Service(Settings(data_dir=logged), now=NOW)
    try:
        req = RecommendRequest(Scene.GUESS_YOU_LIKE, svc.profiles.active_users()[0], 10, NOW)
        svc.pipeline.assigner.assign = lambda r: _ids("rk_ctr")  # type: ignore[method-assign]
        rec = asyncio.run(svc.pipeline.recommend(req, log_exposures=False))
        assert "rank.model_missing" not in rec.degraded and len(rec.items) == 10
        # the scores are the model's probabilities (the rule order's would differ)
        assert rec.cands.score.min() > 0 and rec.cands.score.max() < 1
        model = svc.rank_models.get("ctr_gbdt_lr")
        assert model is not None and model.manifest.kind == "lr"
        c = svc.store.gather(rec.cands.idx, ("clicks", "exposures"))
        assert not np.allclose(rec.cands.score, (c["clicks"] + 1) / (c["exposures"] + 30))

        # a list shown is logged with the click model's P(click) at each shown position, as
        # the counters and the profile were when it was shown
        shown = asyncio.run(svc.pipeline.recommend(req, log_exposures=False))
        positions = np.arange(10)
        raw = online_inputs(svc.store, svc.profiles.table,
                            ServingContext(svc.profiles.get(req.user_id), req.scene.value,
                                           req.platform, req.now),
                            shown.cands.take(positions), positions)
        svc.pipeline.log_exposures(shown, range(10))
        svc.exposures.flush()
        _, rows = svc.log.query(
            "SELECT position, pctr FROM events WHERE exposure_id = ? ORDER BY position",
            [shown.exposure_id])
        assert [r[0] for r in rows] == list(range(10))
        np.testing.assert_allclose([r[1] for r in rows], model.predict(raw), rtol=1e-9)
        at_top = model.predict({**raw, "ctx_position": np.zeros(10, np.int64)})
        assert not np.allclose(at_top[1:], [r[1] for r in rows][1:])  # position counts
    finally:
        svc.close()


def _ids(rank: str):  # type: ignore[no-untyped-def]
    from tuijian.domain import StageIds

    return StageIds("r_default", rank, "ru_default", "d_card")


def test_esmm_trains_conversion_over_exposures(logged: Path) -> None:
    rows = _rows(logged)
    model, m = train(rows, TrainOptions("esmm", objective="convert", cvr_mode="esmm",
                                        valid_fraction=0.2, params={"epochs": 2}))
    assert model.manifest.population == "clicks"  # it predicts P(convert | click)
    assert np.isfinite(m["auc"]) and m["valid_rows"] > 0


def test_a_deployed_ftrl_model_learns_from_the_service_traffic(logged: Path,
                                                               tmp_path: Path) -> None:
    from tuijian.rank.model_registry import ModelRegistry

    rows = _rows(logged)
    model, _ = train(rows, TrainOptions("ftrl", valid_fraction=0.2))
    model.save(tmp_path / "ftrl")
    registry = ModelRegistry(logged / "rank_models")
    registry.deploy(tmp_path / "ftrl", "ctr_ftrl")
    svc = Service(Settings(data_dir=logged), now=NOW)
    try:
        learner = svc.online_learner
        assert learner is not None and svc.pipeline.online_learner is learner
        live = svc.rank_models.get("ctr_ftrl")
        assert live is not None and live.manifest.kind == "ftrl"
        user = svc.profiles.active_users()[0]
        rec = asyncio.run(svc.pipeline.recommend(
            RecommendRequest(Scene.GUESS_YOU_LIKE, user, 10, NOW)))
        assert learner.pending_rows == len(rec.items)
        assert svc.learn_online(NOW + 3600) == len(rec.items)  # past the click delay
    finally:
        svc.close()
        shutil.rmtree(logged / "rank_models" / "ctr_ftrl")  # the module's other tests share it
