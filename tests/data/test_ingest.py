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


async def test_a_replayed_param_is_logged_but_counted_once(service: Service) -> None:
    rec = await service.pipeline.recommend(RecommendRequest(Scene.FEED, "u4", 3, NOW))
    item = rec.items[0]
    idx = service.store.position(item["item_id"])
    before = service.store.column("clicks")[idx]
    replay = [Event(f"r{j}", "click", "u4", item["item_id"], NOW, item["tracking"])
              for j in range(50)]
    res = await service.ingest(replay)
    assert {r.status for r in res} == {"accepted"}
    assert service.store.column("clicks")[idx] == before + 1
    assert len(service.profiles.get("u4").recent_clicks) == 1
    other_user = await service.ingest(
        [Event("r-bot", "click", "bot", item["item_id"], NOW, item["tracking"])])
    assert other_user[0].status == "quarantined" and other_user[0].code == "user_mismatch"


def test_a_failed_exposure_write_keeps_the_rows_and_the_writer(
        service: Service, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from tuijian.domain import Event as Ev

    rows = [Ev(f"x{j}", "exposure", "u1", 1, NOW) for j in range(5)]
    real_append = service.log.append

    def broken(events):  # type: ignore[no-untyped-def]
        raise OSError("disk full")

    monkeypatch.setattr(service.log, "append", broken)
    service.exposures.write(rows)
    with pytest.raises(OSError):
        service.exposures.flush()
    assert service.exposures.pending() == 5 and service.exposures.failures >= 1
    assert service.exposures._thread.is_alive()
    monkeypatch.setattr(service.log, "append", real_append)
    service.exposures.flush()
    assert service.exposures.pending() == 0 and len(service.log) == 5
