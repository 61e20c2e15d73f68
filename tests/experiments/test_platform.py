"""The platform over a real store (SQLite and PostgreSQL): validation, versions and audit,
traffic, launches, domains, whitelists, and the assignment's statistical properties."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from scipy import stats

from tuijian.config import StrategyFile, load_strategies
from tuijian.domain import RecommendRequest, Scene
from tuijian.experiments.model import ExperimentError
from tuijian.experiments.platform import ExperimentPlatform
from tuijian.experiments.store import SqlExperimentStore

ADMIN = "test"


@pytest.fixture(scope="module")
def strategies() -> StrategyFile:
    return load_strategies()


@pytest.fixture
def platform(metadata_url: str, strategies: StrategyFile) -> ExperimentPlatform:
    p = ExperimentPlatform(SqlExperimentStore(metadata_url), strategies)
    yield p  # type: ignore[misc]
    p.store.close()


def _exp(layer: str = "recall", a: str = "r_default", b: str = "r_rrf", **kw: Any
         ) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": f"{layer} test", "layer": layer, "scenes": ["guess_you_like", "feed"],
        "variants": [{"name": "control", "stage_id": a}, {"name": "treatment", "stage_id": b}],
    }
    return {**body, **kw}


def _req(unit: str, scene: Scene = Scene.GUESS_YOU_LIKE) -> RecommendRequest:
    return RecommendRequest(scene, unit, 10, time.time())


def test_lifecycle_is_versioned_and_audited(platform: ExperimentPlatform) -> None:
    e = platform.create(_exp(), ADMIN, percent=20)
    assert (e.status, e.version, e.ranges) == ("draft", 1, [(0, 200)])
    e = platform.start(e.id, ADMIN)
    assert (e.status, e.version) == ("running", 2)
    e = platform.set_traffic(e.id, ADMIN, percent=50)
    assert (e.version, e.size) == (3, 500)
    e = platform.stop(e.id, ADMIN)
    assert (e.status, e.version) == ("stopped", 4)
    trail = platform.audit(e.id)
    assert [a.action for a in trail] == ["stop", "traffic", "start", "create"]
    assert [a.version for a in trail] == [4, 3, 2, 1]
    assert trail[1].before is not None and trail[1].after is not None
    assert (trail[1].before["ranges"], trail[1].after["ranges"]) == ([[0, 200]], [[0, 500]])
    assert all(a.actor == ADMIN for a in trail)


@pytest.mark.parametrize(("body", "field", "message"), [
    (_exp(b="r_nope"), "variants[1].stage_id", "unknown recall id 'r_nope'"),
    (_exp(layer="rank", a="rk_rule", b="r_rrf"), "variants[1].stage_id", "unknown rank id"),
    ({**_exp(), "control": "baseline"}, "control", "no variant named 'baseline'"),
    ({**_exp(), "variants": [{"name": "control", "stage_id": "r_default"}]}, "variants",
     "at least one other variant"),
    (_exp(layer="ranking"), "layer", "unknown layer 'ranking'"),
    ({**_exp(), "ranges": [[900, 1200]]}, "ranges", "outside layer 'recall'"),
    (_exp(layer="rank", a="rk_rule", b="rk_rule",
          variants=[{"name": "control", "stage_id": "rk_rule"},
                    {"name": "t", "stage_id": "rk_rule", "params": {"ranker": "nope"}}]),
     "variants[1].params", "ranker"),
    (_exp(whitelist={"u1": "nope"}), "whitelist.u1", "unknown variant"),
])
def test_bad_experiments_are_rejected_naming_the_field(
        platform: ExperimentPlatform, body: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ExperimentError, match=message) as err:
        platform.create(body, ADMIN, percent=None if body.get("ranges") else 10)
    assert err.value.field == field
    assert platform.config.experiments == {}  # nothing stored
    assert platform.audit() == []


def test_overlapping_ranges_are_rejected_unless_scenes_differ(
        platform: ExperimentPlatform) -> None:
    first = platform.create(_exp(ranges=[[0, 600]]), ADMIN)
    with pytest.raises(ExperimentError, match=rf"overlaps experiment {first.id}") as err:
        platform.create(_exp(ranges=[[500, 700]], scenes=["feed"]), ADMIN)
    assert err.value.field == "ranges"
    other = platform.create(_exp(ranges=[[500, 700]], scenes=["search_fallback"],
                                 variants=[{"name": "control", "stage_id": "r_search"},
                                           {"name": "t", "stage_id": "r_default"}]), ADMIN)
    assert other.ranges == [(500, 700)]
    with pytest.raises(ExperimentError, match="only 40% free"):
        platform.create(_exp(), ADMIN, percent=50)
    platform.stop(first.id, ADMIN)  # a stopped experiment frees its buckets
    assert platform.create(_exp(), ADMIN, percent=50).ranges == [(0, 500)]


def test_a_change_made_elsewhere_is_picked_up_and_survives_restarts(
        metadata_url: str, strategies: StrategyFile) -> None:
    serving = ExperimentPlatform(SqlExperimentStore(metadata_url), strategies)
    admin = ExperimentPlatform(SqlExperimentStore(metadata_url), strategies)
    e = admin.create(_exp(status="running"), ADMIN, percent=100)
    units = [f"u{i}" for i in range(300)]
    assert {serving.assign(_req(u)).recall for u in units} == {"r_default"}
    assert serving.refresh() is True and serving.refresh() is False
    before = [serving.assign(_req(u)) for u in units]
    assert {s.recall for s in before} == {"r_default", "r_rrf"}
    assert all(s.experiments[0].experiment == e.id for s in before)
    for p in (serving, admin):
        p.store.close()
    restarted = ExperimentPlatform(SqlExperimentStore(metadata_url), strategies)
    assert [restarted.assign(_req(u)) for u in units] == before
    restarted.store.close()


def test_variant_follows_the_weights_and_stays_put_when_traffic_grows(
        platform: ExperimentPlatform) -> None:
    e = platform.create(_exp(status="running", variants=[
        {"name": "control", "stage_id": "r_default", "weight": 3},
        {"name": "treatment", "stage_id": "r_rrf", "weight": 1}]), ADMIN, percent=30)
    units = [f"user-{i}" for i in range(20_000)]
    first = {u: platform.assign(_req(u)).recall for u in units}
    in_exp = [u for u in units if platform.assign(_req(u)).experiments]
    assert abs(len(in_exp) / len(units) - 0.30) < 0.015
    share = np.mean([first[u] == "r_rrf" for u in in_exp])
    assert abs(share - 0.25) < 0.02
    platform.set_traffic(e.id, ADMIN, percent=60)
    assert all(platform.assign(_req(u)).recall == first[u] for u in in_exp)
    grown = sum(bool(platform.assign(_req(u)).experiments) for u in units)
    assert abs(grown / len(units) - 0.60) < 0.015


def test_layers_are_orthogonal(platform: ExperimentPlatform) -> None:
    """Chi-square test of independence between two layers' variants over many units."""
    platform.create(_exp(status="running"), ADMIN, percent=100)
    platform.create(_exp(layer="rank", a="rk_rule", b="rk_ctr", status="running",
                         variants=[{"name": "control", "stage_id": "rk_rule"},
                                   {"name": "b", "stage_id": "rk_ctr"},
                                   {"name": "c", "stage_id": "rk_ctr_cvr"}]), ADMIN,
                    percent=100)
    table = np.zeros((2, 3))
    recall = {"r_default": 0, "r_rrf": 1}
    rank = {"rk_rule": 0, "rk_ctr": 1, "rk_ctr_cvr": 2}
    for i in range(30_000):
        ids = platform.assign(_req(f"unit-{i}"))
        table[recall[ids.recall], rank[ids.rank]] += 1
    assert table.min() > 4000
    assert stats.chi2_contingency(table).pvalue > 0.01


