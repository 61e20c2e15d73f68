"""Strategies from the metadata store over HTTP and the CLI: a change serves on the next
request (this process) or the next poll (another process), a bad one is refused naming the
field, and the audit trail records both versions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tuijian.cli import app
from tuijian.serving.api import create_app
from tuijian.serving.service import Service

from ..conftest import ADMIN

URL = "/v1/admin/strategies"


@pytest.fixture
def client(service: Service) -> Iterator[TestClient]:
    with TestClient(create_app(service, rebuild=False)) as c:
        yield c


def _recommend(client: TestClient, scene: str = "guess_you_like") -> dict[str, Any]:
    r = client.post("/v1/recommend", json={"scene": scene, "user_id": "u1", "n": 10})
    assert r.status_code == 200, r.text
    return r.json()


def test_a_display_change_serves_on_the_next_request(client: TestClient) -> None:
    assert client.get(URL).status_code == 401  # admin scope only
    before = _recommend(client)["items"][0]
    assert {"city", "category"} <= set(before)
    card = client.get(f"{URL}/display/d_card", headers=ADMIN).json()
    assert card["version"] == 1 and card["actor"] == "seed"
    r = client.put(f"{URL}/display/d_card", headers={**ADMIN, "X-Actor": "ann"},
                   json={**card["body"], "fields": ["title", "price"]})
    assert r.status_code == 200, r.text
    assert (r.json()["version"], r.json()["actor"]) == (2, "admin:ann")
    after = _recommend(client)
    assert after["display"]["fields"] == ["title", "price"]
    assert not {"city", "category", "image"} & set(after["items"][0])
    audit = client.get(f"{URL}/display/d_card/audit", headers=ADMIN).json()
    assert [(a["version"], a["actor"]) for a in audit] == [(2, "admin:ann"), (1, "seed")]
    assert audit[0]["before"]["fields"] == card["body"]["fields"]


def test_a_new_recall_strategy_and_a_scene_change_serve_on_the_next_request(
        client: TestClient) -> None:
    assert {it["source"] for it in _recommend(client, "feed")["items"]} != {"region"}
    r = client.put(f"{URL}/recall/r_region", headers=ADMIN,
                   json={"size": 50, "sources": [{"name": "region", "k": 100}]})
    assert r.status_code == 200, r.text
    scene = client.get(f"{URL}/scenes/feed", headers=ADMIN).json()["body"]
    r = client.put(f"{URL}/scenes/feed", headers=ADMIN, json={**scene, "recall": "r_region"})
    assert r.status_code == 200, r.text
    out = _recommend(client, "feed")
    assert out["stage_ids"]["recall"] == "r_region"
    assert {it["source"] for it in out["items"]} == {"region"}


@pytest.mark.parametrize(("path", "body", "status", "field"), [
    ("scenes/feed", {"recall": "r_missing", "rank": "rk_rule", "rule": "ru_default",
                     "display": "d_card"}, 422, "scenes.feed.recall"),
    ("display/d_card", {"fields": ["title", "nope"]}, 422, "display.d_card.fields"),
    ("recall/r_push", {"size": 10, "sources": [{"name": "hot", "k": "many"}]}, 422,
     "recall.r_push.sources.0.k"),
])
def test_an_invalid_change_is_refused_naming_the_field(
        client: TestClient, path: str, body: dict[str, Any], status: int, field: str) -> None:
    r = client.put(f"{URL}/{path}", headers=ADMIN, json=body)
    assert r.status_code == status and r.json()["detail"][0]["field"] == field, r.text
    stage, sid = path.split("/")
    assert client.get(f"{URL}/{path}", headers=ADMIN).json()["version"] == 1
    assert len(client.get(f"{URL}/{stage}/{sid}/audit", headers=ADMIN).json()) == 1


def test_a_stale_if_match_is_a_conflict(client: TestClient) -> None:
    body = client.get(f"{URL}/display/d_text", headers=ADMIN).json()["body"]
    ok = client.put(f"{URL}/display/d_text", headers={**ADMIN, "If-Match": "1"},
                    json={**body, "fields": ["title"]})
    assert ok.status_code == 200
    stale = client.put(f"{URL}/display/d_text", headers={**ADMIN, "If-Match": "1"},
                       json={**body, "fields": ["price"]})
    assert stale.status_code == 409 and stale.json()["detail"][0]["field"] == "version"


def test_a_change_from_the_cli_serves_after_the_next_poll(
        client: TestClient, service: Service, tmp_path: Path) -> None:
    data = service.settings.data_dir
    runner = CliRunner()
    body = tmp_path / "d_card.yaml"
    body.write_text("style: text\nfields: [title]\n")
    r = runner.invoke(app, ["strategies", "set", "display", "d_card", str(body),
                            "--data", str(data)])
    assert r.exit_code == 0, r.output
    assert _recommend(client)["display"]["style"] == "card"  # not polled yet
    assert service.live_strategies.refresh()
    assert _recommend(client)["display"] == {"style": "text", "fields": ["title"]}
    bad = tmp_path / "bad.yaml"
    bad.write_text("style: text\nfields: [image]\n")
    r = runner.invoke(app, ["strategies", "set", "display", "d_card", str(bad),
                            "--data", str(data)])
    assert r.exit_code == 2 and "a text style shows no image" in r.output
    r = runner.invoke(app, ["strategies", "history", "display", "d_card", "--data", str(data)])
    assert [h["version"] for h in json.loads(r.output)] == [2, 1]
    r = runner.invoke(app, ["strategies", "list", "--data", str(data), "--json"])
    rows = {(e["stage"], e["id"]): e["version"] for e in json.loads(r.output)}
    assert rows[("display", "d_card")] == 2 and rows[("settings", "push")] == 1


def test_an_edited_strategy_file_takes_effect_by_import(
        client: TestClient, service: Service, tmp_path: Path) -> None:
    data = service.settings.data_dir
    edited = tmp_path / "strategies.yaml"
    text = service.settings.strategies.read_text()
    assert "style: card" in text
    edited.write_text(text.replace("style: card", "style: small_image", 1))
    runner = CliRunner()
    r = runner.invoke(app, ["strategies", "import", str(edited), "--data", str(data)])
    assert r.exit_code == 0, r.output
    assert service.live_strategies.refresh()
    assert _recommend(client)["display"]["style"] == "small_image"
    r = runner.invoke(app, ["strategies", "history", "display", "d_card", "--data", str(data)])
    assert json.loads(r.output)[0]["actor"] == f"cli:{edited}"
    broken = tmp_path / "broken.yaml"
    broken.write_text(text.replace("recall: r_default", "recall: r_missing", 1))
    r = runner.invoke(app, ["strategies", "import", str(broken), "--data", str(data)])
    assert r.exit_code == 2 and "r_missing" in r.output  # refused whole: nothing changed
    assert not service.live_strategies.refresh()
