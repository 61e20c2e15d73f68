"""The rank model registry and the live loader: deploy, list, roll back, reject, hot reload."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tuijian.cli import app
from tuijian.config import Settings
from tuijian.rank.deployed import FEATURES, DeployedModel, Manifest
from tuijian.rank.features.featureset import FeatureMatrix, FeatureSet, Raw
from tuijian.rank.features.spec import FeatureConfig, FeatureSpec
from tuijian.rank.live_models import LiveModels
from tuijian.rank.model_registry import ModelRegistry, RegistryError
from tuijian.rank.models.base import TrainSet
from tuijian.rank.models.linear import WEIGHTS, LogisticRegressionModel
from tuijian.serving.metrics import Metrics
from tuijian.serving.service import Service

from ..conftest import NOW

runner = CliRunner()


def words(output: str) -> str:
    """CLI output with rich's line wrapping undone."""
    return " ".join(output.split())


def feature_config(category_size: int = 5) -> FeatureConfig:
    return FeatureConfig(name="tiny", features=[
        FeatureSpec(name="price", side="item", inputs=["price"], transform="normalize"),
        FeatureSpec(name="category", side="item", inputs=["category"],
                    transform="categorical", size=category_size),
        FeatureSpec(name="hour", side="context", inputs=["hour"], transform="bucketize",
                    boundaries=[6.0, 12.0, 18.0]),
    ])


def raw_rows(n: int, seed: int) -> Raw:
    rng = np.random.default_rng(seed)
    return {"price": rng.lognormal(3, 1, n), "category": rng.integers(0, 5, n),
            "hour": rng.integers(0, 24, n).astype(np.float64)}


def make_model(path: Path, seed: int = 0, auc: float = 0.7) -> Path:
    """A real LR model directory, fitted on random rows (each seed gives other weights)."""
    raw = raw_rows(400, seed)
    features = FeatureSet.fit(feature_config(), raw)
    x: FeatureMatrix = features.transform(raw)
    rng = np.random.default_rng(seed + 100)
    y = (rng.random(400) < 0.2 + 0.1 * (np.asarray(raw["category"]) == seed % 5)).astype(float)
    model = LogisticRegressionModel(features.layout, "binary", {"C": 1.0})
    model.fit(TrainSet(x, y))
    layout = features.layout
    manifest = Manifest(kind="lr", objective="click", task="binary", n_dense=layout.n_dense,
                        field_sizes=list(layout.field_sizes), metrics={"auc": auc},
                        train_rows=400)
    DeployedModel(manifest, features, model).save(path)
    return path


def corrupt_weights(path: Path) -> Path:
    weights = path / WEIGHTS
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return path


def incompatible_features(path: Path) -> Path:
    """A features.json whose layout (one more category) no longer matches the model."""
    fitted = FeatureSet.fit(feature_config(category_size=6), raw_rows(100, 1))
    (path / FEATURES).write_bytes(fitted.config.dumps())
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("model_dirs")
    return [make_model(root / f"m{i}", seed=i, auc=0.70 + i / 100) for i in range(8)]


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "rank_models")


def broken_copy(src: Path, dst: Path, damage: str) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return corrupt_weights(dst) if damage == "corrupt" else incompatible_features(dst)


def test_deploy_list_rollback_round_trip(registry: ModelRegistry, models: list[Path]) -> None:
    assert registry.names() == [] and registry.current("ctr") is None
    assert [registry.deploy(models[i], "ctr") for i in range(3)] == ["v0001", "v0002", "v0003"]
    registry.deploy(models[0], "cvr")
    assert registry.names() == ["ctr", "cvr"]
    assert registry.versions("ctr") == ["v0001", "v0002", "v0003"]
    assert registry.current("ctr") == "v0003"
    loaded = DeployedModel.load(registry.path("ctr", "v0002"))
    raw = raw_rows(50, 9)
    np.testing.assert_allclose(loaded.predict(raw), DeployedModel.load(models[1]).predict(raw))

    rows = {(e.name, e.version): e for e in registry.entries()}
    assert len(rows) == 4
    top = rows["ctr", "v0003"]
    assert (top.current, top.status, top.kind, top.objective) == (True, "serving", "lr", "click")
    assert top.auc == pytest.approx(0.72) and top.trained_at is not None and top.reason is None
    assert rows["ctr", "v0001"].status == "available"

    assert registry.rollback("ctr") == "v0002"
    assert registry.rollback("ctr") == "v0001"
    with pytest.raises(RegistryError, match="no usable version"):
        registry.rollback("ctr")
    assert registry.rollback("ctr", to="v0003") == "v0003"
    with pytest.raises(RegistryError, match="no version"):
        registry.rollback("ctr", to="v0009")
    with pytest.raises(RegistryError, match="no model named"):
        registry.rollback("nope")
    # a new deploy after a rollback takes the next number, never reuses one
    registry.rollback("ctr")
    assert registry.deploy(models[3], "ctr") == "v0004"


