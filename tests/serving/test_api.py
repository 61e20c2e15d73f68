"""End to end over HTTP (in process): recommend → events → join → labelled sample."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import duckdb
import pytest
from fastapi.testclient import TestClient

from tuijian.jobs.engine import DuckDBEngine
from tuijian.jobs.join import join
from tuijian.serving.api import create_app
from tuijian.serving.service import Service

from ..conftest import ADMIN


@pytest.fixture
def client(service: Service) -> Iterator[TestClient]:
    with TestClient(create_app(service, rebuild=False)) as c:
        yield c


def _recommend(client: TestClient, **body: Any) -> dict[str, Any]:
    body.setdefault("scene", "guess_you_like")
    body.setdefault("user_id", "u1")
    r = client.post("/v1/recommend", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_recommend_click_convert_join_finds_the_labelled_sample(
        client: TestClient, service: Service) -> None:
    rec = _recommend(client, n=10)
    assert len(rec["items"]) == 10
    assert rec["stage_ids"] == {"recall": "r_default", "rank": "rk_ctr_cvr",
                                "rule": "ru_default", "display": "d_card"}
    item = rec["items"][3]
    events = [
        {"event_id": "c1", "type": "click", "user_id": "u1", "item_id": item["item_id"],
         "tracking": item["tracking"]},
        {"event_id": "v1", "type": "convert", "subtype": "call", "user_id": "u1",
         "item_id": item["item_id"], "tracking": item["tracking"]},
        {"event_id": "d1", "type": "dwell", "dwell_s": 42.5, "user_id": "u1",
         "item_id": item["item_id"], "tracking": item["tracking"]},
    ]
    r = client.post("/v1/events", json={"events": events})
    assert r.status_code == 200
    assert [x["status"] for x in r.json()["results"]] == ["accepted"] * 3
    profile = client.get("/v1/users/u1").json()
    assert profile["recent_clicks"] == [item["item_id"]] and profile["known"]
    assert profile["interests"]["line"][0]["value"] == item["line"]
    again = client.post("/v1/events", json={"events": events[:1]}).json()["results"]
    assert again[0]["status"] == "duplicate"
    service.exposures.flush()
    out = join(DuckDBEngine.over_log(service.log.root), service.settings.data_dir / "samples")
    assert out["samples"] == 10 and out["unmatched_clicks"] == 0
    rows = duckdb.sql(
        f"SELECT position, click, convert, convert_call, dwell_s, recall_id, source "
        f"FROM '{out['path']}' WHERE exposure_id = '{rec['exposure_id']}' "
        f"AND item_id = {item['item_id']}").fetchall()
    assert rows == [(3, 1, 1, 1, 42.5, "r_default", item["source"])]
    others = duckdb.sql(f"SELECT sum(click) FROM '{out['path']}'").fetchall()
    assert others == [(1,)]
    scene = {f["value"]: f for f in out["funnel"]["scene"]}["guess_you_like"]
    assert scene["exposures"] == 10 and scene["clicks"] == 1 and scene["conversions"] == 1


def test_forged_missing_and_mismatched_params_are_quarantined(
        client: TestClient, service: Service) -> None:
    rec = _recommend(client, n=5)
    good = rec["items"][0]
    forged = good["tracking"][:-4] + ("AAAA" if not good["tracking"].endswith("AAAA")
                                      else "BBBB")
    other = rec["items"][1]["item_id"]
    events = [
        {"event_id": "f1", "type": "click", "user_id": "u1", "item_id": good["item_id"],
         "tracking": forged},
        {"event_id": "f2", "type": "click", "user_id": "u1", "item_id": good["item_id"]},
        {"event_id": "f3", "type": "click", "user_id": "u1", "item_id": other,
         "tracking": good["tracking"]},
        {"event_id": "ok", "type": "click", "user_id": "u1", "item_id": good["item_id"],
         "tracking": good["tracking"]},
    ]
    res = client.post("/v1/events", json={"events": events}).json()["results"]
    assert [x["status"] for x in res] == ["quarantined"] * 3 + ["accepted"]
    assert "signature" in res[0]["reason"] and "missing" in res[1]["reason"]
    assert "does not match" in res[2]["reason"]
    q = service.log.quarantined()
    assert sorted(q.column("event_id").to_pylist()) == ["f1", "f2", "f3"]
    assert service.log.quarantine_count() == 3
    metrics = client.get("/metrics").text
    assert 'tuijian_events_total{status="quarantined",type="click"} 3.0' in metrics


@pytest.mark.parametrize(("body", "field"), [
    ({"scene": "nope", "user_id": "u1"}, "scene"),
    ({"scene": "feed", "user_id": "u1", "n": 0}, "n"),
    ({"scene": "feed", "user_id": "u1", "n": 10_000}, "n"),
    ({"scene": "feed", "user_id": "u1", "n": "many"}, "n"),
    ({"scene": "feed", "user_id": "u1", "n": True}, "n"),
    ({"scene": "feed"}, "body"),
    ({"scene": "feed", "user_id": "u1", "context": {"lat": 95, "lon": 1}}, "context.lat"),
    ({"scene": "feed", "user_id": "u1", "context": {"lat": 30}}, "context"),
    ({"scene": "feed", "user_id": "u1", "context": {"city": "Atlantis"}}, "context.city"),
    ({"scene": "detail_related", "user_id": "u1"}, "body"),
    ({"scene": "search_fallback", "user_id": "u1",
      "context": {"filters": {"price_min": 5, "price_max": 1}}}, "context.filters"),
    ({"scene": "feed", "user_id": "u1", "surprise": 1}, "surprise"),
])
def test_bad_recommend_input_gets_422_naming_the_field(
        client: TestClient, body: dict[str, Any], field: str) -> None:
    r = client.post("/v1/recommend", json=body)
    assert r.status_code == 422, r.text
    fields = [d["field"] for d in r.json()["detail"]]
    assert any(f.startswith(field) for f in fields), fields


def test_bad_events_get_422_and_nothing_is_logged(client: TestClient, service: Service) -> None:
    ev = {"event_id": "x", "type": "click", "user_id": "u1", "item_id": 1, "tracking": "t"}
    for events, field in [
        ([{**ev, "type": "purchase"}], "events.0.type"),
        ([{**ev, "item_id": "one"}], "events.0.item_id"),
        ([{**ev, "type": "convert"}], "events.0"),
        ([{**ev, "type": "dwell", "dwell_s": -1}], "events.0.dwell_s"),
        ([ev] * 1001, "events"),
        ([], "events"),
    ]:
        r = client.post("/v1/events", json={"events": events})
        assert r.status_code == 422
        assert any(d["field"].startswith(field) for d in r.json()["detail"])
    assert len(service.log) == 0


def test_unknown_user_gets_a_cold_start_list_and_unknown_item_404(client: TestClient) -> None:
    rec = _recommend(client, user_id=None, device_id="brand-new-device", n=8)
    assert len(rec["items"]) == 8
    r = client.post("/v1/recommend", json={"scene": "detail_related", "user_id": "u1",
                                           "context": {"item_id": 999_999_999}})
    assert r.status_code == 404 and "item_id" in r.json()["detail"][0]["field"]
    assert client.get("/v1/items/999999999").status_code == 404


def test_upserted_item_is_visible_to_the_next_request(client: TestClient) -> None:
    item = {"item_id": 5_000_000, "line": "house_rent", "category": "whole_rent",
            "city": "Xiamen", "district": "Siming", "title": "Brand new seaside flat",
            "price": 4000, "rooms": 2, "lat": 24.45, "lon": 118.08}
    assert client.put("/v1/items", headers=ADMIN, json={"items": [item]}).json() == {"upserted": 1}
    got = client.get("/v1/items/5000000").json()
    assert got["title"] == "Brand new seaside flat" and got["district"] == "Siming"
    rec = _recommend(client, user_id="visitor", n=50,
                     context={"city": "Xiamen", "lat": 24.45, "lon": 118.08})
    assert 5_000_000 in [i["item_id"] for i in rec["items"]]
    found = _recommend(client, scene="search_fallback", user_id="searcher", n=5, context={
        "city": "Xiamen", "filters": {"line": "house_rent", "district": "Siming", "rooms": 2,
                                      "price_min": 3999, "price_max": 4001}})
    assert found["items"][0]["item_id"] == 5_000_000  # the one exact match leads
    bad = client.put("/v1/items", headers=ADMIN, json={"items": [{**item, "district": "Chaoyang"}]})
    assert bad.status_code == 422 and "district" in bad.text


def test_upserted_user_location_drives_the_next_request(client: TestClient) -> None:
    user = {"user_id": "mover", "city": "Kunming", "district": "Wuhua"}
    assert client.put("/v1/users", headers=ADMIN, json={"users": [user]}).json() == {"upserted": 1}
    rec = _recommend(client, user_id="mover", n=10)
    assert {i["city"] for i in rec["items"]} == {"Kunming"}


def test_home_health_metrics_and_docs(client: TestClient) -> None:
    _recommend(client)
    home = client.get("/")
    assert home.status_code == 200 and "/docs" in home.text and "/demo" in home.text
    assert client.get("/demo?user_id=u2&scene=feed").status_code == 200
    assert client.get("/healthz").json()["status"] == "ok"
    m = client.get("/metrics").text
    for stage in ("recall", "rank", "rules", "display", "total"):
        assert f'tuijian_stage_seconds_count{{stage="{stage}"}}' in m
    assert client.get("/openapi.json").json()["paths"]["/v1/recommend"]


def test_ids_beyond_int64_are_rejected_not_crashing(client: TestClient) -> None:
    huge = 2**70
    rec = _recommend(client, n=2)
    ev = {"event_id": "h", "type": "click", "user_id": "u1", "item_id": huge,
          "tracking": rec["items"][0]["tracking"]}
    r = client.post("/v1/events", json={"events": [ev]})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "events.0.item_id"
    r = client.post("/v1/recommend", json={"scene": "detail_related", "user_id": "u1",
                                           "context": {"item_id": huge}})
    assert r.status_code == 422


def test_item_validation_edges(client: TestClient) -> None:
    base = {"item_id": 7_000_000, "line": "goods", "category": "phone", "city": "Beijing",
            "district": "Haidian", "title": "phone"}
    for bad, field in [
        ({"price": float("inf")}, "items.0.price"),
        ({"area": 1e300}, "items.0.area"),
        ({"created_ts": 2**62}, "items.0"),
        ({"category": "sedan"}, "items.0"),
        ({"tags": ["x" * 100]}, "items.0.tags.0"),
    ]:
        r = client.put("/v1/items", content=json.dumps({"items": [{**base, **bad}]}),
                       headers={**ADMIN, "content-type": "application/json"})
        assert r.status_code == 422, (bad, r.text)
        assert any(d["field"].startswith(field) for d in r.json()["detail"]), r.text
    dup = client.put("/v1/items", headers=ADMIN, json={"items": [base, base]})
    assert dup.status_code == 422 and "duplicate item_id" in dup.text
    assert client.put("/v1/items", headers=ADMIN, json={"items": [base] * 1001}).status_code == 422


def test_generated_items_are_served_as_json(client: TestClient, service: Service) -> None:
    item_id = int(service.store.column("item_id")[0])
    r = client.get(f"/v1/items/{item_id}")
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["item_id"] == item_id and isinstance(got["image_hashes"], list)
    assert got["line"] in ("house_rent", "house_sale", "car", "job", "service", "goods")


def test_push_endpoint_runs_the_batch_in_the_server(client: TestClient, service: Service
                                                    ) -> None:
    import calendar

    noon = calendar.timegm((2026, 5, 4, 4, 0, 0))
    service.strategies.push.threshold = 0.0
    r = client.post("/v1/push", headers=ADMIN, json={"users": ["u1", "u2"], "now": noon})
    assert r.status_code == 200 and r.json()["sent"] == 2
    assert client.post("/v1/push", headers=ADMIN, json={"users": "some"}).status_code == 422


def test_a_body_that_is_not_json_is_a_422_on_the_body(client: TestClient) -> None:
    r = client.post("/v1/recommend", content=b"{nope", headers={"content-type":
                                                                "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "body"


def test_taken_down_items_are_not_recommended(client: TestClient, service: Service) -> None:
    service.strategies.filters.exclude_shown = False
    first = _recommend(client, user_id="watcher", n=5)
    top = first["items"][0]
    row = service.store.record(service.store.position(top["item_id"]))
    item = {"item_id": top["item_id"], "line": top["line"], "category": top["category"],
            "city": top["city"], "district": top["district"], "title": row["title"],
            "status": "inactive"}
    assert client.put("/v1/items", headers=ADMIN, json={"items": [item]}).status_code == 200
    again = _recommend(client, user_id="watcher", n=5)
    assert top["item_id"] not in [i["item_id"] for i in again["items"]]
    assert all(i["sources"] and i["source"] in i["sources"] for i in again["items"])
