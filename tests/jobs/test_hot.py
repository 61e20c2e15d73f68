"""The hot job's recent counters drive the hot lists once the service loads them."""

from __future__ import annotations

from tuijian.data.eventlog import EventLog
from tuijian.domain import Event
from tuijian.jobs.base import JobContext
from tuijian.jobs.engine import DuckDBEngine
from tuijian.jobs.hot import HotJob, RecentStats
from tuijian.serving.service import Service

from ..conftest import NOW

DAY = 86_400.0


def test_recent_clicks_lift_an_item_and_old_ones_do_not(service: Service) -> None:
    data = service.settings.data_dir
    ids = service.store.column("item_id")
    fresh, stale = int(ids[100]), int(ids[101])
    rows = []
    for u in range(5):  # five visitors saw and clicked `fresh` yesterday, `stale` a month ago
        for item, ts in ((fresh, NOW - DAY), (stale, NOW - 30 * DAY)):
            rows += [Event(f"x{u}{item}", "exposure", f"v{u}", item, ts, exposure_id=f"l{u}{item}",
                           position=5),
                     Event(f"c{u}{item}", "click", f"v{u}", item, ts + 5,
                           exposure_id=f"l{u}{item}", position=5)]
    with EventLog(data / "hotlog") as log:
        log.append(rows)
    artifact = HotJob().run(JobContext(data, DuckDBEngine.over_log(data / "hotlog"), NOW))
    stats = RecentStats.from_table(artifact.table("items"), service.store)
    assert stats.uv[100] == 5 and stats.clicks[100] == 5 and stats.pv[100] == 5
    assert stats.uv[101] == 0 and stats.pv[101] == 0  # outside the 7-day window
    before = service.catalog.index.hot[[100, 101]].copy()
    assert "hot" in service.reload_models()
    service.rebuild_index(NOW)
    after = service.catalog.index.hot[[100, 101]]
    assert after[0] > 2 * before[0]  # 5 clicks where position 5 predicts a fraction of one
    assert after[1] <= before[1] * 1.01
    # a new listing arriving must not switch the recent counters off for everyone else
    service.upsert_items([{"item_id": 9_100_001, "line": 0, "category": 0, "city": 0,
                           "district": 0, "title": "new", "refreshed_ts": int(NOW)}])
    service.rebuild_index(NOW)
    assert service.catalog.index.hot[100] == after[0]