def test_deploy_refuses_a_directory_without_a_manifest(registry: ModelRegistry,
                                                       tmp_path: Path, models: list[Path]) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(RegistryError, match="model.json"):
        registry.deploy(tmp_path / "empty", "ctr")
    with pytest.raises(RegistryError, match="must match"):
        registry.deploy(models[0], "../escape")
    assert registry.versions("ctr") == []


def test_old_versions_are_pruned_but_current_and_serving_kept(tmp_path: Path,
                                                              models: list[Path]) -> None:
    registry = ModelRegistry(tmp_path / "rank_models", keep=3)
    registry.deploy(models[0], "ctr")
    registry.mark_serving("ctr", "v0001")
    for i in range(1, 6):
        registry.deploy(models[i], "ctr")
    assert registry.versions("ctr") == ["v0001", "v0004", "v0005", "v0006"]
    assert not list((tmp_path / "rank_models" / "ctr").glob(".tmp-*"))


def test_current_switch_is_atomic_for_a_concurrent_reader(registry: ModelRegistry,
                                                          models: list[Path]) -> None:
    registry.deploy(models[0], "ctr")
    stop = threading.Event()
    loads, failures = [0], []

    def reader() -> None:
        while not stop.is_set():
            try:
                version = registry.current("ctr")
                assert version is not None
                DeployedModel.load(registry.path("ctr", version))
                loads[0] += 1
            except Exception as exc:
                failures.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(1, 8):
            registry.deploy(models[i], "ctr")
    finally:
        stop.set()
        thread.join()
    assert failures == [] and loads[0] > 0
    assert registry.current("ctr") == "v0008"


@pytest.mark.parametrize(("damage", "reason_class", "message"), [
    ("corrupt", "corrupt", "unreadable"),
    ("incompatible", "incompatible", "layout differs"),
])
def test_a_bad_version_is_rejected_and_the_old_one_keeps_serving(
        registry: ModelRegistry, models: list[Path], tmp_path: Path,
        damage: str, reason_class: str, message: str) -> None:
    metrics = Metrics()
    live = LiveModels(registry, metrics)
    registry.deploy(models[0], "ctr")
    assert live.poll() == ["ctr"]
    raw = raw_rows(30, 7)
    expected = DeployedModel.load(models[0]).predict(raw)

    registry.deploy(broken_copy(models[1], tmp_path / "bad", damage), "ctr")
    assert live.poll() == []
    assert live.version("ctr") == "v0001"
    model = live.get("ctr")
    assert model is not None
    np.testing.assert_allclose(model.predict(raw), expected)

    rows = {e.version: e for e in registry.entries()}
    assert rows["v0002"].status == "rejected" and rows["v0002"].current
    assert message in (rows["v0002"].reason or "")
    assert rows["v0001"].status == "serving" and not rows["v0001"].current
    text = metrics.render().decode()
    assert (f'tuijian_model_load_failures_total{{model="ctr",reason="{reason_class}"}} 1.0'
            in text)
    assert 'tuijian_model_version_info{model="ctr",version="v0001"} 1.0' in text

    # not retried on every poll
    assert live.poll() == [] and live.poll() == []
    assert (f'tuijian_model_load_failures_total{{model="ctr",reason="{reason_class}"}} 1.0'
            in metrics.render().decode())
    # a fixed model deployed after it serves
    registry.deploy(models[2], "ctr")
    assert live.poll() == ["ctr"] and live.version("ctr") == "v0003"
    text = metrics.render().decode()
    assert 'tuijian_model_version_info{model="ctr",version="v0003"} 1.0' in text
    assert 'version="v0001"' not in text
    assert 'tuijian_model_loaded_timestamp{model="ctr"}' in text


def test_a_restart_after_a_bad_deploy_serves_the_last_good_version(
        registry: ModelRegistry, models: list[Path], tmp_path: Path) -> None:
    first = LiveModels(registry)
    registry.deploy(models[0], "ctr")
    first.poll()
    registry.deploy(broken_copy(models[1], tmp_path / "bad", "corrupt"), "ctr")
    first.poll()
    # a new process: CURRENT is the rejected version; it falls back to what last served
    restarted = LiveModels(registry)
    assert restarted.poll() == ["ctr"] and restarted.version("ctr") == "v0001"
    assert restarted.poll() == []


