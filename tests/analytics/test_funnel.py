"""The effect-data funnel over a real simulated log: totals that match the raw log, the
offline cube and the live tail agreeing at the seam, rollups, filters and time ranges, the
HTTP endpoint and the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tuijian.analytics.build import build_cube
from tuijian.analytics.funnel import FunnelQuery, connect, funnel, items_table, live_facts
from tuijian.cli import app
from tuijian.jobs.engine import DuckDBEngine
from tuijian.serving.api import create_app
from tuijian.serving.service import Service

from ..conftest import NOW
from .conftest import START


@pytest.fixture
def client(traffic: Service) -> Iterator[TestClient]:
    with TestClient(create_app(traffic, rebuild=False)) as c:
        yield c


def _raw(service: Service, sql: str) -> list[tuple]:  # type: ignore[type-arg]
    return duckdb.sql(sql.format(ev=service.log.relation_sql())).fetchall()


def test_totals_match_the_raw_log(traffic: Service) -> None:
    rows = traffic.funnel(FunnelQuery(["scene", "platform"]))
    (exposures, clicks, conversions, users), = _raw(traffic, """
        SELECT count(*) FILTER (WHERE type = 'exposure'), count(*) FILTER (WHERE type='click'),
               count(*) FILTER (WHERE type = 'convert'), count(DISTINCT user_id) FROM {ev}""")
    assert sum(r["exposures"] for r in rows) == exposures > 0
    assert sum(r["clicks"] for r in rows) == clicks > 0
    assert sum(r["conversions"] for r in rows) == conversions
    assert sum(r["lists"] for r in rows) * 10 == exposures  # the simulator shows 10 items
    for r in rows:
        assert r["ctr"] == pytest.approx(r["clicks"] / r["exposures"])
        assert r["conversions"] == sum(r[f"conversions_{s}"]
                                       for s in ("chat", "call", "favorite", "share"))
    total = traffic.funnel(FunnelQuery([]))
    assert total[0]["users"] == users and total[0]["exposures"] == exposures


def test_cube_and_live_tail_agree_at_the_seam(traffic: Service) -> None:
    layers = {e.id: e.layer for e in traffic.experiments.config.experiments.values()}
    queries = [FunnelQuery(["slot", "platform"]), FunnelQuery(["exp_recall", "line"]),
               FunnelQuery(["hour"], {"scene": ["feed", "guess_you_like"]}),
               FunnelQuery(["date", "slot", "platform"])]
    before = [traffic.funnel(q) for q in queries]
    engine = DuckDBEngine(traffic.log.relation_sql())
    items = items_table(traffic.store)
    result = build_cube(engine, traffic.cube, items, layers, until=START + 43_200)
    assert 0 < result.facts < len(traffic.log)
    assert [traffic.funnel(q) for q in queries] == before
    build_cube(engine, traffic.cube, items, layers, until=NOW + 1)
    # grouped exactly by a rollup's dimensions with nothing after the build: the rollup
    live = live_facts(traffic.log.relation_sql(), layers)
    con = connect(traffic.store)
    assert funnel(con, traffic.cube, live, queries[3]) == before[3]
    rollup = traffic.cube.rollup_relation("day_slot_platform")
    assert rollup is not None
    stored = con.sql(f"SELECT CAST(date AS VARCHAR), slot, platform, exposures, clicks, users "
                     f"FROM {rollup}").fetchall()
    assert sorted(stored) == sorted((r["date"], r["slot"], r["platform"], r["exposures"],
                                     r["clicks"], r["users"]) for r in before[3])
    tags = {r["exp_recall"] for r in before[1]} - {None}  # other scenes are in no experiment
    assert {t.split(":")[1] for t in tags} == {"control", "rrf"}


def test_filters_and_time_ranges(traffic: Service) -> None:
    ios = traffic.funnel(FunnelQuery(["platform"], {"platform": ["ios"]}))
    assert [r["platform"] for r in ios] == ["ios"]
    first, second = (traffic.funnel(FunnelQuery([], start=a, end=b))[0]
                     for a, b in ((START, START + 43_200), (START + 43_200, NOW + 1)))
    whole = traffic.funnel(FunnelQuery([]))[0]
    assert first["exposures"] + second["exposures"] == whole["exposures"]
    assert first["clicks"] + second["clicks"] == whole["clicks"]


def test_endpoint_answers_rows_and_names_bad_fields(client: TestClient) -> None:
    r = client.get("/v1/analytics/funnel", params={"dims": "slot,platform",
                                                   "filters": "scene:feed"})
    assert r.status_code == 200
    rows = r.json()["rows"]
    assert rows and all(set(x) >= {"slot", "platform", "exposures", "clicks", "ctr", "cvr",
                                   "users", "dwell_p50"} for x in rows)
    assert {x["slot"] for x in rows} == {"feed"}
    for params, field in (({"dims": "colour"}, "dims"), ({"filters": "platform"}, "filters"),
                          ({"from": "yesterday"}, "from"),
                          ({"from": "2026-11-02", "to": "2026-11-01"}, "to")):
        r = client.get("/v1/analytics/funnel", params=params)
        assert r.status_code == 422, params
        assert r.json()["detail"][0]["field"] == field
    names = {d["name"] for d in client.get("/v1/analytics/dimensions").json()["dimensions"]}
    assert {"date", "hour", "line", "platform", "slot", "scene", "recall_id", "source",
            "rank_id", "rule_id", "display_id", "creative", "city", "exp_recall"} <= names


def test_a_requested_slot_reaches_the_funnel(client: TestClient) -> None:
    body = {"scene": "guess_you_like", "user_id": "u5", "n": 4,
            "context": {"slot": "home_top", "platform": "ios"}}
    rec = client.post("/v1/recommend", json=body).json()
    item = rec["items"][0]
    client.post("/v1/events", json={"events": [{"event_id": "c-slot", "type": "click",
                                                "user_id": "u5", "item_id": item["item_id"],
                                                "tracking": item["tracking"]}]})
    rows = client.get("/v1/analytics/funnel", params={"dims": "slot",
                                                      "filters": "slot:home_top"}).json()
    assert rows["rows"] == [pytest.approx({**rows["rows"][0], "exposures": 4, "clicks": 1,
                                           "lists": 1})]
    bad = client.post("/v1/recommend", json={**body, "context": {"slot": "Home Top!"}})
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "context.slot"


def test_cli_report_prints_what_the_endpoint_answers(traffic: Service,
                                                     data_dir: Path) -> None:
    expected = traffic.funnel(FunnelQuery(["scene"]))
    traffic.close()
    r = CliRunner().invoke(app, ["report", "--data", str(data_dir), "--dims", "scene",
                                 "--build", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["rows"] == expected
    r = CliRunner().invoke(app, ["report", "--data", str(data_dir), "--dims", "nope"])
    assert r.exit_code == 2 and "unknown dimension 'nope'" in r.output


def test_the_service_builds_its_cube_up_to_the_last_whole_hour(traffic: Service) -> None:
    q = FunnelQuery(["slot", "platform"])
    before = traffic.funnel(q)
    res = traffic.build_cube(NOW)
    assert res.built_until == NOW - NOW % 3600 == traffic.cube.built_until()
    # the events of the current hour stay live
    assert res.facts == _raw(traffic, f"SELECT count(*) FROM {{ev}} WHERE ts < {res.built_until}"
                             )[0][0] > 0
    assert traffic.funnel(q) == before
