"""Real-time effect data: minute buckets folded from the event log's listener agree exactly
with the offline cube for a closed hour, survive a restart, and drop what is past retention."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuijian.analytics import monitor, stream
from tuijian.analytics.build import build_cube
from tuijian.analytics.funnel import FunnelQuery, items_table
from tuijian.config import Settings
from tuijian.jobs.engine import DuckDBEngine
from tuijian.jobs.simulate import simulate
from tuijian.serving.service import Service

from ..conftest import NOW
from .conftest import START

DIMS = [["slot", "platform"], ["exp_recall", "source"], ["line", "city"], ["hour"], []]


def _closed_hour(service: Service) -> tuple[float, float]:
    h = (int(START) // 3600 + 6) * 3600
    return float(h), float(h + 3600)


def test_a_closed_hour_agrees_exactly_with_the_offline_cube(traffic: Service) -> None:
    start, end = _closed_hour(traffic)
    assert traffic.stream.fold() > 0  # the listener only queued them
    assert traffic.stream.folded == len(traffic.log)  # every stored event was folded
    build_cube(DuckDBEngine(traffic.log.relation_sql()), traffic.cube,
               items_table(traffic.store), traffic.experiment_layers(), until=NOW + 1)
    for dims in DIMS:
        q = FunnelQuery(dims, start=start, end=end)
        offline = traffic.funnel(q)
        assert offline and sum(r["clicks"] for r in offline) > 0
        assert traffic.stream.funnel(q) == offline, dims  # users and medians included
    q = FunnelQuery(["platform"], {"scene": ["feed"]}, start, end)
    assert traffic.stream.funnel(q) == traffic.funnel(q)


def test_buckets_are_refilled_from_the_log_after_a_restart(traffic: Service,
                                                           data_dir: Path) -> None:
    start, end = _closed_hour(traffic)
    q = FunnelQuery(["slot"], start=start, end=end)
    before = traffic.stream.funnel(q)
    traffic.close()
    again = Service(Settings(data_dir=data_dir), now=NOW)
    try:
        assert again.stream.funnel(q) == before
        assert again.stream.funnel(FunnelQuery([]))[0]["exposures"] == sum(
            r["exposures"] for r in again.funnel(FunnelQuery(["slot"])))
        again.stream.retention_s = NOW - end + 1  # everything before `end` is now too old
        assert again.stream.evict() > 0
        assert again.stream.funnel(q) == []
    finally:
        again.close()


def test_the_realtime_endpoint(traffic: Service) -> None:
    from fastapi.testclient import TestClient

    from tuijian.serving.api import create_app

    start, end = _closed_hour(traffic)
    with TestClient(create_app(traffic, rebuild=False)) as client:
        params = {"dims": "slot", "from": str(start), "to": str(end)}
        live = client.get("/v1/analytics/funnel", params={**params, "source": "realtime"})
        assert live.status_code == 200
        assert live.json() == client.get("/v1/analytics/funnel", params=params).json()
        bad = client.get("/v1/analytics/funnel", params={"source": "yesterday"})
        assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "source"


def test_a_process_that_never_folds_still_holds_few_events(
        service: Service, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a simulation or a batch job runs no background loop: the listeners fold as they go
    monkeypatch.setattr(stream, "FOLD_AT", 500)
    monkeypatch.setattr(monitor, "SETTLE_AT", 500)
    simulate(service, data_dir / "generated", START, 1.0, 300, seed=2)
    service.exposures.flush()
    stored = len(service.log)
    assert stored > 1000 and service.stream.folded >= stored - 500
    assert service.monitor.queued < 500
    assert service.stream.folded + service.stream.fold() == stored
