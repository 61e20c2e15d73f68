"""The model registry with its entries in the metadata database, on SQLite and on a real
PostgreSQL database: deploys and rollbacks as audited transactions every replica agrees on,
rejections, the live loader following CURRENT, and concurrent writers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tuijian.rank.live_models import LiveModels
from tuijian.rank.model_registry import RegistryError
from tuijian.rank.model_registry_sql import SqlModelRegistry

from ..conftest import concurrently
from ..rank.test_model_registry import corrupt_weights, make_model


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("model_dirs")
    return [make_model(root / f"m{i}", seed=i, auc=0.70 + i / 100) for i in range(3)]


@pytest.fixture
def registry(metadata_url: str, tmp_path: Path) -> Iterator[SqlModelRegistry]:
    r = SqlModelRegistry(tmp_path / "rank_models", metadata_url)
    yield r
    r.close()


def test_deploy_and_rollback_are_audited_entries_every_replica_sees(
        registry: SqlModelRegistry, models: list[Path], metadata_url: str, tmp_path: Path
        ) -> None:
    assert registry.names() == [] and registry.revision() == 0
    assert [registry.deploy(m, "ctr", actor="ci") for m in models] == ["v0001", "v0002",
                                                                        "v0003"]
    replica = SqlModelRegistry(tmp_path / "rank_models", metadata_url)
    assert replica.current("ctr") == "v0003" and replica.versions("ctr") == ["v0001", "v0002",
                                                                             "v0003"]
    rows = {e.version: e for e in replica.entries()}
    top = rows["v0003"]
    assert (top.current, top.status, top.kind, top.objective, top.actor) == (
        True, "serving", "lr", "click", "ci")
    assert top.auc == pytest.approx(0.72) and top.deployed_at is not None
    assert registry.rollback("ctr", actor="ops") == "v0002"
    assert replica.current("ctr") == "v0002" and replica.revision() == 4
    last = replica.audit("ctr")[0]
    assert (last.action, last.actor, last.before, last.after) == (
        "rollback", "ops", {"current": "v0003"}, {"current": "v0002"})
    assert [a.action for a in replica.audit("ctr")] == ["rollback", "deploy", "deploy", "deploy"]
    with pytest.raises(RegistryError, match="no version 'v0009'"):
        registry.rollback("ctr", "v0009")
    assert replica.current("ctr") == "v0002" and replica.revision() == 4  # nothing written
    replica.close()


def test_a_rejected_version_is_never_rolled_back_to(registry: SqlModelRegistry,
                                                    models: list[Path]) -> None:
    for m in models:
        registry.deploy(m, "ctr")
    registry.reject("ctr", "v0002", "warm-up: bad")
    assert registry.rejection("ctr", "v0002") == "warm-up: bad"
    with pytest.raises(RegistryError, match="was rejected"):
        registry.rollback("ctr", "v0002")
    assert registry.rollback("ctr") == "v0001"  # skips the rejected one
    assert {e.version: e.status for e in registry.entries()} == {
        "v0001": "serving", "v0002": "rejected", "v0003": "available"}
    assert registry.audit("ctr")[1].after == {"version": "v0002", "rejected": "warm-up: bad"}


def test_the_live_loader_follows_current_and_rejects_a_broken_version(
        registry: SqlModelRegistry, models: list[Path], tmp_path: Path) -> None:
    registry.deploy(models[0], "ctr")
    live = LiveModels(registry)
    assert live.poll() == ["ctr"] and live.version("ctr") == "v0001"
    assert registry.serving("ctr") == "v0001"
    import shutil

    broken = corrupt_weights(Path(shutil.copytree(models[1], tmp_path / "broken")))
    registry.deploy(broken, "ctr")
    assert live.poll() == [] and live.version("ctr") == "v0001"  # the old one keeps serving
    assert registry.rejection("ctr", "v0002") is not None
    assert registry.audit("ctr")[0].actor == "loader"
    registry.rollback("ctr")
    registry.deploy(models[2], "ctr")
    assert live.poll() == ["ctr"] and live.version("ctr") == "v0003"


def test_concurrent_rollbacks_from_two_connections_step_back_twice(
        registry: SqlModelRegistry, models: list[Path], metadata_url: str, tmp_path: Path
        ) -> None:
    """Without one transaction per rollback both would read CURRENT v0003 and both point
    at v0002: a lost update. Serialised, the second steps back from where the first left."""
    for m in models:
        registry.deploy(m, "ctr")
    barrier = threading.Barrier(2)
    results: list[str] = []

    def roll() -> None:
        own = SqlModelRegistry(tmp_path / "rank_models", metadata_url)
        barrier.wait()
        try:
            results.append(own.rollback("ctr", actor="ops"))
        finally:
            own.close()

    concurrently(roll)
    assert sorted(results) == ["v0001", "v0002"] and registry.current("ctr") == "v0001"
    moves = [(a.before, a.after) for a in registry.audit("ctr")[:2]]
    assert moves == [({"current": "v0002"}, {"current": "v0001"}),
                     ({"current": "v0003"}, {"current": "v0002"})]


def test_concurrent_deploys_get_distinct_versions(registry: SqlModelRegistry,
                                                  models: list[Path], metadata_url: str,
                                                  tmp_path: Path) -> None:
    barrier = threading.Barrier(2)
    results: list[str] = []

    def deploy(m: Path) -> None:
        own = SqlModelRegistry(tmp_path / "rank_models", metadata_url)
        barrier.wait()
        try:
            results.append(own.deploy(m, "ctr"))
        finally:
            own.close()

    threads = [threading.Thread(target=deploy, args=(m,)) for m in models[:2]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["v0001", "v0002"]
    assert registry.versions("ctr") == ["v0001", "v0002"]
    assert registry.current("ctr") in results and registry.revision() == 2