def test_service_loads_rank_models_and_shows_rejections_in_metrics(
        data_dir: Path, models: list[Path], tmp_path: Path) -> None:
    registry = ModelRegistry(data_dir / "rank_models")
    registry.deploy(models[0], "ctr")
    service = Service(Settings(data_dir=data_dir), now=NOW)
    try:
        assert service.rank_models.version("ctr") == "v0001"  # polled at start-up
        assert service.reload_models() == []
        registry.deploy(models[1], "ctr")
        assert service.reload_models() == ["rank:ctr"]
        registry.deploy(broken_copy(models[2], tmp_path / "bad", "corrupt"), "ctr")
        assert service.reload_models() == []
        assert service.rank_models.version("ctr") == "v0002"
        text = service.metrics.render().decode()
        assert 'tuijian_model_load_failures_total{model="ctr",reason="corrupt"} 1.0' in text
        assert 'tuijian_model_version_info{model="ctr",version="v0002"} 1.0' in text
    finally:
        service.close()


def test_cli_deploy_list_rollback(tmp_path: Path, models: list[Path]) -> None:
    data = tmp_path / "data"
    r = runner.invoke(app, ["models", "deploy", str(models[0]), "--name", "ctr",
                            "--data", str(data)])
    assert r.exit_code == 0, r.output
    assert "v0001" in r.output
    # a server's loader (here: in this process); `list` reads only the registry's files
    live = LiveModels(ModelRegistry(data / "rank_models"))
    assert live.poll() == ["ctr"]
    bad = broken_copy(models[1], tmp_path / "bad", "corrupt")
    r = runner.invoke(app, ["models", "deploy", str(bad), "--name", "ctr", "--data", str(data)])
    assert r.exit_code == 1 and "not a deployable model" in words(r.output)
    assert ModelRegistry(data / "rank_models").versions("ctr") == ["v0001"]
    r = runner.invoke(app, ["models", "deploy", str(bad), "--name", "ctr", "--data", str(data),
                            "--force"])
    assert r.exit_code == 0, r.output

    assert live.poll() == [] and live.version("ctr") == "v0001"
    r = runner.invoke(app, ["models", "list", "--data", str(data), "--json"])
    assert r.exit_code == 0, r.output
    rows = {row["version"]: row for row in json.loads(r.stdout)}
    assert rows["v0002"]["status"] == "rejected" and rows["v0002"]["current"]
    assert "unreadable" in rows["v0002"]["reason"]
    assert rows["v0001"]["status"] == "serving" and rows["v0001"]["auc"] == pytest.approx(0.70)
    r = runner.invoke(app, ["models", "list", "--data", str(data)])
    assert r.exit_code == 0 and "ctr v0002 rejected: weights.safetensors: unreadable" in words(
        r.output)

    r = runner.invoke(app, ["models", "rollback", "ctr", "--data", str(data)])
    assert r.exit_code == 0 and "v0001" in r.output, r.output
    r = runner.invoke(app, ["models", "rollback", "ctr", "--to", "v0002", "--data", str(data)])
    assert r.exit_code == 1 and "rejected" in r.output
    r = runner.invoke(app, ["models", "rollback", "nope", "--data", str(data)])
    assert r.exit_code == 1


def test_hot_reload_under_load(registry: ModelRegistry, models: list[Path]) -> None:
    live = LiveModels(registry, Metrics())
    registry.deploy(models[0], "ctr")
    live.poll()
    raw = raw_rows(150, 3)
    stop, started = threading.Event(), threading.Event()
    calls, missing, errors = [0], [0], []
    # the models requests were scored with (kept referenced, so ids stay unique)
    seen: dict[int, DeployedModel] = {}

    def serve() -> None:
        while not stop.is_set():
            try:
                model = live.get("ctr")
                if model is None:
                    missing[0] += 1
                    continue
                scores = model.predict(raw)
                assert scores.shape == (150,) and np.all(np.isfinite(scores))
                seen[id(model)] = model
                calls[0] += 1
                started.set()
            except Exception as exc:
                errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    swapped = []
    try:
        assert started.wait(10)
        for i in range(1, 6):
            registry.deploy(models[i], "ctr")
            swapped += live.poll()
        final = live.get("ctr")
        deadline = time.monotonic() + 10
        while id(final) not in seen and time.monotonic() < deadline:
            time.sleep(0.001)
    finally:
        stop.set()
        thread.join()
    assert errors == [] and missing[0] == 0
    assert id(final) in seen and len(seen) >= 2 and calls[0] > 0
    assert swapped == ["ctr"] * 5
    assert live.version("ctr") == registry.current("ctr") == "v0006"
    assert {e.version: e.status for e in registry.entries()}["v0006"] == "serving"
