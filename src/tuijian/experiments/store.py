"""Where experiments live: SQLite on the embedded default, PostgreSQL when configured.

Every change is one transaction (data/metadb.py) that reads the whole configuration, applies
the change, validates the result as a whole, writes the rows that changed, appends an audit
entry per changed record and bumps the revision serving processes poll. Records are stored as
JSON bodies: the schema of an experiment belongs to the pydantic model, not to two SQL dialects.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import orjson
from pydantic import BaseModel

from tuijian.data.metadb import AuditEntry, MetaDB
from tuijian.experiments.model import Domain, Experiment, ExperimentConfig, Layer

_TABLES: dict[str, type[BaseModel]] = {"domains": Domain, "layers": Layer,
                                      "experiments": Experiment}
_KEY = {"domains": "name", "layers": "name", "experiments": "id"}

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
    "CREATE TABLE IF NOT EXISTS exp_domains (name TEXT PRIMARY KEY, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS exp_layers (name TEXT PRIMARY KEY, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS exp_experiments (id BIGINT PRIMARY KEY, body TEXT NOT NULL)",
]


class SqlExperimentStore:
    """The store over a metadata database; `url` is `sqlite:///path` or `postgresql://…`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.db = MetaDB(url, "exp", _SCHEMA, counters=("revision", "next_id"))

    def revision(self) -> int:
        return self.db.revision()

    def load(self) -> tuple[int, ExperimentConfig]:
        return self._read()

    def _read(self) -> tuple[int, ExperimentConfig]:
        rev = self.db.revision()
        config = ExperimentConfig()
        for table, model in _TABLES.items():
            target: dict[Any, Any] = getattr(config, table)
            for (body,) in self.db.rows(f"SELECT body FROM exp_{table}"):
                record = model.model_validate(orjson.loads(body))
                target[getattr(record, _KEY[table])] = record
        return rev, config

    def next_id(self) -> int:
        """A new experiment id, never reused (events keep old ids forever); inside a change
        it is part of that change's transaction."""
        return self.db.bump("next_id")

    def change(self, fn: Change, actor: str,
               validate: Callable[[ExperimentConfig], None]) -> ExperimentConfig:
        """Apply `fn` to the current configuration; validate the result, write what changed
        and audit it, or change nothing if `fn` or `validate` raises."""
        with self.db.tx():
            _, before = self._read()
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
            self.db.bump()
        return after

    def _write(self, table: str, key: Any, before: BaseModel | None, after: BaseModel | None,
               actor: str, action: str, now: float) -> None:
        col = _KEY[table]
        if after is None:
            self.db.exec(f"DELETE FROM exp_{table} WHERE {col} = ?", (key,))
        else:
            self.db.exec(f"INSERT INTO exp_{table} ({col}, body) VALUES (?, ?) ON CONFLICT "
                         f"({col}) DO UPDATE SET body = excluded.body",
                         (key, after.model_dump_json()))
        version = int(getattr(after or before, "version", 0))
        self.db.record(now, actor, action, table, str(key), version,
                       None if before is None else before.model_dump(mode="json"),
                       None if after is None else after.model_dump(mode="json"))

    def audit(self, entity: str | None = None, entity_id: str | None = None,
              limit: int = 200) -> list[AuditEntry]:
        return self.db.audit(entity, entity_id, limit)

    def close(self) -> None:
        self.db.close()