def test_a_layer_hashed_like_another_is_not_orthogonal_to_it(
        platform: ExperimentPlatform) -> None:
    """The orthogonality test can fail: give the rank layer the recall layer's salt and the
    two layers' assignments become one."""
    platform.put_layer({"name": "rank", "stage": "rank", "salt": "recall"}, ADMIN)
    platform.create(_exp(status="running"), ADMIN, percent=50)
    platform.create(_exp(layer="rank", a="rk_rule", b="rk_ctr", status="running"), ADMIN,
                    percent=50)
    both = [platform.assign(_req(f"unit-{i}")) for i in range(5000)]
    in_recall = np.array([any(t.layer == "recall" for t in s.experiments) for s in both])
    in_rank = np.array([any(t.layer == "rank" for t in s.experiments) for s in both])
    assert (in_recall == in_rank).all()


def test_domains_keep_changes_apart(platform: ExperimentPlatform) -> None:
    platform.put_domain({"name": "search_rewrite", "ranges": [[0, 200]]}, ADMIN)
    platform.put_layer({"name": "sr_recall", "stage": "recall", "domain": "search_rewrite"},
                       ADMIN)
    with pytest.raises(ExperimentError, match="both set the recall id"):
        platform.put_layer({"name": "sr_recall2", "stage": "recall",
                            "domain": "search_rewrite"}, ADMIN)
    platform.create(_exp(status="running"), ADMIN, percent=100)
    platform.create(_exp(layer="sr_recall", status="running"), ADMIN, percent=100)
    layers = [{t.layer for t in platform.assign(_req(f"u{i}")).experiments}
              for i in range(5000)]
    assert not any({"recall", "sr_recall"} <= s for s in layers)  # never meet
    share = np.mean(["sr_recall" in s for s in layers])
    assert abs(share - 0.2) < 0.02
    with pytest.raises(ExperimentError, match="live experiments"):
        platform.put_domain({"name": "search_rewrite", "ranges": [[0, 300]]}, ADMIN)


