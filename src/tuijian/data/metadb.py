"""What every SQL metadata store shares: a connection chosen by URL, one SQL text for both
dialects, one writer at a time, a revision number, and an audit log.

Strategies, experiments and model registry entries each keep their tables under their own
prefix (`PREFIX_meta`, `PREFIX_audit`, and their records) in one database: SQLite on the
embedded default, PostgreSQL when several processes must agree. A change is one transaction
that writes its records, appends an audit row per changed record (before / after, so every
version can be recovered) and bumps the prefix's revision, which serving processes poll (one
indexed read) to pick changes up within seconds.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson


@dataclass(slots=True, frozen=True)
class AuditEntry:
    id: int
    ts: float
    actor: str
    action: str
    entity: str  # what kind of record (experiments, recall, model, …)
    entity_id: str
    version: int
    before: dict[str, Any] | None
    after: dict[str, Any] | None


_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS {p}_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {p}_audit (id {serial}, ts DOUBLE PRECISION NOT NULL, "
    "actor TEXT NOT NULL, action TEXT NOT NULL, entity TEXT NOT NULL, entity_id TEXT NOT NULL, "
    "version BIGINT NOT NULL, before TEXT, after TEXT)",
    "CREATE INDEX IF NOT EXISTS {p}_audit_entity ON {p}_audit (entity, entity_id)",
]


class MetaDB:
    """One connection to the metadata database (`sqlite:///PATH` or `postgresql://…`) for one
    store's tables; `schema` statements may use `{p}` (the prefix) and `{serial}`."""

    def __init__(self, url: str, prefix: str, schema: Sequence[str] = (),
                 counters: Sequence[str] = ("revision",)) -> None:
        self.url, self.prefix = url, prefix
        self._lock = threading.RLock()  # one connection, shared by the API's threads
        self._in_tx = False
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn: Any = sqlite3.connect(path, check_same_thread=False,
                                              isolation_level=None, timeout=10)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self.pg = False
            serial = "INTEGER PRIMARY KEY AUTOINCREMENT"
        elif url.startswith(("postgresql://", "postgres://")):
            import psycopg

            self._conn = psycopg.connect(url, autocommit=True)
            self.pg = True
            serial = "BIGSERIAL PRIMARY KEY"
        else:
            raise ValueError(f"metadata store: unsupported URL {url!r} "
                             "(expected sqlite:///PATH or postgresql://…)")
        with self.tx(lock=False):  # the revision row to lock may not exist yet
            for stmt in (*_SCHEMA, *schema):
                self.exec(stmt.format(p=prefix, serial=serial))
            for key in counters:
                self.exec(f"INSERT INTO {prefix}_meta (key, value) VALUES (?, 0) "
                          "ON CONFLICT (key) DO NOTHING", (key,))

    def exec(self, sql: str, args: Sequence[Any] = ()) -> Any:
        """Run one statement written with `?` placeholders (psycopg wants `%s`)."""
        if self.pg:
            sql = sql.replace("?", "%s")
        with self._lock:
            return self._conn.execute(sql, tuple(args))

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return list(self.exec(sql, args).fetchall())

    @contextmanager
    def tx(self, lock: bool = True) -> Iterator[None]:
        """One writer at a time, across processes: SQLite's BEGIN IMMEDIATE takes the write
        lock up front; PostgreSQL locks this store's revision row, so two changes to the same
        store serialise (the second reads what the first wrote: no lost update)."""
        with self._lock:
            if self._in_tx:  # nested (an id allocated inside a change): the outer one commits
                yield
                return
            self.exec("BEGIN" if self.pg else "BEGIN IMMEDIATE")
            self._in_tx = True
            try:
                if self.pg and lock:
                    self.exec(f"SELECT value FROM {self.prefix}_meta WHERE key = 'revision' "
                              "FOR UPDATE")
                yield
            except BaseException:
                self.exec("ROLLBACK")
                raise
            else:
                self.exec("COMMIT")
            finally:
                self._in_tx = False

    def counter(self, key: str = "revision") -> int:
        row = self.rows(f"SELECT value FROM {self.prefix}_meta WHERE key = ?", (key,))
        return int(row[0][0])

    def bump(self, key: str = "revision") -> int:
        """Increment a counter inside the caller's transaction; returns the new value."""
        with self.tx():
            self.exec(f"UPDATE {self.prefix}_meta SET value = value + 1 WHERE key = ?", (key,))
            return self.counter(key)

    def revision(self) -> int:
        return self.counter("revision")

    def record(self, ts: float, actor: str, action: str, entity: str, entity_id: str,
               version: int, before: dict[str, Any] | None, after: dict[str, Any] | None
               ) -> None:
        """Append one audit row (inside the change's transaction)."""
        self.exec(
            f"INSERT INTO {self.prefix}_audit (ts, actor, action, entity, entity_id, version, "
            "before, after) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (ts, actor, action, entity, entity_id, version,
             None if before is None else orjson.dumps(before).decode(),
             None if after is None else orjson.dumps(after).decode()))

    def audit(self, entity: str | None = None, entity_id: str | None = None,
              limit: int = 200) -> list[AuditEntry]:
        """Audit rows, newest first, optionally of one kind of record or one record."""
        where, args = [], []
        if entity is not None:
            where.append("entity = ?")
            args.append(entity)
        if entity_id is not None:
            where.append("entity_id = ?")
            args.append(entity_id)
        sql = ("SELECT id, ts, actor, action, entity, entity_id, version, before, after "
               f"FROM {self.prefix}_audit" + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY id DESC LIMIT ?")
        return [AuditEntry(int(r[0]), float(r[1]), r[2], r[3], r[4], r[5], int(r[6]),
                           orjson.loads(r[7]) if r[7] else None,
                           orjson.loads(r[8]) if r[8] else None)
                for r in self.rows(sql, (*args, limit))]

    def close(self) -> None:
        with self._lock:
            self._conn.close()
