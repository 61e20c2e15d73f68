"""Reports on real event logs: a simulated A/B test through the full pipeline (behavior
simulator) finds the better strategy, an A/A test in the same traffic finds nothing, and a
skewed log trips the sample-ratio-mismatch check."""

from __future__ import annotations

from pathlib import Path

from tuijian.data.eventlog import EventLog
from tuijian.domain import Event
from tuijian.experiments.model import Experiment
from tuijian.experiments.report import experiment_report
from tuijian.jobs.simulate import simulate
from tuijian.serving.service import Service

from ..conftest import NOW

SCENES = ["guess_you_like", "feed"]


def test_simulated_ab_finds_the_better_strategy_and_aa_finds_nothing(
        service: Service, data_dir: Path) -> None:
    p = service.experiments
    # the worse strategy: a business rule that (misconfigured) hides every well-kept listing
    ab = p.create({"name": "hide well-kept listings", "layer": "rule", "scenes": SCENES,
                   "status": "running", "variants": [
                       {"name": "control", "stage_id": "ru_default"},
                       {"name": "worse", "stage_id": "ru_default", "params": {"business": [
                           {"name": "hide_good", "action": "filter",
                            "when": {"quality": {"gt": 0.3}}}]}}]},
                  "test", percent=100)
    aa = p.create({"name": "A/A", "layer": "rank", "scenes": SCENES, "status": "running",
                   "variants": [{"name": "control", "stage_id": "rk_rule"},
                                {"name": "same", "stage_id": "rk_rule"}]}, "test", percent=100)
    simulate(service, data_dir / "generated", NOW - 86400, 1.0, 2000, seed=17)
    events = service.log.relation_sql()

    report = experiment_report(events, p.get(ab.id))
    ctr = report["lifts"]["worse"]["ctr"]
    assert ctr["significant"] and ctr["lift"] < 0 and ctr["ci_high"] < 0, ctr
    assert report["variants"]["control"]["units"] > 200
    assert not report["srm"]["flagged"]

    null = experiment_report(events, p.get(aa.id))
    ctr = null["lifts"]["same"]["ctr"]
    assert not ctr["significant"] and ctr["ci_low"] < 0 < ctr["ci_high"], ctr
    assert not null["srm"]["flagged"]
    # both experiments saw the same requests: every click is in one arm of each
    assert sum(v["clicks"] for v in report["variants"].values()) == sum(
        v["clicks"] for v in null["variants"].values()) > 100


def _log(root: Path, units: dict[str, int]) -> str:
    log = EventLog(root)
    events = [Event(f"e-{v}-{u}", "exposure", f"{v}-{u}", 1, NOW, experiments=[f"9:{v}"])
              for v, n in units.items() for u in range(n)]
    log.append(events)
    sql = log.relation_sql()
    log.close()
    return sql


def test_srm_fires_on_a_skewed_log_and_not_on_a_balanced_one(tmp_path: Path) -> None:
    exp = Experiment.model_validate({
        "id": 9, "name": "x", "layer": "recall", "scenes": SCENES, "variants": [
            {"name": "control", "stage_id": "r_default"}, {"name": "t", "stage_id": "r_rrf"}]})
    skewed = experiment_report(_log(tmp_path / "a", {"control": 5300, "t": 4700}), exp)
    assert skewed["srm"]["flagged"]
    assert any("ratio mismatch" in w for w in skewed["warnings"])
    fair = experiment_report(_log(tmp_path / "b", {"control": 5020, "t": 4980}), exp)
    assert not fair["srm"]["flagged"]
    assert fair["variants"]["control"]["units"] == 5020
