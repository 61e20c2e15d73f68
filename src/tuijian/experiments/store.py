"""Where experiments live: SQLite on the embedded default, PostgreSQL when configured.

Every change is one transaction that reads the whole configuration, applies the change,
validates the result as a whole, writes the rows that changed, appends an audit entry per
changed record (before / after, so each version can be recovered) and bumps a revision
number. Serving processes poll that number (one indexed read) to pick up changes within
seconds. Records are stored as JSON bodies: the schema of an experiment belongs to the
pydantic model, not to two SQL dialects.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson
from pydantic import BaseModel

from tuijian.experiments.model import Domain, Experiment, ExperimentConfig, Layer

_TABLES: dict[str, type[BaseModel]] = {"domains": Domain, "layers": Layer,
                                      "experiments": Experiment}
_KEY = {"domains": "name", "layers": "name", "experiments": "id"}


@dataclass(slots=True, frozen=True)
class AuditEntry:
    id: int
    ts: float
    actor: str
    action: str
    entity: str  # domains | layers | experiments
    entity_id: str
    version: int
    before: dict[str, Any] | None
    after: dict[str, Any] | None


# A change: given a mutable copy of the configuration, mutate it and return the action name.
Change = Callable[[ExperimentConfig], str]


class ExperimentStore(Protocol):
    def revision(self) -> int: ...

    def load(self) -> tuple[int, ExperimentConfig]: ...

    def change(self, fn: Change, actor: str,
               validate: Callable[[ExperimentConfig], None]) -> ExperimentConfig: ...

    def next_id(self) -> int: ...

    def audit(self, entity: str | None = None, entity_id: str | None = None,
              limit: int = 200) -> list[AuditEntry]: ...

    def close(self) -> None: ...


_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS exp_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS exp_domains (name TEXT PRIMARY KEY, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS exp_layers (name TEXT PRIMARY KEY, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS exp_experiments (id BIGINT PRIMARY KEY, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS exp_audit (id {serial}, ts DOUBLE PRECISION NOT NULL, "
    "actor TEXT NOT NULL, action TEXT NOT NULL, entity TEXT NOT NULL, entity_id TEXT NOT NULL, "
    "version BIGINT NOT NULL, before TEXT, after TEXT)",
    "CREATE INDEX IF NOT EXISTS exp_audit_entity ON exp_audit (entity, entity_id)",
]


class SqlExperimentStore:
    """The store over a DB-API connection; `url` is `sqlite:///path` or `postgresql://…`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.RLock()  # one connection, shared by the API's threads
        self._in_tx = False
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn: Any = sqlite3.connect(path, check_same_thread=False,
                                              isolation_level=None, timeout=10)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._pg = False
            serial = "INTEGER PRIMARY KEY AUTOINCREMENT"
        elif url.startswith(("postgresql://", "postgres://")):
            import psycopg

            self._conn = psycopg.connect(url, autocommit=True)
            self._pg = True
            serial = "BIGSERIAL PRIMARY KEY"
        else:
            raise ValueError(f"experiments store: unsupported URL {url!r} "
                             "(expected sqlite:///PATH or postgresql://…)")
        with self._tx(lock=False):  # the revision row to lock may not exist yet
            for stmt in _SCHEMA:
                self._exec(stmt.format(serial=serial))
            for key in ("revision", "next_id"):
                self._exec("INSERT INTO exp_meta (key, value) VALUES (?, 0) "
                           "ON CONFLICT (key) DO NOTHING", (key,))

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        if self._pg:
            sql = sql.replace("?", "%s")
        return self._conn.execute(sql, args)

    @contextmanager
    def _tx(self, lock: bool = True) -> Iterator[None]:
        """One writer at a time, across processes: SQLite's BEGIN IMMEDIATE takes the write
        lock up front; PostgreSQL locks the revision row."""
        with self._lock:
            if self._in_tx:  # nested (an id allocated inside a change): the outer one commits
                yield
                return
            self._exec("BEGIN" if self._pg else "BEGIN IMMEDIATE")
            self._in_tx = True
            try:
                if self._pg and lock:
                    self._exec("SELECT value FROM exp_meta WHERE key = 'revision' FOR UPDATE")
                yield
            except BaseException:
                self._exec("ROLLBACK")
                raise
            else:
                self._exec("COMMIT")
            finally:
                self._in_tx = False

    def revision(self) -> int:
        with self._lock:
            row = self._exec("SELECT value FROM exp_meta WHERE key = 'revision'").fetchone()
        return int(row[0])

    def load(self) -> tuple[int, ExperimentConfig]:
        with self._lock:
            return self._read()

    def _read(self) -> tuple[int, ExperimentConfig]:
        rev = int(self._exec("SELECT value FROM exp_meta WHERE key = 'revision'").fetchone()[0])
        config = ExperimentConfig()
        for table, model in _TABLES.items():
            target: dict[Any, Any] = getattr(config, table)
            for (body,) in self._exec(f"SELECT body FROM exp_{table}").fetchall():
                record = model.model_validate(orjson.loads(body))
                target[getattr(record, _KEY[table])] = record
        return rev, config

    def next_id(self) -> int:
        """A new experiment id, never reused (events keep old ids forever); inside a change
        it is part of that change's transaction."""
        with self._tx():
            self._exec("UPDATE exp_meta SET value = value + 1 WHERE key = 'next_id'")
            return int(self._exec(
                "SELECT value FROM exp_meta WHERE key = 'next_id'").fetchone()[0])

    def change(self, fn: Change, actor: str,
               validate: Callable[[ExperimentConfig], None]) -> ExperimentConfig:
        """Apply `fn` to the current configuration; validate the result, write what changed
        and audit it, or change nothing if `fn` or `validate` raises."""
        with self._tx():
            rev, before = self._read()
            after = before.copy()
            action = fn(after)
            validate(after)
            now = time.time()
            for table in _TABLES:
                old: dict[Any, BaseModel] = getattr(before, table)
                new: dict[Any, BaseModel] = getattr(after, table)
                for key in sorted(set(old) | set(new), key=str):
                    a, b = old.get(key), new.get(key)
                    if a is not None and b is not None and a == b:
                        continue
                    self._write(table, key, a, b, actor, action, now)
            self._exec("UPDATE exp_meta SET value = ? WHERE key = 'revision'", (rev + 1,))
        return after

    def _write(self, table: str, key: Any, before: BaseModel | None, after: BaseModel | None,
               actor: str, action: str, now: float) -> None:
        col = _KEY[table]
        if after is None:
            self._exec(f"DELETE FROM exp_{table} WHERE {col} = ?", (key,))
        else:
            body = after.model_dump_json()
            self._exec(f"INSERT INTO exp_{table} ({col}, body) VALUES (?, ?) ON CONFLICT ({col}) "
                       "DO UPDATE SET body = excluded.body", (key, body))
        version = int(getattr(after or before, "version", 0))
        self._exec(
            "INSERT INTO exp_audit (ts, actor, action, entity, entity_id, version, before, "
            "after) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (now, actor, action, table, str(key), version,
             before.model_dump_json() if before is not None else None,
             after.model_dump_json() if after is not None else None))

    def audit(self, entity: str | None = None, entity_id: str | None = None,
              limit: int = 200) -> list[AuditEntry]:
        where, args = [], []
        if entity is not None:
            where.append("entity = ?")
            args.append(entity)
        if entity_id is not None:
            where.append("entity_id = ?")
            args.append(entity_id)
        sql = ("SELECT id, ts, actor, action, entity, entity_id, version, before, after "
               "FROM exp_audit" + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY id DESC LIMIT ?")
        with self._lock:
            rows = self._exec(sql, (*args, limit)).fetchall()
        return [AuditEntry(int(r[0]), float(r[1]), r[2], r[3], r[4], r[5], int(r[6]),
                           orjson.loads(r[7]) if r[7] else None,
                           orjson.loads(r[8]) if r[8] else None) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._conn.close()
