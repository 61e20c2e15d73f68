"""The dashboard end to end: a real server over a day of simulated traffic, driven by headless
Chromium. Every view must load without console errors, and its charts (Chart.js's own data,
read back from the page) and tables must show the numbers the funnel API answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tuijian.domain import Event
from tuijian.serving.service import Service

from ..browser import chromium, serve

expect.set_options(timeout=10_000)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


class Dash:
    def __init__(self, page: Page, url: str) -> None:
        self.page, self.url = page, url
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, view: str) -> None:
        self.page.goto(f"{self.url}/dashboard#{view}")
        self.loaded(view)

    def loaded(self, view: str) -> None:
        expect(self.page.locator("body")).to_have_attribute("data-loaded", view)

    def chart(self, testid: str) -> dict[str, Any]:
        """What Chart.js holds for a canvas: its labels and datasets."""
        data: dict[str, Any] = self.page.evaluate(
            """(id) => { const c = Chart.getChart(document.querySelector(`[data-testid=${id}]`));
                 return {labels: c.data.labels, datasets: c.data.datasets.map(
                   (d) => ({label: d.label, data: d.data}))}; }""", testid)
        return data

    def by(self, testid: str) -> Any:
        return self.page.get_by_test_id(testid)


@pytest.fixture
def dash(browser: Browser, traffic: Service) -> Iterator[Dash]:
    with serve(traffic) as url:
        context = browser.new_context(viewport={"width": 1300, "height": 900})
        d = Dash(context.new_page(), url)
        yield d
        context.close()
        assert d.errors == [], f"the page logged errors: {d.errors}"


def _api(d: Dash, dims: str, filters: str | None = None) -> list[dict[str, Any]]:
    params = {"dims": dims, **({"filters": filters} if filters else {})}
    rows: list[dict[str, Any]] = httpx.get(f"{d.url}/v1/analytics/funnel",
                                           params=params).json()["rows"]
    return rows


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def test_funnel_by_slot_and_the_headline_numbers(dash: Dash) -> None:
    dash.open("funnel")
    rows = _api(dash, "slot")
    assert len(rows) >= 4
    chart = dash.chart("chart-funnel")
    assert chart["labels"] == [r["slot"] for r in rows]
    series = {d["label"]: d["data"] for d in chart["datasets"]}
    for step in ("lists", "exposures", "clicks", "conversions"):
        assert series[step] == [r[step] for r in rows]
    table = dash.by("funnel-row")
    assert table.count() == len(rows)
    for r in rows:
        row = dash.page.locator(f'[data-testid=funnel-row][data-slot="{r["slot"]}"]')
        expect(row.locator("[data-col=ctr]")).to_have_text(_pct(r["ctr"]))
        expect(row.locator("[data-col=clicks]")).to_have_text(f"{r['clicks']:,}")
    (total,) = _api(dash, "")
    expect(dash.by("kpi-exposures").locator(".kpi-value")).to_have_text(
        f"{total['exposures']:,}")
    expect(dash.by("kpi-ctr").locator(".kpi-value")).to_have_text(_pct(total["ctr"]))
    # a filter narrows every number on the page
    dash.by("filters").fill("platform:ios")
    dash.by("apply").click()
    dash.loaded("funnel")
    (ios,) = _api(dash, "", "platform:ios")
    expect(dash.by("kpi-exposures").locator(".kpi-value")).to_have_text(f"{ios['exposures']:,}")
    assert ios["exposures"] < total["exposures"]


def test_trends_split_by_a_dimension(dash: Dash) -> None:
    dash.open("trends")
    rows = _api(dash, "date,hour,platform")
    chart = dash.chart("chart-trends")
    platforms = {r["platform"] for r in rows}
    assert {d["label"] for d in chart["datasets"]} == platforms and len(platforms) >= 2
    r = max(rows, key=lambda r: r["exposures"])
    at = chart["labels"].index(f"{r['date']} {r['hour']:02d}:00")
    (series,) = [d["data"] for d in chart["datasets"] if d["label"] == r["platform"]]
    assert series[at] == pytest.approx(100 * r["ctr"])
    # another metric per day, split by scene
    dash.by("trend-metric").select_option("exposures")
    dash.loaded("trends")
    dash.by("trend-grain").select_option("day")
    dash.loaded("trends")
    dash.by("trend-split").select_option("scene")
    dash.loaded("trends")
    chart = dash.chart("chart-trends")
    by_day = _api(dash, "date,scene")
    for d in chart["datasets"]:
        assert sum(v or 0 for v in d["data"]) == sum(
            x["exposures"] for x in by_day if x["scene"] == d["label"])


def test_compare_two_platforms_slot_by_slot(dash: Dash) -> None:
    dash.open("compare")
    expect(dash.by("cmp-a")).to_have_value("android")
    expect(dash.by("cmp-b")).to_have_value("ios")
    totals = {r["platform"]: r for r in _api(dash, "platform", "platform:android|ios")}
    total_ctr = dash.page.locator("#compare-total tr[data-metric=ctr]")
    expect(total_ctr.locator("[data-side=a]")).to_have_text(_pct(totals["android"]["ctr"]))
    expect(total_ctr.locator("[data-side=b]")).to_have_text(_pct(totals["ios"]["ctr"]))
    cells = {(r["slot"], r["platform"]): r for r in _api(dash, "slot,platform",
                                                          "platform:android|ios")}
    chart = dash.chart("chart-compare")
    assert [d["label"] for d in chart["datasets"]] == ["android CTR (%)", "ios CTR (%)"]
    for i, slot in enumerate(chart["labels"]):
        for d, p in zip(chart["datasets"], ("android", "ios"), strict=True):
            cell = cells.get((slot, p))
            assert d["data"][i] == (pytest.approx(100 * cell["ctr"]) if cell and cell["ctr"]
                                    is not None else None)
    assert dash.by("compare-row").count() == len(chart["labels"]) >= 4
    # recall ids within scenes
    dash.by("cmp-dim").select_option("scene")
    dash.loaded("compare")
    dash.by("cmp-within").select_option("platform")
    dash.loaded("compare")
    a = dash.by("cmp-a").input_value()
    b = dash.by("cmp-b").input_value()
    assert a != b and {a, b} <= {r["scene"] for r in _api(dash, "scene")}


def test_recall_source_contribution(dash: Dash) -> None:
    dash.open("sources")
    rows = _api(dash, "source")
    chart = dash.chart("chart-sources")
    assert chart["labels"] == [r["source"] for r in rows]
    shares = {d["label"]: d["data"] for d in chart["datasets"]}
    total = sum(r["exposures"] for r in rows)
    assert shares["share of exposures (%)"] == pytest.approx(
        [100 * r["exposures"] / total for r in rows])
    assert sum(shares["share of clicks (%)"]) == pytest.approx(100)
    top = rows[0]
    row = dash.page.locator(f'[data-testid=source-row][data-source="{top["source"]}"]')
    expect(row.locator("[data-col=ctr]")).to_have_text(_pct(top["ctr"]))


def test_experiments_show_their_arms_and_link_to_their_reports(dash: Dash,
                                                                traffic: Service) -> None:
    dash.open("experiments")
    (x,) = traffic.experiments.config.experiments.values()
    arms = {r["exp_recall"]: r for r in _api(dash, "exp_recall") if r["exp_recall"]}
    assert set(arms) == {f"{x.id}:control", f"{x.id}:rrf"}
    card = dash.by(f"experiment-{x.id}")
    for tag, r in arms.items():
        expect(card.locator(f'tr[data-arm="{tag}"] [data-col=ctr]')).to_have_text(
            _pct(r["ctr"]))
    dash.by(f"report-link-{x.id}").click()
    expect(dash.page.get_by_test_id("report-panel")).to_be_visible()
    expect(dash.page.locator("#report-title")).to_contain_text(x.name)


def test_alarms_show_on_the_dashboard(dash: Dash, traffic: Service) -> None:
    dash.open("alarms")
    expect(dash.by("no-alarms")).to_be_visible()
    # a client build that mangles its tracking params
    _, rows = traffic.log.query(
        "SELECT user_id, item_id, ts, tracking FROM events WHERE type = 'click' LIMIT 200")
    bad = [Event(f"bad-{i}", "click", u, item, ts, tracking=tk[:-4] + "AAAA")
           for i, (u, item, ts, tk) in enumerate(rows)]
    traffic.ingest_sync(bad)
    fired = httpx.get(f"{dash.url}/v1/analytics/alarms", params={"refresh": "true"}).json()
    assert [a["key"] for a in fired["alarms"]] == ["tracking_signature"]
    dash.page.reload()
    dash.loaded("alarms")
    row = dash.page.locator("[data-testid=alarm-row][data-alarm=invalid_tracking]")
    expect(row).to_contain_text("tracking_signature")
    expect(dash.by("no-alarms")).to_be_hidden()
    expect(dash.by("nav-alarms")).to_have_text("Alarms (1)")


def test_daily_report_links_download_the_files(dash: Dash) -> None:
    dash.open("funnel")
    day = dash.by("report-date").input_value()
    for fmt, media in (("csv", "text/csv"), ("html", "text/html")):
        href = dash.by(f"export-{fmt}").get_attribute("href")
        assert href == f"/v1/analytics/daily?date={day}&format={fmt}"
        res = dash.page.request.get(dash.url + href)
        assert res.ok and res.headers["content-type"].startswith(media)
        assert f"tuijian-daily-{day}.{fmt}" in res.headers["content-disposition"]


def test_assets_are_served_from_the_package_with_a_strict_policy(dash: Dash) -> None:
    res = httpx.get(f"{dash.url}/dashboard")
    assert "script-src 'self'" in res.headers["content-security-policy"]
    assert "http" not in "".join(
        line for line in res.text.splitlines() if "<script" in line or "<link" in line)
    lib = httpx.get(f"{dash.url}/static/vendor/chart.umd.min.js")
    assert lib.status_code == 200 and "Chart.js v4" in lib.text[:200]
