"""Tracking alarms: each fault planted in a simulated day's log fires its alarm, both in the
daily check and on the stream; the clean log raises none; /metrics and the API show them.

The clean day is simulated once through the real pipeline. Each test replays it, rewritten
with one fault, into a fresh service (its event log, stream buckets and monitor), exactly as
stored events reach them live. Invalid tracking params go through the real ingest path.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tuijian.analytics.alarms import Alarm, Thresholds
from tuijian.analytics.cube import last_closed_day, local_date
from tuijian.config import Settings
from tuijian.data.eventlog import COLUMNS
from tuijian.domain import Event, EventStatus
from tuijian.jobs.simulate import simulate
from tuijian.serving.api import create_app
from tuijian.serving.service import Service

from ..conftest import NOW

START = NOW - 86400
# the stream looks at the whole replayed day: a real one looks at the last hour
STREAM = Thresholds(window_s=2 * 86400, lag_s=0, baseline_s=86400, silence_s=4 * 3600,
                    grace_s=0)
Rewrite = Callable[[list[Event]], list[Event]]


@pytest.fixture(scope="module")
def clean(generated: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Event]:
    """A day of simulated traffic, as stored; exposures carry a calibrated click prediction
    (their scene and position's CTR in this log), as a well-calibrated model's would."""
    data = tmp_path_factory.mktemp("alarms") / "data"
    shutil.copytree(generated, data / "generated")
    svc = Service(Settings(data_dir=data), now=NOW)
    try:
        simulate(svc, data / "generated", START, 1.0, 1500, seed=4)
        svc.exposures.flush()
        cols, rows = svc.log.query("SELECT * FROM events ORDER BY ts, event_id")
    finally:
        svc.close()
    events = []
    for row in rows:
        rec = dict(zip(cols, row, strict=True))
        for c in ("features", "rules"):
            rec[c] = json.loads(rec[c]) if rec[c] is not None else None
        events.append(Event(**{c: rec[c] for c in COLUMNS}))
    shown = Counter((e.scene, e.position) for e in events if e.type == "exposure")
    clicked = Counter((e.scene, e.position) for e in events if e.type == "click")
    return [dataclasses.replace(e, pctr=clicked[(e.scene, e.position)] / shown[(e.scene,
                                                                               e.position)])
            if e.type == "exposure" else e for e in events]


@pytest.fixture
def fresh(data_dir: Path) -> Iterator[Service]:
    svc = Service(Settings(data_dir=data_dir), now=NOW, alarm_thresholds=STREAM)
    yield svc
    svc.close()


def _local_dates(events: list[Event]) -> list[dt.date]:
    return sorted({local_date(e.ts) for e in events} | {local_date(time.time())})


def _replay(service: Service, events: list[Event]) -> tuple[list[Alarm], list[Alarm]]:
    """Store the events as the live service would, then run both checks: (daily, stream)."""
    for i in range(0, len(events), 5000):
        service.log.append(events[i:i + 5000])
    daily = [a for d in _local_dates(events) for a in service.check_day(d)]
    return daily, service.monitor.check()


def _fired(alarms: list[Alarm]) -> set[tuple[str, str]]:
    return {(a.alarm, a.key) for a in alarms}


def test_a_clean_log_raises_no_alarm(fresh: Service, clean: list[Event]) -> None:
    daily, stream = _replay(fresh, clean)
    assert daily == [] and stream == []
    fresh.alarms.update("stream", stream)
    metrics = fresh.metrics.render().decode()
    for name in ("orphan_clicks", "invalid_tracking", "platform_ctr", "silent_source",
                 "model_drift"):
        assert f'tuijian_alarms_firing{{alarm="{name}"}} 0.0' in metrics


def test_lost_exposures_fire_orphan_clicks(fresh: Service, clean: list[Event]) -> None:
    # the ios client stops logging every fifth list it shows
    lists = sorted({e.exposure_id for e in clean if e.platform == "ios" and e.exposure_id})
    lost = set(lists[::5])
    daily, stream = _replay(fresh, [e for e in clean if not (
        e.type == "exposure" and e.exposure_id in lost)])
    assert _fired(daily) == _fired(stream) == {("orphan_clicks", "ios")}
    (a,) = stream
    clicks_ios = sum(1 for e in clean if e.type == "click" and e.platform == "ios")
    orphans = sum(1 for e in clean if e.type == "click" and e.exposure_id in lost)
    assert a.value == pytest.approx(orphans / clicks_ios) and a.scope == "stream"


def test_bad_tracking_params_fire_invalid_tracking(fresh: Service, clean: list[Event]) -> None:
    fresh.log.append(clean)
    clicks = [e for e in clean if e.type == "click"][:300]
    forged = [Event(f"forged-{i}", "click", e.user_id, e.item_id, e.ts,
                    tracking=(e.tracking or "")[:-4] + "AAAA") for i, e in enumerate(clicks)]
    missing = [Event(f"bare-{i}", "click", e.user_id, e.item_id, e.ts)
                for i, e in enumerate(clicks[:5])]
    results = fresh.ingest_sync(forged + missing)
    assert {r.status for r in results} == {EventStatus.QUARANTINED}
    today = _local_dates(clean)[-1]
    daily = fresh.check_day(today)
    stream = fresh.monitor.check()
    # five missing params are too few to alarm on; three hundred forged ones are not
    assert _fired(daily) == _fired(stream) == {("invalid_tracking", "tracking_signature")}


def test_a_platform_losing_its_clicks_in_one_slot_fires_platform_ctr(
        fresh: Service, clean: list[Event]) -> None:
    slot = Counter(e.slot for e in clean if e.type == "exposure" and e.platform == "ios"
                   ).most_common(1)[0][0]
    daily, stream = _replay(fresh, [e for e in clean if not (
        e.type != "exposure" and e.platform == "ios" and e.slot == slot)])
    assert _fired(daily) == _fired(stream) == {("platform_ctr", f"{slot}/ios")}
    assert stream[0].value == 0.0 and stream[0].severity == "critical"


def test_a_recall_source_going_silent_fires_silent_source(fresh: Service,
                                                          clean: list[Event]) -> None:
    # the largest source after the fallback returns nothing for the last six hours: the
    # others fill its places
    shares = Counter(e.source for e in clean if e.type == "exposure")
    dead = next(s for s, _ in shares.most_common() if s not in (None, "hot"))
    cut = NOW - 6 * 3600
    daily, stream = _replay(fresh, [
        dataclasses.replace(e, source="hot") if e.source == dead and e.ts >= cut else e
        for e in clean])
    assert _fired(daily) == _fired(stream) == {("silent_source", dead)}
    first = min(a.since for a in daily)
    assert cut - 3600 <= first <= cut + 3600  # the first silent hour


def test_predictions_drifting_from_clicks_fire_model_drift(fresh: Service,
                                                           clean: list[Event]) -> None:
    rank = Counter(e.rank_id for e in clean if e.type == "exposure").most_common(1)[0][0]
    daily, stream = _replay(fresh, [
        dataclasses.replace(e, pctr=min(1.0, 3 * e.pctr))
        if e.rank_id == rank and e.pctr is not None else e for e in clean])
    assert _fired(daily) == _fired(stream) == {("model_drift", rank)}
    assert 1 / 3.5 < stream[0].value < 1 / 2.5  # clicks over predicted clicks


def test_alarms_reach_the_api_the_metrics_and_the_daily_report(
        fresh: Service, clean: list[Event]) -> None:
    slot = Counter(e.slot for e in clean if e.type == "exposure" and e.platform == "ios"
                   ).most_common(1)[0][0]
    fresh.log.append([e for e in clean if not (
        e.type != "exposure" and e.platform == "ios" and e.slot == slot)])
    day = Counter(local_date(e.ts) for e in clean).most_common()[0][0]
    with TestClient(create_app(fresh, rebuild=False)) as client:
        assert client.get("/v1/analytics/alarms").json() == {"alarms": []}
        fired = client.get("/v1/analytics/alarms", params={"refresh": "true"}).json()["alarms"]
        assert [(a["scope"], a["alarm"], a["key"]) for a in fired] == [
            ("stream", "platform_ctr", f"{slot}/ios")]
        since = fired[0]["since"]
        again = client.get("/v1/analytics/alarms", params={"refresh": "true"}).json()
        assert again["alarms"][0]["since"] == since  # still the same alarm
        metrics = client.get("/metrics").text
        assert (f'tuijian_alarm_firing{{alarm="platform_ctr",key="{slot}/ios",'
                f'scope="stream"}} 1.0') in metrics
        assert 'tuijian_alarms_firing{alarm="platform_ctr"} 1.0' in metrics
        assert 'tuijian_alarms_raised_total{alarm="platform_ctr",scope="stream"} 1.0' in metrics
        by_day = client.get("/v1/analytics/alarms", params={"date": day.isoformat()}).json()
        assert ("platform_ctr", f"{slot}/ios") in {(a["alarm"], a["key"])
                                                  for a in by_day["alarms"]}
        report = client.get("/v1/analytics/daily",
                            params={"date": day.isoformat(), "format": "json"}).json()
        assert f"{slot}/ios" in {a["key"] for a in report["alarms"]}
        bad = client.get("/v1/analytics/alarms", params={"date": "yesterday"})
        assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "date"
        # once the fault is gone from the window, the alarm clears and its gauge goes
        fresh.monitor.t = Thresholds(window_s=60, lag_s=0)
        cleared = client.get("/v1/analytics/alarms", params={"refresh": "true"}).json()
        assert cleared == {"alarms": []}
        metrics = client.get("/metrics").text
        assert "tuijian_alarm_firing{" not in metrics
        assert 'tuijian_alarms_firing{alarm="platform_ctr"} 0.0' in metrics


def test_last_closed_day_is_yesterday_in_local_time() -> None:
    # 2026-11-20 17:00 UTC is 2026-11-21 01:00 in UTC+8
    t = dt.datetime(2026, 11, 20, 17, tzinfo=dt.UTC).timestamp()
    assert last_closed_day(t) == dt.date(2026, 11, 20)
