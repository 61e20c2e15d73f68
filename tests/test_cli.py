"""The CLI as a user runs it: generate → simulate → join on a tiny marketplace."""

import json
from pathlib import Path

from typer.testing import CliRunner

from tuijian.cli import app

from .conftest import DATASETS

runner = CliRunner()


def test_generate_simulate_join(tmp_path: Path) -> None:
    data = tmp_path / "data"
    r = runner.invoke(app, ["generate", "--items", "3000", "--users", "300", "--seed", "1",
                            "--out", str(data / "generated")])
    assert r.exit_code == 0, r.output
    assert (data / "generated" / "items.parquet").exists()
    r = runner.invoke(app, ["simulate", "--data", str(data), "--days", "0.1",
                            "--requests-per-day", "1000"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["join", "--data", str(data), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert 900 <= out["samples"] <= 1000 and out["unmatched_clicks"] == 0
    assert {row["value"] for row in out["funnel"]["scene"]} >= {"guess_you_like", "feed"}


def test_missing_data_is_a_clear_error(tmp_path: Path) -> None:
    r = runner.invoke(app, ["build", "--data", str(tmp_path / "none")])
    assert r.exit_code == 2
    assert "tuijian generate" in r.output


def test_offline_commands_explain_a_running_server(service) -> None:  # type: ignore[no-untyped-def]
    data = str(service.settings.data_dir)  # the fixture's service holds the event log
    r = runner.invoke(app, ["build", "--data", data])
    assert r.exit_code == 2 and "--server" in r.output
    r = runner.invoke(app, ["push", "--users", "all", "--data", data, "--server",
                            "http://127.0.0.1:9"])
    assert r.exit_code == 2 and "--server" in r.output


def test_eval_recall_on_movielens_100k() -> None:
    r = runner.invoke(app, ["eval", "recall", "--dataset", "ml-100k", "--data-dir",
                            str(DATASETS), "--k", "10", "--models",
                            "popularity,item_cf", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["protocol"]["test_users"] == 943 and out["protocol"]["k"] == 10
    pop, cf = out["models"]["popularity"], out["models"]["item_cf"]
    assert 0.2 < pop["ndcg@10"] < cf["ndcg@10"] < 0.6
    assert {"precision@10", "recall@10", "map@10", "coverage", "train_s"} <= set(cf)
    r = runner.invoke(app, ["eval", "recall", "--dataset", "ml-100k", "--data-dir",
                            "/nowhere"])
    assert r.exit_code == 2 and "ml-100k" in r.output


def test_experiments_create_start_report_json(tmp_path: Path) -> None:
    data = tmp_path / "data"
    r = runner.invoke(app, ["generate", "--items", "3000", "--users", "300", "--seed", "1",
                            "--out", str(data / "generated")])
    assert r.exit_code == 0, r.output
    spec = tmp_path / "exp.yaml"
    spec.write_text("name: fusion\nlayer: recall\nscenes: [guess_you_like, feed]\n"
                    "percent: 100\nvariants:\n  - {name: control, stage_id: r_default}\n"
                    "  - {name: rrf, stage_id: r_rrf}\n")
    r = runner.invoke(app, ["experiments", "create", str(spec), "--data", str(data)])
    assert r.exit_code == 0, r.output
    exp_id = json.loads(r.stdout)["id"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(spec.read_text().replace("r_rrf", "r_nope"))
    r = runner.invoke(app, ["experiments", "create", str(bad), "--data", str(data)])
    assert r.exit_code == 2 and "unknown recall id 'r_nope'" in r.output
    r = runner.invoke(app, ["experiments", "start", str(exp_id), "--data", str(data)])
    assert r.exit_code == 0 and json.loads(r.stdout)["status"] == "running"
    r = runner.invoke(app, ["simulate", "--data", str(data), "--days", "0.1",
                            "--requests-per-day", "2000"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["experiments", "report", str(exp_id), "--data", str(data),
                            "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert set(report["variants"]) == {"control", "rrf"}
    assert sum(v["units"] for v in report["variants"].values()) > 20
    assert {"srm", "lifts", "warnings", "min_units"} <= set(report)
    assert set(report["lifts"]["rrf"]) >= {"ctr", "cvr", "clicks_per_user"}
    r = runner.invoke(app, ["experiments", "report", str(exp_id), "--data", str(data)])
    assert r.exit_code == 0 and "SRM" in r.stdout
