"""The daily report over a real simulated day: the CSV's total is the day's funnel and its
breakdowns add up to it, the HTML is self-contained and escapes what clients send, and the
endpoint and the CLI serve the same report."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tuijian.analytics.daily import DailyReport, daily_report, to_csv, to_html
from tuijian.analytics.funnel import FunnelQuery
from tuijian.cli import app
from tuijian.serving.api import create_app
from tuijian.serving.service import Service

LOCAL = dt.timezone(dt.timedelta(hours=8))
HOSTILE = "<script>alert(1)</script>"
COUNTS = ("exposures", "lists", "clicks", "conversions", "conversions_chat", "conversions_call",
          "conversions_favorite", "conversions_share", "users")


@pytest.fixture
def client(traffic: Service) -> Iterator[TestClient]:
    with TestClient(create_app(traffic, rebuild=False)) as c:
        yield c


def _busiest_day(service: Service) -> dt.date:
    """The simulated day straddles two local dates: the one holding most of the traffic."""
    rows = service.funnel(FunnelQuery(["date"]))
    return dt.date.fromisoformat(max(rows, key=lambda r: r["exposures"])["date"])


def _day_totals(service: Service, day: dt.date) -> dict[str, Any]:
    start = dt.datetime(day.year, day.month, day.day, tzinfo=LOCAL).timestamp()
    (row,) = service.funnel(FunnelQuery([], start=start, end=start + 86_400))
    return row


def _report(service: Service, day: dt.date) -> DailyReport:
    return daily_report(service.funnel, day)


class _Page(HTMLParser):
    """Tags, and every address an attribute or style would make a mail client fetch."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.addresses: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.addresses += [v for k, v in attrs if k in ("src", "href", "xlink:href", "action")
                           and v is not None and not v.startswith("data:")]


def test_csv_total_is_the_days_funnel_and_breakdowns_add_up(traffic: Service) -> None:
    day = _busiest_day(traffic)
    report = _report(traffic, day)
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    total = _day_totals(traffic, day)
    assert total["exposures"] < traffic.funnel(FunnelQuery([]))[0]["exposures"]
    assert (rows[0]["date"], rows[0]["section"]) == (day.isoformat(), "total")
    assert {m: int(rows[0][m]) for m in COUNTS} == {m: total[m] for m in COUNTS}
    for m in ("ctr", "cvr", "dwell_mean", "dwell_p50", "dwell_sum"):
        assert float(rows[0][m]) == pytest.approx(total[m], rel=1e-5)
    assert list(rows[0])[:5] == ["date", "section", "slot", "platform", "hour"]
    slots = [r for r in rows if r["section"] == "By slot"]
    assert sum(int(r["exposures"]) for r in slots) == total["exposures"] > 0
    assert sum(int(r["clicks"]) for r in slots) == total["clicks"] > 0
    assert all(r["platform"] == "" and r["slot"] for r in slots)
    hours = [int(r["hour"]) for r in rows if r["section"] == "By hour"]
    assert hours == sorted(hours) and len(hours) > 1
    assert len([r for r in rows if r["section"] == "Top 20 cities"]) <= 20
    # only the recall layer runs an experiment
    assert [s.title for s in report.sections if s.dims[0].startswith("exp_")] == [
        "Experiments: recall layer"]


def test_html_is_self_contained_and_escapes_client_values(traffic: Service) -> None:
    report = _report(traffic, _busiest_day(traffic))
    page = to_html(report)
    parsed = _Page(page)
    assert not {"script", "link", "img", "iframe", "object"} & set(parsed.tags)
    assert parsed.addresses == [] and "url(" not in page and "//" not in page
    assert {"table", "svg", "rect", "polyline", "title"} <= set(parsed.tags)
    assert f"Exposures<b>{report.totals['exposures']:,}</b>" in page
    assert f"CTR<b>{report.totals['ctr']:.2%}</b>" in page
    (by_slot,) = (s for s in report.sections if s.dims == ("slot",))
    assert all(f">{r['slot']}<" in page for r in by_slot.rows)
    assert "no alarms" in page

    hostile_slot = replace(by_slot, rows=[{**by_slot.rows[0], "slot": HOSTILE}])
    alarm = {"alarm": "missing_exposures", "key": HOSTILE, "severity": "critical",
             "message": "clicks without exposures"}
    page = to_html(replace(report, sections=[hostile_slot], alarms=[alarm]))
    assert "script" not in _Page(page).tags and HOSTILE not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 4  # table, bars, alarm
    assert "missing_exposures" in page and "no alarms" not in page


def test_endpoint_serves_json_csv_and_html(client: TestClient, traffic: Service) -> None:
    day = _busiest_day(traffic).isoformat()
    r = client.get("/v1/analytics/daily", params={"date": day})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"date", "totals", "sections", "alarms"} and body["date"] == day
    assert body["alarms"] == [] and body["totals"]["exposures"] > 0
    assert all(set(s) == {"title", "dims", "rows"} for s in body["sections"])
    files = {fmt: client.get("/v1/analytics/daily", params={"date": day, "format": fmt})
             for fmt in ("csv", "html")}
    for fmt, media_type in (("csv", "text/csv; charset=utf-8"),
                            ("html", "text/html; charset=utf-8")):
        assert files[fmt].status_code == 200
        assert files[fmt].headers["content-type"] == media_type
        assert (files[fmt].headers["content-disposition"]
                == f'attachment; filename="tuijian-daily-{day}.{fmt}"')
    total = next(csv.DictReader(io.StringIO(files["csv"].text)))
    assert int(total["exposures"]) == body["totals"]["exposures"]
    assert f"Exposures<b>{body['totals']['exposures']:,}</b>" in files["html"].text

    yesterday = dt.datetime.now(LOCAL).date() - dt.timedelta(days=1)
    assert client.get("/v1/analytics/daily").json()["date"] == yesterday.isoformat()
    empty = client.get("/v1/analytics/daily", params={"date": "2001-01-01"}).json()
    assert empty["totals"]["exposures"] == 0 and empty["sections"] == []
    for params, field in (({"date": "2026-13-01"}, "date"), ({"format": "pdf"}, "format")):
        r = client.get("/v1/analytics/daily", params=params)
        assert r.status_code == 422, params
        assert r.json()["detail"][0]["field"] == field


def test_cli_writes_the_report_the_server_computes(traffic: Service, data_dir: Path,
                                                   tmp_path: Path) -> None:
    day = _busiest_day(traffic)
    expected = _report(traffic, day)
    traffic.close()
    runner = CliRunner()
    out = tmp_path / "daily.html"
    r = runner.invoke(app, ["report", "--data", str(data_dir), "--daily", day.isoformat(),
                            "--format", "html", "--out", str(out)])
    assert r.exit_code == 0, r.output
    page = out.read_text(encoding="utf-8")
    assert f"Exposures<b>{expected.totals['exposures']:,}</b>" in page
    assert page == to_html(expected)
    r = runner.invoke(app, ["report", "--data", str(data_dir), "--daily", day.isoformat()])
    assert r.exit_code == 0, r.output
    assert r.stdout_bytes.decode() == to_csv(expected)  # `stdout` would normalize the CRLFs
    for args, message in ((["--daily", day.isoformat(), "--format", "pdf"], "--format"),
                          (["--format", "html"], "go with --daily"),
                          (["--daily", "2026-13-01"], "not an ISO date")):
        r = runner.invoke(app, ["report", "--data", str(data_dir), *args])
        assert r.exit_code == 2 and message in r.output, args
