"""The experiments admin page end to end: a real uvicorn server over a real Service, driven by
headless Chromium (Debian's /usr/bin/chromium) through Playwright's sync API."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tuijian.experiments.model import Experiment
from tuijian.jobs.simulate import simulate
from tuijian.serving.service import Service
from tuijian.serving.web import json_for_script

from ..browser import chromium, serve
from ..conftest import NOW

ADMIN = {"X-API-Key": "dev-admin-key"}
AB = [{"name": "control", "stage_id": "r_default"}, {"name": "rrf", "stage_id": "r_rrf"}]
expect.set_options(timeout=5_000)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture
def base_url(service: Service) -> Iterator[str]:
    with serve(service) as url:
        yield url


@dataclass
class Ui:
    """The page, what its console said, and the form-filling steps the tests share."""

    page: Page
    url: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def open(self) -> None:
        self.page.goto(f"{self.url}/experiments")
        expect(self.page.locator("body")).to_have_attribute("data-ready", "true")

    def by(self, testid: str) -> Any:
        return self.page.get_by_test_id(testid)

    def create(self, name: str, percent: float, *, start: bool, layer: str = "recall",
               variant: tuple[str, str] = ("rrf", "r_rrf")) -> None:
        self.by("new-name").fill(name)
        self.by("new-layer").select_option(layer)
        self.by("new-scene-feed").check()
        self.by("new-percent").fill(str(percent))
        self.by("v-name-0").fill("control")
        self.by("v-stage-0").select_option("r_default")
        self.by("v-name-1").fill(variant[0])
        self.by("v-stage-1").select_option(variant[1])
        self.by("new-start").set_checked(start)
        self.by("create-submit").click()

    def no_script_errors(self) -> None:
        assert self.page_errors == [], f"uncaught errors in the page: {self.page_errors}"


@pytest.fixture
def ui(browser: Browser, base_url: str) -> Iterator[Ui]:
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    page = context.new_page()
    u = Ui(page, base_url)
    page.on("console", lambda m: u.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: u.page_errors.append(str(e)))
    u.open()
    yield u
    context.close()


def _only(service: Service) -> Experiment:
    exps = list(service.experiments.config.experiments.values())
    assert len(exps) == 1, exps
    return exps[0]


def test_page_loads_without_console_errors_and_shows_the_built_in_layers(
        ui: Ui, base_url: str) -> None:
    for name in ("recall", "rank", "rule", "display", "launch"):
        expect(ui.by(f"layer-{name}")).to_be_visible()
        expect(ui.by(f"layer-used-{name}")).to_have_text("0% used (0/1000)")
    expect(ui.by("admin-key")).to_have_value("dev-admin-key")  # dev mode pre-fills it
    options = ui.by("v-stage-1").locator("option").all_text_contents()
    assert "r_rrf" in options and not any("@" in o for o in options)
    assert ui.by("new-layer").locator("option").count() == 4  # launch is not pickable
    paths = httpx.get(f"{base_url}/openapi.json").json()["paths"]
    assert "/experiments" not in paths and "/v1/experiments" in paths
    js = httpx.get(f"{base_url}/static/experiments.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    ui.page.wait_for_timeout(200)  # let late console messages arrive
    assert ui.console_errors == [], ui.console_errors
    ui.no_script_errors()


def test_config_json_cannot_close_its_script_element() -> None:
    out = json_for_script({"x": "</script><!--<script>&"})
    assert "<" not in out and ">" not in out and "&" not in out
    assert '"\\u003c/script\\u003e' in out


def test_create_through_the_form_runs_it_and_fills_the_layer_bar(
        ui: Ui, service: Service) -> None:
    ui.create("rrf <b>fusion</b>", 30, start=True)
    expect(ui.by("notice")).to_contain_text("Created experiment #")
    exp = _only(service)
    assert (exp.status, exp.size, exp.layer) == ("running", 300, "recall")
    assert [v.stage_id for v in exp.variants] == ["r_default", "r_rrf"]
    assert {s.value for s in exp.scenes} == {"guess_you_like", "feed"}
    row = ui.by(f"exp-row-{exp.id}")
    expect(ui.by(f"exp-status-{exp.id}")).to_have_text("running")
    expect(ui.by(f"exp-traffic-{exp.id}")).to_have_text("30%")
    expect(ui.by(f"exp-name-{exp.id}")).to_have_text("rrf <b>fusion</b>")  # text, not markup
    assert row.locator("b").count() == 0
    expect(ui.by("layer-used-recall")).to_have_text("30% used (300/1000)")
    seg = ui.by(f"seg-recall-{exp.id}")
    expect(seg).to_contain_text(f"#{exp.id}")
    bar = ui.by("bar-recall").bounding_box()
    box = seg.bounding_box()
    assert bar and box and box["width"] / bar["width"] == pytest.approx(0.3, abs=0.01)
    expect(ui.by("notice")).to_contain_text(f"Created experiment #{exp.id} rrf")
    ui.no_script_errors()


def test_an_overlapping_or_invalid_create_shows_the_error_and_creates_nothing(
        ui: Ui, service: Service) -> None:
    service.experiments.create({"name": "first", "layer": "recall", "variants": AB,
                                "scenes": ["guess_you_like", "feed"], "status": "running"},
                               "test", 30)
    ui.by("reload").click()
    expect(ui.by("layer-used-recall")).to_have_text("30% used (300/1000)")
    ui.create("second", 80, start=True)
    box = ui.by("error-box")
    expect(box).to_be_visible()
    expect(box).to_contain_text("HTTP 422")
    expect(box.get_by_test_id("error-detail")).to_have_attribute("data-field", "percent")
    expect(box).to_contain_text("only 70% free")
    ui.create("third", 10, start=False, variant=("Not A Name", "r_rrf"))
    expect(box.get_by_test_id("error-detail")).to_have_attribute("data-field",
                                                                  "variants.1.name")
    assert [e.name for e in service.experiments.config.experiments.values()] == ["first"]
    assert ui.page.locator("#experiment-rows tr").count() == 1
    ui.no_script_errors()


def test_start_traffic_and_stop_buttons_change_the_server_and_the_audit_lists_them(
        ui: Ui, service: Service) -> None:
    ui.by("actor").fill("alice")
    ui.create("draft one", 20, start=False)
    expect(ui.by("notice")).to_contain_text("Created experiment #")
    exp = _only(service)
    expect(ui.by(f"exp-status-{exp.id}")).to_have_text("draft")
    assert (exp.status, exp.size) == ("draft", 200)

    ui.by(f"start-{exp.id}").click()
    expect(ui.by(f"exp-status-{exp.id}")).to_have_text("running")
    assert _only(service).status == "running"

    ui.by(f"traffic-input-{exp.id}").fill("45")
    ui.by(f"traffic-set-{exp.id}").click()
    expect(ui.by(f"exp-traffic-{exp.id}")).to_have_text("45%")
    assert _only(service).size == 450
    expect(ui.by("layer-used-recall")).to_have_text("45% used (450/1000)")

    ui.by(f"stop-{exp.id}").click()
    expect(ui.by(f"exp-status-{exp.id}")).to_have_text("stopped")
    assert _only(service).status == "stopped"
    expect(ui.by("layer-used-recall")).to_have_text("0% used (0/1000)")  # stopped frees it

    ui.by(f"audit-{exp.id}").click()
    rows = ui.by("audit-panel").get_by_test_id("audit-row")
    expect(rows).to_have_count(4)
    actions = [rows.nth(i).get_attribute("data-action") for i in range(4)]
    assert actions[::-1] == ["create", "start", "traffic", "stop"]
    expect(rows.first).to_contain_text("admin:alice")
    expect(rows.first).to_contain_text("status")  # the change, before → after
    ui.no_script_errors()


def test_without_the_admin_key_a_create_shows_the_401(ui: Ui, service: Service) -> None:
    ui.by("admin-key").fill("")
    ui.create("no key", 10, start=True)
    box = ui.by("error-box")
    expect(box).to_contain_text("HTTP 401")
    expect(box.get_by_test_id("error-detail")).to_have_text("X-API-Key: admin key required")
    assert service.experiments.config.experiments == {}
    ui.open()  # the emptied key is kept for the session, not re-filled
    expect(ui.by("admin-key")).to_have_value("")
    ui.no_script_errors()


def test_edit_renames_and_whitelists_a_unit(ui: Ui, service: Service) -> None:
    exp = service.experiments.create({"name": "before", "layer": "recall", "variants": AB,
                                      "scenes": ["guess_you_like"]}, "test", 10)
    ui.by("reload").click()
    ui.by(f"edit-{exp.id}").click()
    expect(ui.by("edit-name")).to_have_value("before")
    ui.by("edit-name").fill("after")
    ui.by("edit-description").fill("rrf for testers")
    ui.by("add-whitelist").click()
    ui.by("wl-unit-0").fill("u42")
    ui.by("wl-variant-0").select_option("rrf")
    ui.by("edit-save").click()
    expect(ui.by(f"exp-name-{exp.id}")).to_have_text("after")
    got = _only(service)
    assert (got.name, got.description, got.whitelist) == ("after", "rrf for testers",
                                                          {"u42": "rrf"})
    ui.no_script_errors()


def test_the_report_shows_the_numbers_of_the_report_api(
        ui: Ui, service: Service, data_dir: Path, base_url: str) -> None:
    exp = service.experiments.create({"name": "seeded", "layer": "recall", "variants": AB,
                                      "scenes": ["guess_you_like", "feed"],
                                      "status": "running"}, "test", 100)
    # Playwright's sync API keeps an event loop on this thread; the simulator needs its own
    with ThreadPoolExecutor(1) as pool:
        pool.submit(simulate, service, data_dir / "generated", NOW - 86400, 0.3, 300,
                    3).result()
    service.exposures.flush()
    want = httpx.get(f"{base_url}/v1/experiments/{exp.id}/report").json()
    assert sum(v["exposures"] for v in want["variants"].values()) > 0, "no traffic seeded"

    ui.by("reload").click()
    ui.by(f"report-{exp.id}").click()
    panel = ui.by("report-panel")
    expect(panel).to_be_visible()
    for name, m in want["variants"].items():
        row = ui.by(f"report-row-{name}")
        for col in ("units", "exposures", "clicks", "conversions"):
            text = row.locator(f'[data-col="{col}"]').text_content()
            assert text is not None and float(text) == m[col], (name, col, text, m[col])
    lifts = want["lifts"]["rrf"]
    expect(ui.by("report-lifts").locator("tbody tr")).to_have_count(len(lifts))
    expect(ui.by("sig-rrf-ctr")).to_have_attribute(
        "data-significant", str(lifts["ctr"]["significant"]).lower())
    srm = ui.by("report-srm")
    expect(srm).to_have_attribute("data-flagged", str(want["srm"]["flagged"]).lower())
    expect(srm).to_contain_text("Sample ratio")
    expect(ui.by("report-warnings").locator("li")).to_have_count(max(1, len(want["warnings"])))
    ui.no_script_errors()
