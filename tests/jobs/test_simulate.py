"""Simulated traffic through the real pipeline leaves real, joinable events behind."""

import duckdb
import pyarrow.parquet as pq

from tuijian.config import Settings
from tuijian.jobs.engine import DuckDBEngine
from tuijian.jobs.join import join
from tuijian.jobs.simulate import simulate
from tuijian.serving.service import Service

from ..conftest import NOW


def test_simulation_logs_events_that_join_and_restore(service: Service) -> None:
    data = service.settings.data_dir
    s = simulate(service, data / "generated", NOW - 86400, 1.0, 400, seed=3)
    assert s.requests == 400 and s.exposures == 4000
    assert 0.01 < s.ctr < 0.2
    clicks = service.store.column("clicks").sum()
    assert clicks == s.clicks
    truth = pq.read_table(next((data / "sim").glob("truth-*.parquet")))
    assert truth.num_rows == s.exposures
    assert truth.column("clicked").to_numpy().sum() == s.clicks
    out = join(DuckDBEngine.over_log(service.log.root), data / "samples")
    assert out["samples"] == s.exposures and out["unmatched_clicks"] == 0
    got = duckdb.sql(f"SELECT sum(click), sum(convert) FROM '{out['path']}'").fetchall()[0]
    assert got == (s.clicks, s.conversions)
    live_cf = service.item_cf_realtime.stats()
    service.close()
    # a restart rebuilds counters, profiles and real-time item-CF from the log alone
    again = Service(Settings(data_dir=data), now=NOW)
    try:
        assert again.store.column("clicks").sum() == s.clicks
        assert again.store.column("exposures").sum() == s.exposures
        assert len(again.profiles.active_users()) > 0
        assert again.item_cf_realtime.stats()["pairs"] == live_cf["pairs"]
    finally:
        again.close()
