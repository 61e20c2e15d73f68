"""The experiment API over HTTP: admin key, CRUD, assignment, and the assignment travelling
from a recommendation into every event of the log."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import duckdb
import pytest
from fastapi.testclient import TestClient

from tuijian.serving.api import create_app
from tuijian.serving.service import Service

KEY = {"X-API-Key": "dev-admin-key"}
BODY: dict[str, Any] = {
    "name": "rrf fusion", "layer": "recall", "scenes": ["guess_you_like", "feed"],
    "percent": 100, "status": "running", "variants": [
        {"name": "control", "stage_id": "r_default"}, {"name": "rrf", "stage_id": "r_rrf"}]}


@pytest.fixture
def client(service: Service) -> Iterator[TestClient]:
    with TestClient(create_app(service, rebuild=False)) as c:
        yield c


def test_admin_actions_need_the_admin_key_and_reading_does_not(client: TestClient) -> None:
    r = client.post("/v1/experiments", json=BODY)
    assert r.status_code == 401 and r.json()["detail"][0]["field"] == "X-API-Key"
    r = client.post("/v1/experiments", json=BODY, headers={"X-API-Key": "guess"})
    assert r.status_code == 403
    assert client.get("/v1/experiments").json() == []
    r = client.get("/v1/experiments/assignment", params={"unit": "u1"})
    assert r.status_code == 200
    assert r.json()["layers"]["recall"] == {"experiment": None, "variant": None,
                                            "stage_id": "r_default", "params": {},
                                            "forced": False}


def test_crud_and_assignment_shape(client: TestClient) -> None:
    r = client.post("/v1/experiments", json=BODY, headers={**KEY, "X-Actor": "alice"})
    assert r.status_code == 201, r.text
    exp = r.json()
    assert (exp["status"], exp["ranges"], exp["version"]) == ("running", [[0, 1000]], 1)
    body = client.get("/v1/experiments/assignment", params={"unit": "u42"}).json()
    assert body["unit"] == "u42"
    assert set(body["layers"]) == {"launch", "recall", "rank", "rule", "display"}
    recall = body["layers"]["recall"]
    assert recall["experiment"] == exp["id"] and recall["variant"] in ("control", "rrf")
    assert recall["stage_id"] == {"control": "r_default", "rrf": "r_rrf"}[recall["variant"]]
    assert body["layers"]["rank"]["experiment"] is None
    r = client.patch(f"/v1/experiments/{exp['id']}", json={"whitelist": {"qa": "rrf"}},
                     headers=KEY)
    assert r.json()["version"] == 2
    qa = client.get("/v1/experiments/assignment", params={"unit": "qa"}).json()
    assert qa["layers"]["recall"]["variant"] == "rrf" and qa["layers"]["recall"]["forced"]
    r = client.post(f"/v1/experiments/{exp['id']}/traffic", json={"percent": 10}, headers=KEY)
    assert r.json()["ranges"] == [[0, 100]]
    r = client.post(f"/v1/experiments/{exp['id']}/stop", headers=KEY)
    assert r.json()["status"] == "stopped"
    trail = client.get(f"/v1/experiments/{exp['id']}/audit").json()
    assert [a["action"] for a in trail] == ["stop", "traffic", "edit", "create"]
    assert trail[-1]["actor"] == "admin:alice"
    layers = {la["name"]: la for la in client.get("/v1/experiments/layers").json()}
    assert layers["recall"]["used"] == 0 and layers["recall"]["buckets"] == 1000


@pytest.mark.parametrize(("change", "field"), [
    (lambda b: b["variants"][1].update(stage_id="r_nope"), "variants[1].stage_id"),
    (lambda b: b.update(control="base"), "control"),
    (lambda b: b.update(layer="nope"), "layer"),
    (lambda b: b.update(scenes=["moon"]), "scenes.0"),
    (lambda b: b.update(percent=101), "percent"),
])
def test_bad_experiments_get_422_naming_the_field(client: TestClient, change: Any,
                                                 field: str) -> None:
    body = {**BODY, "variants": [dict(v) for v in BODY["variants"]]}
    change(body)
    r = client.post("/v1/experiments", json=body, headers=KEY)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == field
    assert client.get("/v1/experiments").json() == []


def test_overlap_is_a_422_and_unknown_experiment_a_404(client: TestClient) -> None:
    assert client.post("/v1/experiments", json=BODY, headers=KEY).status_code == 201
    r = client.post("/v1/experiments", json={**BODY, "percent": 1}, headers=KEY)
    assert r.status_code == 422 and "free" in r.json()["error"]
    r = client.post("/v1/experiments", json={**BODY, "percent": None, "ranges": [[0, 10]]},
                    headers=KEY)
    assert r.status_code == 422 and "overlaps experiment" in r.json()["error"]
    assert client.get("/v1/experiments/999/report").status_code == 404


def test_every_event_carries_the_assignment_of_its_list(client: TestClient,
                                                        service: Service) -> None:
    exp = client.post("/v1/experiments", json=BODY, headers=KEY).json()
    rank = client.post("/v1/experiments", headers=KEY, json={
        **BODY, "name": "rank", "layer": "rank", "variants": [
            {"name": "control", "stage_id": "rk_rule"}, {"name": "ctr", "stage_id": "rk_ctr"}]}
    ).json()
    rec = client.post("/v1/recommend", json={"scene": "feed", "user_id": "u7", "n": 5}).json()
    assigned = client.get("/v1/experiments/assignment",
                          params={"unit": "u7", "scene": "feed"}).json()["layers"]
    assert rec["experiments"] == {
        "recall": {"experiment": exp["id"], "variant": assigned["recall"]["variant"]},
        "rank": {"experiment": rank["id"], "variant": assigned["rank"]["variant"]}}
    assert rec["stage_ids"]["recall"] == assigned["recall"]["stage_id"]
    assert rec["stage_ids"]["rank"] == assigned["rank"]["stage_id"]
    tags = sorted(f"{v['experiment']}:{v['variant']}" for v in rec["experiments"].values())
    item = rec["items"][1]
    r = client.post("/v1/events", json={"events": [
        {"event_id": "c1", "type": "click", "user_id": "u7", "item_id": item["item_id"],
         "tracking": item["tracking"]}]})
    assert r.json()["results"][0]["status"] == "accepted"
    service.exposures.flush()
    rows = duckdb.sql(f"SELECT type, list_sort(experiments) FROM {service.log.relation_sql()}"
                      ).fetchall()
    assert len(rows) == 6 and all(list(t) == tags for _, t in rows)
    report = client.get(f"/v1/experiments/{exp['id']}/report").json()
    arm = report["variants"][assigned["recall"]["variant"]]
    assert (arm["units"], arm["exposures"], arm["clicks"]) == (1, 5, 1)
    assert any("minimum" in w or "fewer" in w for w in report["warnings"])
    metrics = client.get("/metrics").text
    arm = assigned["recall"]["variant"]
    assert (f'tuijian_experiment_requests_total{{experiment="{exp["id"]}",variant="{arm}"}} 1.0'
            in metrics)


def test_a_change_made_by_another_process_is_served_within_seconds(
        client: TestClient, service: Service) -> None:
    """The CLI (or another replica) writes to the same store; the running app's poll loop
    picks the new revision up without a restart."""
    from tuijian.experiments.platform import ExperimentPlatform
    from tuijian.experiments.store import SqlExperimentStore

    other = ExperimentPlatform(SqlExperimentStore(service.settings.experiments_store),
                               service.strategies)
    body = {k: v for k, v in BODY.items() if k != "percent"}
    exp = other.create(body, "cli", percent=100)
    other.store.close()
    deadline = time.monotonic() + 5.0
    seen = None
    while time.monotonic() < deadline and seen is None:
        time.sleep(0.2)
        layers = client.get("/v1/experiments/assignment", params={"unit": "u1"}).json()
        seen = layers["layers"]["recall"]["experiment"]
    assert seen == exp.id


def test_a_parameter_layer_reaches_the_client(client: TestClient) -> None:
    r = client.put("/v1/experiments/layers/ui", json={"description": "page layout"},
                   headers=KEY)
    assert r.status_code == 200 and r.json()["stage"] is None
    r = client.post("/v1/experiments", headers=KEY, json={
        "name": "grid", "layer": "ui", "scenes": ["feed"], "percent": 100,
        "status": "running", "variants": [{"name": "control", "params": {"columns": 2}},
                                          {"name": "wide", "params": {"columns": 3}}]})
    assert r.status_code == 201, r.text
    rec = client.post("/v1/recommend", json={"scene": "feed", "user_id": "u9", "n": 3}).json()
    variant = rec["experiments"]["ui"]["variant"]
    assert rec["params"] == {"ui": {"columns": {"control": 2, "wide": 3}[variant]}}
    r = client.post("/v1/experiments", headers=KEY, json={
        "name": "bad", "layer": "ui", "scenes": ["guess_you_like"], "percent": 10,
        "variants": [{"name": "control"}, {"name": "b", "stage_id": "r_rrf"}]})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "variants[1].stage_id"


def test_layers_and_domains_crud(client: TestClient) -> None:
    r = client.put("/v1/experiments/domains/exclusive", json={"ranges": [[0, 100]]},
                   headers=KEY)
    assert r.status_code == 200
    r = client.put("/v1/experiments/layers/x_rank", headers=KEY,
                   json={"stage": "rank", "domain": "exclusive", "buckets": 10000})
    assert r.status_code == 200
    assert client.delete("/v1/experiments/domains/exclusive", headers=KEY).status_code == 409
    r = client.put("/v1/experiments/layers/x_rank2", headers=KEY,
                   json={"stage": "rank", "domain": "exclusive"})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "stage"
    r = client.put("/v1/experiments/layers/recall", headers=KEY, json={"stage": "rank"})
    assert r.status_code == 422 and "built-in" in r.json()["error"]
    assert client.delete("/v1/experiments/layers/recall", headers=KEY).status_code == 409
    assert client.delete("/v1/experiments/layers/x_rank", headers=KEY).status_code == 204
    assert client.delete("/v1/experiments/domains/exclusive", headers=KEY).status_code == 204
    assert client.get("/v1/experiments/domains").json() == []
    actions = [a["action"] for a in client.get("/v1/experiments/audit").json()]
    assert actions == ["delete_domain", "delete_layer", "put_layer", "put_domain"]