def test_whitelist_forces_a_variant_and_is_tagged(platform: ExperimentPlatform) -> None:
    platform.create(_exp(status="running", ranges=[[0, 1]],
                         whitelist={"qa-tester": "treatment"}), ADMIN)
    ids = platform.assign(_req("qa-tester"))
    assert ids.recall == "r_rrf"
    assert [t.tag for t in ids.experiments] == [f"{ids.experiments[0].experiment}:treatment!"]
    assert platform.assign(_req("qa-tester", Scene.SEARCH_FALLBACK)).experiments == ()


def test_a_whitelisted_tester_reaches_an_experiment_in_another_domain(
        platform: ExperimentPlatform) -> None:
    platform.put_domain({"name": "other", "ranges": [[0, 100]]}, ADMIN)
    platform.put_layer({"name": "o_recall", "stage": "recall", "domain": "other"}, ADMIN)
    tester = next(f"qa{i}" for i in range(1000)
                  if platform.assigner.domain(f"qa{i}") == "default")
    e = platform.create(_exp(layer="o_recall", status="running",
                             whitelist={tester: "treatment"}), ADMIN, percent=100)
    ids = platform.assign(_req(tester))
    assert ids.recall == "r_rrf" and [t.tag for t in ids.experiments] == [f"{e.id}:treatment!"]
    # one tester, two experiments of a layer on different scenes: each forces its own
    other = platform.create(_exp(layer="o_recall", status="running", scenes=["search_fallback"],
                                 whitelist={tester: "control"}, variants=[
                                     {"name": "control", "stage_id": "r_search"},
                                     {"name": "treatment", "stage_id": "r_default"}]),
                            ADMIN, percent=100)
    search = platform.assign(_req(tester, Scene.SEARCH_FALLBACK))
    assert [t.tag for t in search.experiments] == [f"{other.id}:control!"]
    assert platform.assign(_req(tester)).recall == "r_rrf"


def test_a_stopped_experiment_naming_a_dropped_id_does_not_block_changes(
        metadata_url: str, strategies: StrategyFile) -> None:
    first = ExperimentPlatform(SqlExperimentStore(metadata_url), strategies)
    e = first.create(_exp(status="running"), ADMIN, percent=10)
    first.stop(e.id, ADMIN)
    first.store.close()
    trimmed = strategies.model_copy(update={"recall": {
        k: v for k, v in strategies.recall.items() if k != "r_rrf"}})
    later = ExperimentPlatform(SqlExperimentStore(metadata_url), trimmed)
    assert later.get(e.id).status == "stopped"
    made = later.create(_exp(b="r_search", status="running"), ADMIN, percent=10)
    assert later.get(made.id).status == "running"
    with pytest.raises(ExperimentError, match="unknown recall id 'r_rrf'"):
        later.start(e.id, ADMIN)
    later.store.close()


