from pathlib import Path

import pytest
import yaml

from tuijian.config import DEFAULT_STRATEGIES, ConfigError, Settings, load_strategies
from tuijian.domain import Scene


def _write(tmp_path: Path, mutate) -> Path:  # type: ignore[no-untyped-def]
    raw = yaml.safe_load(DEFAULT_STRATEGIES.read_text())
    mutate(raw)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_default_strategy_file_loads_with_every_scene() -> None:
    s = load_strategies()
    assert set(s.scenes) == set(Scene)
    assert s.scenes[Scene.GUESS_YOU_LIKE].recall in s.recall


def test_unknown_source_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda r: r["recall"]["r_default"]["sources"][1].update(name="nope"))
    with pytest.raises(ConfigError, match=r"recall\.r_default\.sources\[1\]\.name.*'nope'"):
        load_strategies(path)


def test_scene_naming_unknown_id_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda r: r["scenes"]["feed"].update(rank="rk_missing"))
    with pytest.raises(ConfigError, match=r"scenes\.feed\.rank.*rk_missing"):
        load_strategies(path)


def test_unknown_key_and_bad_value_are_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda r: r["rule"]["ru_default"].update(sctter=1))
    with pytest.raises(ConfigError, match="sctter"):
        load_strategies(path)
    path = _write(tmp_path, lambda r: r["recall"]["r_default"].update(size=0))
    with pytest.raises(ConfigError, match=r"recall\.r_default\.size"):
        load_strategies(path)


def test_unknown_ranker_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda r: r["rank"]["rk_rule"].update(ranker="magic"))
    with pytest.raises(ConfigError, match=r"rank\.rk_rule\.ranker.*magic"):
        load_strategies(path)


def test_placeholder_secret_refused_outside_dev_mode() -> None:
    with pytest.raises(ConfigError, match="secret"):
        Settings.from_env(dev_mode=False)
    with pytest.raises(ConfigError, match="admin_key: a placeholder"):
        Settings.from_env(dev_mode=False, secret="a-real-secret-value")
    with pytest.raises(ConfigError, match="ingest_key: a placeholder"):
        Settings.from_env(dev_mode=False, secret="a-real-secret-value",
                          admin_key="a-real-admin-key")
    assert Settings.from_env(dev_mode=False, secret="a-real-secret-value",
                             admin_key="a-real-admin-key", ingest_key="a-real-ingest-key",
                             read_key="a-real-read-key").dev_mode is False


def test_experiments_url_must_name_a_supported_store() -> None:
    with pytest.raises(ConfigError, match="experiments_url"):
        Settings.from_env(experiments_url="mysql://x")
    with pytest.raises(ConfigError, match="stream_url: expected redis"):
        Settings.from_env(stream_url="amqp://x")
    with pytest.raises(ConfigError, match="metadata_url"):
        Settings.from_env(metadata_url="redis://x")
    s = Settings.from_env(data_dir="/tmp/d")
    assert s.experiments_store == "sqlite:////tmp/d/experiments.db"  # an absolute path


def test_impossible_quota_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda r: r["recall"]["r_default"].update(size=5000))
    with pytest.raises(ConfigError, match=r"recall\.r_default.*add up to .* less than size 5000"):
        load_strategies(path)


def test_stage_budgets_are_validated(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda r: r["recall"]["r_default"].update(budget_ms=15))
    with pytest.raises(ConfigError, match=r"recall\.r_default.*budget_ms: 15 is less than "
                                          r"source hot's budget_ms 20"):
        load_strategies(path)
    path = _write(tmp_path, lambda r: r["rank"]["rk_rule"].update(budget_ms=0))
    with pytest.raises(ConfigError, match=r"rank\.rk_rule\.budget_ms"):
        load_strategies(path)
    path = _write(tmp_path, lambda r: r["rank"]["rk_rule"].update(budget_ms=250))
    assert load_strategies(path).rank["rk_rule"].budget_ms == 250


@pytest.mark.parametrize("target", ["recall:50051", "dns:///recall:50051", "unix:/run/r.sock",
                                    "[::1]:50052", "10.0.0.7:50052"])
def test_stage_urls_take_grpc_targets(target: str) -> None:
    s = Settings.from_env(recall_url=target, rank_url=target)
    assert (s.recall_url, s.rank_url) == (target, target)


@pytest.mark.parametrize("target", ["http://recall:50051", "recall", "recall:port", "a b:1"])
def test_stage_urls_refuse_what_is_not_a_grpc_target(target: str) -> None:
    for name in ("recall_url", "rank_url"):
        with pytest.raises(ConfigError, match=f"{name}: expected HOST:PORT"):
            Settings.from_env(**{name: target})
