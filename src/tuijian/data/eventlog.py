"""The durable, idempotent event log: append-only JSON Lines segments queried with DuckDB.

An event is acknowledged only after its batch is written and fsynced, so a crash can lose only
unacknowledged events; at worst it leaves a torn last line, which the next open truncates.
Idempotency rests on an in-memory set of every stored event_id, rebuilt on open, so a client
retrying after a timeout cannot double-count an event. One process owns a root at a time
(enforced with a lock file): a second writer would have its own id set and could truncate the
first one's in-flight write as "torn".
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from tuijian.data.durable import fsync_dir
from tuijian.data.seen_ids import HALVES_SQL, SeenIds, digest
from tuijian.domain import Event

log = logging.getLogger(__name__)

# Explicit so that all-null columns (e.g. no dwell events yet) still get their real type.
COLUMNS: dict[str, str] = {
    "event_id": "VARCHAR",
    "type": "VARCHAR",
    "user_id": "VARCHAR",
    "item_id": "BIGINT",
    "ts": "DOUBLE",
    "tracking": "VARCHAR",
    "subtype": "VARCHAR",
    "dwell_s": "DOUBLE",
    "exposure_id": "VARCHAR",
    "scene": "VARCHAR",
    "recall_id": "VARCHAR",
    "rank_id": "VARCHAR",
    "rule_id": "VARCHAR",
    "display_id": "VARCHAR",
    "position": "INTEGER",
    "source": "VARCHAR",
    "platform": "VARCHAR",
    "sources": "BIGINT",
    "features": "JSON",
    "creative": "VARCHAR",
    "rules": "JSON",
    "experiments": "VARCHAR[]",
    "slot": "VARCHAR",
    "pctr": "DOUBLE",
}
# `code`: the fixed reason code (tracking_signature, unknown_item, …) the alarms count by;
# `delivery`: the stream position of a message the ingest worker quarantined, so a redelivered
# message is kept once
QUARANTINE_COLUMNS: dict[str, str] = {**COLUMNS, "reason": "VARCHAR", "quarantined_at": "DOUBLE",
                                      "code": "VARCHAR", "delivery": "VARCHAR"}

SEGMENT_GLOB = "events-*.jsonl"
QUARANTINE_FILE = "quarantine.jsonl"
# Numpy scalars are accepted because exposure rows are built from numpy candidate arrays.
_JSON_OPTS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _table_sql(files: Sequence[Path], columns: dict[str, str]) -> str:
    """A FROM-able expression over `files`, or a typed empty relation when there are none.

    ignore_errors plus the NOT NULL filter make a reader that races a writer skip the
    half-written last line (DuckDB yields it as an all-null row) instead of failing.
    """
    if not files:
        cols = ", ".join(f"CAST(NULL AS {t}) AS {c}" for c, t in columns.items())
        return f"(SELECT {cols} WHERE false)"
    paths = ", ".join(_sql_str(str(f)) for f in files)
    struct = ", ".join(f"{_sql_str(c)}: {_sql_str(t)}" for c, t in columns.items())
    return (
        f"(SELECT * FROM read_json([{paths}], format='newline_delimited', "
        f"columns={{{struct}}}, ignore_errors=true) WHERE event_id IS NOT NULL)"
    )


def _repair_tail(path: Path) -> None:
    """Truncate a partial trailing line: it belongs to a batch that was never acknowledged."""
    with path.open("r+b") as f:
        size = end = f.seek(0, os.SEEK_END)
        while end > 0:
            start = max(0, end - 65536)
            f.seek(start)
            nl = f.read(end - start).rfind(b"\n")
            if nl >= 0:
                end = start + nl + 1
                break
            end = start
        if end == size:
            return
        log.warning("event log %s: truncating %d bytes of torn trailing line", path, size - end)
        f.truncate(end)
        f.flush()
        os.fsync(f.fileno())


class EventLog:
    """Append-only event store under `root`, one segment per UTC day of writing.

    `clock` only decides the segment day and `quarantined_at`; tests inject it to cross days.
    """

    def __init__(self, root: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock = threading.Lock()
        self._db_lock = threading.Lock()
        self._closed = False
        self._broken = False
        self._lock_fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise RuntimeError(f"event log {self.root} is open in another process") from None
        # A tuple, replaced whole on rotation, so readers can snapshot it without the lock.
        self._segments: tuple[Path, ...] = tuple(sorted(self.root.glob(SEGMENT_GLOB)))
        self._quarantine_path = self.root / QUARANTINE_FILE
        for path in (*self._segments, self._quarantine_path):
            if path.exists():
                _repair_tail(path)
        self._db = duckdb.connect(":memory:")
        halves = self._db.sql(f"SELECT {HALVES_SQL} FROM {self.relation_sql()}").fetchnumpy()
        self._ids = SeenIds(halves["hi"], halves["lo"])
        self._quarantined = self._count_lines(self._quarantine_path)
        self._deliveries: set[str] = set(self._db.sql(
            f"SELECT delivery FROM {self.quarantine_sql()} WHERE delivery IS NOT NULL"
        ).fetchnumpy()["delivery"].tolist())
        self._day = ""
        self._fd = -1
        # called with each batch of newly stored events once it is durable, in append order
        # (the real-time effect data folds them); a failing listener never fails an append
        self.listeners: list[Callable[[list[Event]], None]] = []
        self._quarantine_fd = -1

    # -- writing -------------------------------------------------------------------------------

    def append(self, events: Sequence[Event]) -> list[bool]:
        """Store new events durably; per event, False means its event_id was already stored.

        The caller may acknowledge an event as soon as this returns: one write and one fsync
        cover the whole batch, which is what makes per-request batches cheap.
        """
        with self._lock:
            self._check_writable()
            fresh: set[bytes] = set()
            rows: list[bytes] = []
            stored: list[Event] = []
            result: list[bool] = []
            keys = [digest(ev.event_id) for ev in events]
            for ev, key, known in zip(events, keys, self._ids.seen(keys), strict=True):
                if known or key in fresh:
                    result.append(False)
                    continue
                fresh.add(key)
                rows.append(orjson.dumps(ev, option=_JSON_OPTS))
                stored.append(ev)
                result.append(True)
            if rows:
                self._write(self._segment_fd(), b"".join(rows))
                self._ids.add(fresh)
                for listener in self.listeners:
                    try:
                        listener(stored)
                    except Exception:
                        log.exception("event log listener failed; the events are stored")
            return result

    def quarantine(self, events: Sequence[Event], reasons: Sequence[str],
                   codes: Sequence[str | None] | None = None,
                   deliveries: Sequence[str | None] | None = None) -> None:
        """Keep rejected events with why they were rejected, so bad producers can be found.
        A stream delivery already quarantined (`deliveries`: broker positions) is skipped."""
        with self._lock:
            self._check_writable()
            rows = []
            fresh: set[str] = set()
            now = self._clock()
            n = len(events)
            for ev, reason, code, dv in zip(events, reasons, codes or [None] * n,
                                            deliveries or [None] * n, strict=True):
                if dv is not None:
                    if dv in self._deliveries or dv in fresh:
                        continue
                    fresh.add(dv)
                row: dict[str, Any] = {c: getattr(ev, c) for c in COLUMNS}
                row.update(reason=reason, quarantined_at=now, code=code, delivery=dv)
                rows.append(orjson.dumps(row, option=_JSON_OPTS))
            if not rows:
                return
            if self._quarantine_fd < 0:
                self._quarantine_fd = self._open_append(self._quarantine_path)
            self._write(self._quarantine_fd, b"".join(rows))
            self._deliveries.update(fresh)
            self._quarantined += len(rows)

    def _segment_fd(self) -> int:
        day = time.strftime("%Y%m%d", time.gmtime(self._clock()))
        if day != self._day:
            path = self.root / f"events-{day}.jsonl"
            fd = self._open_append(path)
            if self._fd >= 0:
                os.close(self._fd)
            self._fd, self._day = fd, day
            if path not in self._segments:
                self._segments = tuple(sorted((*self._segments, path)))
        return self._fd

    def _open_append(self, path: Path) -> int:
        existed = path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if not existed:
            fsync_dir(self.root)
        return fd

    def _write(self, fd: int, data: bytes) -> None:
        """Write and fsync all of `data`, or leave the file as it was.

        Rolling back a failed write keeps the file free of a torn line that the next batch
        would be glued onto; if even the rollback fails the log refuses further writes.
        """
        size = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            try:
                os.ftruncate(fd, size)
            except OSError:
                self._broken = True
            raise

    def _check_writable(self) -> None:
        if self._closed:
            raise ValueError("event log is closed")
        if self._broken:
            raise RuntimeError("event log has a torn write it could not roll back; reopen it")

    # -- reading -------------------------------------------------------------------------------

    def relation_sql(self) -> str:
        """The log as a SQL table expression, for embedding in larger queries.

        It lists the segments that exist now; a segment created later needs a fresh call.
        """
        return _table_sql(self._segments, COLUMNS)

    def quarantine_sql(self) -> str:
        """The quarantine as a SQL table expression: event columns plus reason, quarantined_at."""
        files = [self._quarantine_path] if self._quarantine_path.exists() else []
        return _table_sql(files, QUARANTINE_COLUMNS)

    def query(
        self, sql: str, params: Sequence[object] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run `sql` with the views `events` and `quarantine`; returns (columns, rows)."""
        with self._cursor() as cur:
            rel = cur.sql(sql, params=params)
            return list(rel.columns), rel.fetchall()

    def scan(
        self,
        start_ts: float | None = None,
        end_ts: float | None = None,
        types: Sequence[str] | None = None,
    ) -> pa.Table:
        """Events with start_ts <= ts < end_ts of the given types, in the order they were logged."""
        where = ["true"]
        params: list[object] = []
        if start_ts is not None:
            where.append("ts >= ?")
            params.append(start_ts)
        if end_ts is not None:
            where.append("ts < ?")
            params.append(end_ts)
        if types is not None:
            where.append("list_contains(?::VARCHAR[], type)")
            params.append(list(types))
        sql = f"SELECT * FROM {self.relation_sql()} WHERE {' AND '.join(where)}"
        with self._cursor() as cur:
            return cur.sql(sql, params=params).to_arrow_table()

    def quarantined(self) -> pa.Table:
        """All quarantined rows, oldest first."""
        with self._cursor() as cur:
            return cur.sql(f"SELECT * FROM {self.quarantine_sql()}").to_arrow_table()

    def quarantine_count(self) -> int:
        return self._quarantined

    def count(self) -> int:
        """Stored events; the id set mirrors the log exactly, so no file is read."""
        return len(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """A per-call DuckDB connection, since one connection must not be shared by threads."""
        if self._closed:
            raise ValueError("event log is closed")
        with self._db_lock:
            cur = self._db.cursor()
        cur.execute(f"CREATE TEMP VIEW events AS SELECT * FROM {self.relation_sql()}")
        cur.execute(f"CREATE TEMP VIEW quarantine AS SELECT * FROM {self.quarantine_sql()}")
        return cur

    @staticmethod
    def _count_lines(path: Path) -> int:
        if not path.exists():
            return 0
        with path.open("rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for fd in (self._fd, self._quarantine_fd):
                if fd >= 0:
                    os.close(fd)
            with self._db_lock:
                self._db.close()
            os.close(self._lock_fd)

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def snapshot_sql(root: Path) -> str:
    """The log under `root` as a SQL table expression, without opening (locking) it.

    For offline jobs that run beside a serving process, which owns the log's lock; a line
    being written as the job reads is skipped, as in `relation_sql`.
    """
    return _table_sql(sorted(Path(root).glob(SEGMENT_GLOB)), COLUMNS)


def quarantine_snapshot_sql(root: Path) -> str:
    """The quarantine under `root` as a SQL table expression, without opening the log."""
    path = Path(root) / QUARANTINE_FILE
    return _table_sql([path] if path.exists() else [], QUARANTINE_COLUMNS)