def test_running_needs_traffic(platform: ExperimentPlatform) -> None:
    with pytest.raises(ExperimentError, match="set traffic") as err:
        platform.create(_exp(status="running"), ADMIN)
    assert err.value.field == "ranges"


def test_launch_rolls_a_winner_out_to_every_domain(platform: ExperimentPlatform) -> None:
    platform.put_domain({"name": "other", "ranges": [[0, 500]]}, ADMIN)
    e = platform.create(_exp(status="running"), ADMIN, percent=10)
    launch = platform.launch(e.id, "treatment", ADMIN, percent=100)
    assert platform.get(e.id).status == "stopped"
    assert (launch.layer, launch.stage, launch.status) == ("launch", "recall", "running")
    served = {platform.assign(_req(f"u{i}")).recall for i in range(500)}
    assert served == {"r_rrf"}
    assert platform.assign(_req("u1", Scene.DETAIL_RELATED)).recall == "r_related"
    # a later experiment in the recall layer still overrides the launched default
    platform.create(_exp(status="running", variants=[
        {"name": "control", "stage_id": "r_rrf"},
        {"name": "treatment", "stage_id": "r_default"}]), ADMIN, percent=100)
    assert "r_default" in {platform.assign(_req(f"u{i}")).recall for i in range(200)}
    explained = platform.assigner.explain("u7", Scene.FEED)
    assert explained["launch"].experiment == launch.id


def test_variant_params_serve_a_derived_strategy(platform: ExperimentPlatform,
                                                 strategies: StrategyFile) -> None:
    made: list[tuple[str, str]] = []
    platform._on_derived = lambda stage, sid, s: made.append((stage, sid))
    e = platform.create(_exp(layer="rank", status="running", variants=[
        {"name": "control", "stage_id": "rk_rule"},
        {"name": "fresh", "stage_id": "rk_rule",
         "params": {"params": {"freshness_half_life_h": 12}}}]), ADMIN, percent=100)
    assert made == [("rank", f"rk_rule@{e.id}.fresh")]
    served = {platform.assign(_req(f"u{i}")).rank for i in range(200)}
    assert served == {"rk_rule", f"rk_rule@{e.id}.fresh"}


def test_ranges_and_percent_together_are_refused(platform: ExperimentPlatform) -> None:
    with pytest.raises(ExperimentError, match="either ranges or percent"):
        platform.create(_exp(ranges=[[0, 10]]), ADMIN, percent=10)


def test_only_a_draft_that_never_ran_can_be_deleted(platform: ExperimentPlatform) -> None:
    draft = platform.create(_exp(), ADMIN, percent=10)
    ran = platform.create(_exp(scenes=["detail_related"], status="running", variants=[
        {"name": "control", "stage_id": "r_related"},
        {"name": "t", "stage_id": "r_default"}]), ADMIN, percent=10)
    platform.stop(ran.id, ADMIN)
    with pytest.raises(ExperimentError, match="never ran") as err:
        platform.delete(ran.id, ADMIN)
    assert err.value.status == 409
    platform.delete(draft.id, ADMIN)
    assert set(platform.config.experiments) == {ran.id}
    with pytest.raises(ExperimentError, match="built-in"):
        platform.delete_layer("recall", ADMIN)


def test_demo_experiments_run_in_the_recall_and_rank_layers_once(
        platform: ExperimentPlatform) -> None:
    from tuijian.experiments.demo import seed_demo

    made = seed_demo(platform)
    assert {(e.layer, e.status, e.size) for e in made} == {("recall", "running", 1000),
                                                           ("rank", "running", 1000)}
    served = {(s.recall, s.rank) for s in (platform.assign(_req(f"u{i}")) for i in range(400))}
    assert {r for r, _ in served} == {"r_default", "r_rrf"}
    assert {k for _, k in served} == {"rk_rule", "rk_ctr_cvr"}
    assert seed_demo(platform) == []  # a second `make run` leaves them alone
