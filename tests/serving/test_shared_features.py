"""Replicas sharing their feature centers through Redis (`features_url`): the first seeds it,
the next mirrors it; writes anywhere reach every replica; a dead Redis degrades answers
instead of failing them, and service recovers when it returns."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from tuijian.config import Settings
from tuijian.data.stream import decode
from tuijian.recall.cf import KeyedLists
from tuijian.serving.api import create_app
from tuijian.serving.service import Service

from ..conftest import ADMIN, NOW, PrivateRedis

NEW_ITEM = {"item_id": 987654321, "line": 0, "category": 3, "city": 1, "district": 2,
            "title": "brand new flat by the river", "price": 4200.0}

API_ITEM = {"item_id": 5_000_000, "line": "house_rent", "category": "whole_rent",
            "city": "Xiamen", "district": "Siming", "title": "Brand new seaside flat"}


def _replica(generated: Path, root: Path, url: str) -> Service:
    data = root / "data"
    shutil.copytree(generated, data / "generated")
    return Service(Settings(data_dir=data, features_url=url), now=NOW)


@pytest.fixture
def pair(generated: Path, tmp_path: Path, redis_url: str) -> Iterator[tuple[Service, Service]]:
    a = _replica(generated, tmp_path / "a", redis_url)
    b = _replica(generated, tmp_path / "b", redis_url)
    yield a, b
    a.close()
    b.close()


def test_the_first_replica_seeds_and_the_next_mirrors(pair: tuple[Service, Service]) -> None:
    a, b = pair
    assert a.shared is not None and b.shared is not None
    assert a.shared.seeded and not b.shared.seeded
    assert len(a.store) == len(b.store) > 0
    for col in ("item_id", "price", "title", "content_key", "clicks", "exposures"):
        assert np.array_equal(a.store.column(col), b.store.column(col)), col
    assert a.profiles.table.keys() == b.profiles.table.keys()


def test_an_upsert_on_one_replica_reaches_the_other(pair: tuple[Service, Service]) -> None:
    a, b = pair
    assert a.upsert_items([NEW_ITEM]) == 1
    idx = a.store.position(NEW_ITEM["item_id"])
    assert idx == len(a.store) - 1  # visible to the writer at once
    assert b.store.position(NEW_ITEM["item_id"]) == -1
    assert b.sync_features() == 1
    assert b.store.position(NEW_ITEM["item_id"]) == idx
    assert b.store.record(idx)["title"] == NEW_ITEM["title"]
    fresh = b.catalog.index.fresh_by_city[NEW_ITEM["city"]]
    assert idx in fresh.tolist() and b.catalog.index.hot[idx] > 0  # recallable there too
    a.upsert_items([{**NEW_ITEM, "price": 3900.0}])  # a change to an existing row
    b.sync_features()
    assert b.store.record(idx)["price"] == 3900.0


def test_counters_and_profiles_written_by_one_are_read_by_the_other(
        pair: tuple[Service, Service]) -> None:
    a, b = pair
    with TestClient(create_app(a, rebuild=False)) as client:
        r = client.post("/v1/recommend", json={"scene": "guess_you_like", "user_id": "u7",
                                               "n": 5})
        assert r.status_code == 200, r.text
        shown = [a.store.position(int(i["item_id"])) for i in r.json()["items"]]
        before = b.store.local.column("exposures")[shown].copy()  # type: ignore[attr-defined]
        clicks = [{"event_id": f"c{p}", "type": "click", "user_id": "u7", "ts": NOW + p,
                   "item_id": item["item_id"], "tracking": item["tracking"]}
                  for p, item in enumerate(r.json()["items"][:2])]
        ingested = client.post("/v1/events", json={"events": clicks})
        assert ingested.status_code == 200, ingested.text
    a.shared.flush()  # type: ignore[union-attr]  # the write-behind's pending increments
    stale = b.store.gather(np.array(shown), ("exposures", "clicks"))
    assert (stale["exposures"] == before).all()  # not announced to b yet
    b.sync_features()  # what b's features loop runs every second
    live = b.store.gather(np.array(shown), ("exposures", "clicks"))
    assert (live["exposures"] == before + 1).all()
    assert live["clicks"][:2].tolist() == [1.0, 1.0]
    profile = b.profiles.get("u7")
    assert set(shown) <= set(profile.shown)
    assert list(profile.recent_clicks) == shown[:2] and profile.n_clicked == 2
    neighbors = b.catalog.models["item_cf_realtime"].neighbors(shown[0])  # type: ignore[attr-defined]
    assert neighbors[0].tolist() == [shown[1]]  # co-clicked, learnt by a, recalled by b


def test_a_dead_redis_degrades_answers_and_service_recovers(
        generated: Path, tmp_path: Path, private_redis: PrivateRedis) -> None:
    svc = _replica(generated, tmp_path, private_redis.url)
    body = {"scene": "guess_you_like", "user_id": "u3", "n": 8}
    try:
        with TestClient(create_app(svc, rebuild=False)) as client:
            assert client.get("/readyz").status_code == 200
            private_redis.stop()
            for _ in range(3):
                r = client.post("/v1/recommend", json=body)
                assert r.status_code == 200, r.text
                assert len(r.json()["items"]) == 8 and "features" in r.json()["degraded"]
            ready = client.get("/readyz")  # still in the balancer: it serves, degraded
            assert ready.status_code == 200
            assert ready.json() == {"status": "degraded", "down": ["features"]}
            refused = client.put("/v1/items", json={"items": [API_ITEM]},
                                 headers=ADMIN)
            assert refused.status_code == 503, refused.text
            assert refused.json()["detail"][0]["field"] == "features"
            private_redis.start()
            deadline = time.monotonic() + 5
            while "features" in client.post("/v1/recommend", json=body).json()["degraded"]:
                assert time.monotonic() < deadline, "no recovery within 5 s"
                time.sleep(0.1)
            assert client.get("/readyz").json() == {"status": "ready", "down": []}
            ok = client.put("/v1/items", json={"items": [API_ITEM]},
                            headers=ADMIN)
            assert ok.status_code == 200, ok.text
    finally:
        svc.close()


def test_events_during_a_stream_outage_are_spooled_then_forwarded(
        data_dir: Path, private_redis: PrivateRedis) -> None:
    svc = Service(Settings(data_dir=data_dir, stream_url=private_redis.url), now=NOW)
    stream = svc.event_stream
    assert stream is not None
    events = [{"event_id": f"e{j}", "type": "click", "user_id": "u1", "item_id": 1, "ts": NOW}
              for j in range(3)]
    try:
        with TestClient(create_app(svc, rebuild=False, consume=False)) as client:
            private_redis.stop()
            r = client.post("/v1/events", json={"events": events})
            assert r.status_code == 200, r.text  # held durably by the spool, not refused
            assert [x["event_id"] for x in r.json()["results"]] == ["e0", "e1", "e2"]
            assert stream.spool.pending() == 1 and stream.forward() == 0  # still down
            assert client.get("/readyz").json()["down"] == ["stream"]
            private_redis.start()
            assert stream.forward() == 3 and stream.spool.pending() == 0
            got = stream.read(10, 0.1)
            assert sorted(decode(d.payload)[0].event_id for d in got) == ["e0", "e1", "e2"]
    finally:
        svc.close()


def test_batch_lists_published_by_one_are_recalled_by_the_other(
        pair: tuple[Service, Service]) -> None:
    a, b = pair
    ids = a.store.column("item_id")[:6].tolist()
    a.artifacts.write("item_cf", {"neighbors": pa.table({
        "item_id": [ids[0], ids[0], ids[1]], "neighbor_id": [ids[2], ids[3], ids[4]],
        "score": [0.9, 0.5, 0.7]})}, {})
    a.artifacts.write("user_cf", {"recommendations": pa.table({
        "user_id": ["u5", "u5"], "item_id": [ids[5], ids[4]], "score": [0.3, 0.8]})}, {})
    assert {"item_cf", "user_cf"} <= set(a.reload_models())  # loaded from files, published
    assert {"item_cf", "user_cf"} <= set(b.reload_models())  # followed from Redis
    assert b.model_versions["item_cf"] == a.model_versions["item_cf"]
    assert a.shared is not None  # a version already published is not written again
    assert a.shared.publish_lists("item_cf", a.model_versions["item_cf"],
                                  a.catalog.models["item_cf"]) == 0  # type: ignore[arg-type]
    table = b.catalog.models["item_cf"]
    got = table.neighbors(0)  # type: ignore[attr-defined]
    assert got[0].tolist() == [2, 3] and got[1].tolist() == [0.9, 0.5]
    assert table.neighbors(2)[0].size == 0  # type: ignore[attr-defined]
    lists = b.catalog.models["user_cf"]
    assert isinstance(lists, KeyedLists)  # what the user-CF source reads
    idx, score = lists.get("u5")
    assert idx.tolist() == [4, 5] and score.tolist() == [0.8, 0.3]
    assert lists.get("nobody")[0].size == 0
    assert b.reload_models() == []  # nothing new: no re-attach on every poll
