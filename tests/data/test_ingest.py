"""Ingestion: real-time folds happen once per accepted event, never for rejected ones."""

from __future__ import annotations

from tuijian.domain import Event, RecommendRequest, Scene
from tuijian.serving.service import Service

from ..conftest import NOW


async def test_click_folds_into_counters_and_interests_once(service: Service) -> None:
    rec = await service.pipeline.recommend(RecommendRequest(Scene.FEED, "u9", 5, NOW))
    item = rec.items[2]
    idx = service.store.position(item["item_id"])
    before = service.store.column("clicks")[idx]
    click = Event("e1", "click", "u9", item["item_id"], NOW, item["tracking"])
    first = await service.ingest([click])
    again = await service.ingest([Event("e1", "click", "u9", item["item_id"], NOW,
                                        item["tracking"])])
    assert [r.status for r in first + again] == ["accepted", "duplicate"]
    assert service.store.column("clicks")[idx] == before + 1
    prof = service.profiles.get("u9")
    assert list(prof.recent_clicks) == [idx]
    assert prof.top_interest("line") == int(service.store.column("line")[idx])
    stored = service.log.scan(types=["click"])
    assert stored.column("exposure_id").to_pylist() == [rec.exposure_id]
    assert stored.column("position").to_pylist() == [2]
    assert stored.column("scene").to_pylist() == ["feed"]


async def test_list_param_accepts_client_exposures_of_listed_items_only(
        service: Service) -> None:
    rec = await service.pipeline.recommend(RecommendRequest(Scene.FEED, "u9", 3, NOW))
    listed = rec.items[0]["item_id"]
    res = await service.ingest([
        Event("x1", "exposure", "u9", listed, NOW, rec.tracking),
        Event("x2", "exposure", "u9", 123_456_789, NOW, rec.tracking),
    ])
    assert [r.status for r in res] == ["accepted", "quarantined"]
    assert res[1].reason is not None and "not in the tracked list" in res[1].reason


async def test_server_exposures_reach_the_log_on_flush(service: Service) -> None:
    rec = await service.pipeline.recommend(RecommendRequest(Scene.GUESS_YOU_LIKE, "u3", 7,
                                                            NOW))
    service.exposures.flush()
    rows = service.log.scan(types=["exposure"])
    assert rows.num_rows == 7
    assert set(rows.column("exposure_id").to_pylist()) == {rec.exposure_id}
    assert sorted(rows.column("position").to_pylist()) == list(range(7))
    assert all(service.codec.decode(t).exposure_id == rec.exposure_id
               for t in rows.column("tracking").to_pylist())
