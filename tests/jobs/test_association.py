"""Association job → versioned artifact → service reload → association recall."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tuijian.data.eventlog import EventLog
from tuijian.data.vocab import CITY_NAMES
from tuijian.domain import Event, RecommendRequest, Scene
from tuijian.jobs.association import AssociationJob
from tuijian.jobs.base import JobContext
from tuijian.jobs.engine import DuckDBEngine
from tuijian.recall.association import AssociationSource
from tuijian.recall.base import RecallContext
from tuijian.serving.service import Service

from ..conftest import NOW

DAY = 86_400.0


def _clicks(log: EventLog, rows: list[tuple[str, int, float]]) -> None:
    log.append([Event(f"e{j}", "click", u, item, ts, exposure_id=f"x{j}")
                for j, (u, item, ts) in enumerate(rows)])


def test_co_clicks_within_sessions_with_time_decay(tmp_path: Path) -> None:
    with EventLog(tmp_path / "events") as log:
        _clicks(log, [
            # recent: two users co-click 1 & 2 in a session; 1 & 3 co-clicked long ago
            ("a", 1, NOW - 100), ("a", 2, NOW - 50), ("b", 1, NOW - 300), ("b", 2, NOW - 200),
            ("c", 1, NOW - 20 * DAY), ("c", 3, NOW - 20 * DAY + 60),
            ("d", 1, NOW - 20 * DAY), ("d", 3, NOW - 20 * DAY + 60),
            # sessions split by the gap: 4 then 5 three days apart is no co-click
            ("e", 4, NOW - 4 * DAY), ("e", 5, NOW - DAY),
        ])
    ctx = JobContext(tmp_path, DuckDBEngine.over_log(tmp_path / "events"), NOW,
                     params={"min_support": 0.01})
    artifact = AssociationJob().run(ctx)
    t = artifact.table("neighbors").to_pylist()
    pairs = {(r["item_id"], r["neighbor_id"]): r for r in t}
    assert (1, 2) in pairs and (2, 1) in pairs and (1, 3) in pairs
    assert pairs[(1, 2)]["support"] > 3 * pairs[(1, 3)]["support"]  # decayed: 20 days old
    assert (4, 5) not in pairs
    assert artifact.meta()["pairs"] == len(t)
    assert ctx.artifacts.current("association") == artifact


async def test_service_reloads_published_versions_and_recalls_from_them(
        service: Service) -> None:
    data = service.settings.data_dir
    ids = service.store.column("item_id")
    a, b, c = (int(ids[i]) for i in (10, 11, 12))
    with EventLog(data / "jobtmp") as log:  # a separate log: the service owns its own
        _clicks(log, [("x", a, NOW - 60), ("x", b, NOW - 30), ("y", a, NOW - 90),
                      ("y", b, NOW - 80), ("y", c, NOW - 70)])
    ctx = JobContext(data, DuckDBEngine.over_log(data / "jobtmp"), NOW,
                     params={"min_support": 0.01})
    AssociationJob().run(ctx)
    assert service.reload_models() == ["association"]
    assert service.reload_models() == []  # same version: nothing to do
    prof = service.profiles.get("fan")
    prof.recent_clicks.append(10)
    req = RecommendRequest(Scene.GUESS_YOU_LIKE, "fan", 10, NOW)
    got, scores = await AssociationSource(service.catalog, {}).recall(
        RecallContext(req, prof, -1, None, None), 10)
    assert got[0] == 11 and set(got.tolist()) == {11, 12}
    assert np.all(np.diff(scores) <= 0)
    second = AssociationJob().run(ctx)
    assert service.reload_models() == ["association"]
    assert service.model_versions["association"] == second.version


async def test_realtime_item_cf_has_neighbours_a_moment_after_the_clicks(
        service: Service) -> None:
    rec = await service.pipeline.recommend(RecommendRequest(Scene.FEED, "u5", 5, NOW))
    first, second = rec.items[0], rec.items[1]
    await service.ingest([
        Event("rt1", "click", "u5", first["item_id"], NOW, first["tracking"]),
        Event("rt2", "click", "u5", second["item_id"], NOW + 5, second["tracking"]),
    ])
    i1, i2 = (service.store.position(x["item_id"]) for x in (first, second))
    n, s = service.item_cf_realtime.neighbors(i1)
    assert n.tolist() == [i2] and s[0] > 0
    # another user who clicks the first item now gets the second from real-time item-CF
    other = service.profiles.get("u6")
    other.recent_clicks.append(i1)
    city = CITY_NAMES[int(service.store.column("city")[i2])]
    rec2 = await service.pipeline.recommend(RecommendRequest(Scene.GUESS_YOU_LIKE, "u6", 300,
                                                             NOW, city=city))
    hits = [it for it in rec2.items if it["item_id"] == second["item_id"]]
    assert hits and "item_cf_realtime" in hits[0]["sources"]


def test_realtime_co_clicks_fade_with_time() -> None:
    from tuijian.recall.item_cf_realtime import RealtimeItemCF

    cf = RealtimeItemCF(half_life_s=DAY)
    cf.observe_click("b", 1, NOW - 5 * DAY)
    cf.observe_click("b", 3, NOW - 5 * DAY + 10)  # 1 and 3 co-clicked five days ago
    cf.observe_click("a", 1, NOW)
    cf.observe_click("a", 2, NOW + 10)  # 1 and 2 co-clicked today
    ids, scores = cf.neighbors(1)
    assert ids.tolist()[0] == 2 and scores[0] > 4 * scores[1]
