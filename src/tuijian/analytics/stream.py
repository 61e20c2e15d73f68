"""Real-time effect data: each durable batch of events folded into minute buckets.

The stream runs the offline cube's own facts SQL over each batch (DuckDB over an Arrow table of
the batch), so a dimension means the same thing in both and a closed hour's numbers agree
exactly. Buckets are keyed by event time: a late click lands in the minute it happened. Unique
users and dwell medians are kept as lists per bucket and merged exactly; buckets older than
the retention are dropped.

The log's listener only queues a batch (the append it rides on acknowledges events); the
queue is folded by the server's background loop every few seconds and before every query.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import duckdb
import pyarrow as pa

from tuijian.analytics.cube import DIMENSIONS, MEASURES, facts_sql
from tuijian.analytics.funnel import ITEMS_VIEW, FunnelQuery, finish_rows, items_table, where_sql
from tuijian.data.items import ItemFeatureCenter
from tuijian.domain import Event

FOLD_AT = 50_000
_SCHEMA = pa.schema([
    ("event_id", pa.string()), ("type", pa.string()), ("user_id", pa.string()),
    ("item_id", pa.int64()), ("ts", pa.float64()), ("subtype", pa.string()),
    ("dwell_s", pa.float64()), ("exposure_id", pa.string()), ("scene", pa.string()),
    ("recall_id", pa.string()), ("rank_id", pa.string()), ("rule_id", pa.string()),
    ("display_id", pa.string()), ("position", pa.int32()), ("source", pa.string()),
    ("platform", pa.string()), ("creative", pa.string()),
    ("experiments", pa.list_(pa.string())), ("slot", pa.string()), ("pctr", pa.float64()),
])


class MinuteCube:
    def __init__(self, items: ItemFeatureCenter, experiment_layers: Callable[[], dict[int, str]],
                 retention_h: float = 48.0, clock: Callable[[], float] = time.time) -> None:
        self.items, self.experiment_layers = items, experiment_layers
        self.retention_s, self.clock = retention_h * 3600, clock
        self._con = duckdb.connect()
        self._lock = threading.Lock()  # a DuckDB connection serves one thread at a time
        self._ready = False
        self._queue: list[Event] = []
        self._queue_lock = threading.Lock()
        self.folded = 0

    def enqueue(self, events: list[Event]) -> None:
        """Queue a batch of stored events (an EventLog listener: costs a list extend). A
        process whose loop never folds (a simulation, a batch job) folds here every
        FOLD_AT events instead of holding them all."""
        with self._queue_lock:
            self._queue.extend(events)
            full = len(self._queue) >= FOLD_AT
        if full:
            self.fold()

    def fold(self) -> int:
        """Fold the queued events into their buckets; returns how many."""
        with self._lock:
            with self._queue_lock:
                events, self._queue = self._queue, []
            if not events:
                return 0
            batch = pa.Table.from_pylist([{f.name: getattr(ev, f.name) for f in _SCHEMA}
                                          for ev in events], schema=_SCHEMA)
            self._con.register("stream_batch", batch)
            self._add("stream_batch")
            self._con.unregister("stream_batch")
            self.folded += len(events)
            return len(events)

    def load(self, events_sql: str) -> None:
        """Fill the buckets from the log at start-up: the retention window's events."""
        with self._lock:
            self._add(f"(SELECT * FROM {events_sql} "
                      f"WHERE ts >= {self.clock() - self.retention_s!r})")

    def _add(self, events: str) -> None:
        facts = facts_sql(events, f"SELECT * FROM {ITEMS_VIEW}", self.experiment_layers())
        dims = ", ".join(d.name for d in DIMENSIONS)
        kept = ", ".join(f"{m.bucket_sql or m.sql} AS {m.name}" for m in MEASURES)
        sql = (f"SELECT CAST(floor(ts / 60) * 60 AS BIGINT) AS minute, {dims}, {kept} "
               f"FROM ({facts}) GROUP BY ALL")
        self._con.register(ITEMS_VIEW, items_table(self.items))
        if self._ready:
            self._con.execute(f"INSERT INTO buckets BY NAME {sql}")
        else:
            self._con.execute(f"CREATE TABLE buckets AS {sql}")
            self._ready = True

    def evict(self) -> int:
        """Drop buckets past the retention; returns how many."""
        cutoff = int(self.clock() - self.retention_s)
        with self._lock:
            if not self._ready:
                return 0
            return int(self._con.execute("DELETE FROM buckets WHERE minute < ?",
                                         [cutoff]).fetchall()[0][0])

    def funnel(self, q: FunnelQuery) -> list[dict[str, Any]]:
        """As `funnel.funnel` answers, from the buckets (time ranges at minute precision)."""
        self.fold()
        merged = ", ".join(f"{m.merge_sql or f'sum({m.name})'} AS {m.name}" for m in MEASURES)
        where = where_sql(q, "minute")
        cols = ", ".join(q.dims)
        sql = (f"SELECT {cols + ', ' if cols else ''}{merged} FROM buckets "
               f"{'WHERE ' + where if where else ''} {'GROUP BY ' + cols if cols else ''} "
               f"ORDER BY exposures DESC{', ' + cols if cols else ''}")
        with self._lock:
            if not self._ready:
                return []
            rel = self._con.sql(sql)
            names, rows = rel.columns, rel.fetchall()
        return finish_rows(names, rows)
