"""The rank model registry with its entries in the metadata database.

The model files stay where the directory registry puts them (ROOT/NAME/vNNNN, a shared volume
when several replicas serve; an object store later); what says which version is CURRENT, which
one serves and which were rejected (and why) lives in `model_versions` / `model_pointers`, so
every replica agrees on CURRENT, a rollback is one transaction with its audit row, and the
history of deploys and rollbacks is queryable. The directory registry stays the embedded
default: with no database configured, files alone need no second thing to keep in step.
"""

from __future__ import annotations

import time
from pathlib import Path

from tuijian.data.metadb import AuditEntry, MetaDB
from tuijian.rank.model_registry import (
    KEEP,
    ModelRegistry,
    RegistryError,
    Status,
    VersionEntry,
    rollback_target,
    version_number,
)

ENTITY = "model"
_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS model_versions (name TEXT NOT NULL, version TEXT NOT NULL, "
    "kind TEXT, objective TEXT, trained_at DOUBLE PRECISION, auc DOUBLE PRECISION, "
    "deployed_at DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL, rejected TEXT, "
    "PRIMARY KEY (name, version))",
    "CREATE TABLE IF NOT EXISTS model_pointers (name TEXT PRIMARY KEY, current TEXT, "
    "serving TEXT)",
]


class SqlModelRegistry(ModelRegistry):
    def __init__(self, root: Path, url: str, keep: int = KEEP) -> None:
        super().__init__(root, keep)
        self.db = MetaDB(url, "model", _SCHEMA)

    def names(self) -> list[str]:
        return [r[0] for r in self.db.rows("SELECT name FROM model_pointers ORDER BY name")]

    def versions(self, name: str) -> list[str]:
        rows = self.db.rows("SELECT version FROM model_versions WHERE name = ?", (name,))
        return sorted((r[0] for r in rows), key=version_number)

    def _pointer(self, name: str, column: str) -> str | None:
        rows = self.db.rows(f"SELECT {column} FROM model_pointers WHERE name = ?", (name,))
        return rows[0][0] if rows else None

    def current(self, name: str) -> str | None:
        return self._pointer(name, "current")

    def serving(self, name: str) -> str | None:
        return self._pointer(name, "serving")

    def rejection(self, name: str, version: str) -> str | None:
        rows = self.db.rows("SELECT rejected FROM model_versions WHERE name = ? AND version = ?",
                            (name, version))
        return rows[0][0] if rows else None

    def _register(self, name: str, version: str, actor: str) -> None:
        kind, objective, trained_at, auc = self._summary(self.path(name, version))
        now = time.time()
        with self.db.tx():
            before = self.current(name)
            self.db.exec(
                "INSERT INTO model_versions (name, version, kind, objective, trained_at, auc, "
                "deployed_at, actor) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name, version, kind, objective, trained_at, auc, now, actor))
            self._point(name, version, before, actor, "deploy", now)

    def _point(self, name: str, version: str, before: str | None, actor: str, action: str,
               now: float) -> None:
        """Move CURRENT (inside the caller's transaction), audited, revision bumped."""
        self.db.exec("INSERT INTO model_pointers (name, current) VALUES (?, ?) ON CONFLICT "
                     "(name) DO UPDATE SET current = excluded.current", (name, version))
        self.db.record(now, actor, action, ENTITY, name, version_number(version),
                       None if before is None else {"current": before}, {"current": version})
        self.db.bump()

    def rollback(self, name: str, to: str | None = None, actor: str = "cli") -> str:
        """One transaction: two concurrent rollbacks serialise, the second stepping back from
        where the first left CURRENT."""
        with self.db.tx():
            current = self.current(name)
            target = rollback_target(name, self.versions(name), current, to,
                                     lambda v: self.rejection(name, v))
            self._point(name, target, current, actor, "rollback", time.time())
        return target

    def reject(self, name: str, version: str, reason: str, actor: str = "loader") -> None:
        with self.db.tx():
            old = self.rejection(name, version)
            cur = self.db.exec("UPDATE model_versions SET rejected = ? WHERE name = ? AND "
                               "version = ?", (reason, name, version))
            if cur.rowcount == 0:
                raise RegistryError(f"{name} has no version {version!r}")
            self.db.record(time.time(), actor, "reject", ENTITY, name, version_number(version),
                           {"version": version, "rejected": old},
                           {"version": version, "rejected": reason})
            self.db.bump()

    def mark_serving(self, name: str, version: str) -> None:
        """A runtime fact each loader reports (the last one's wins), not an audited change."""
        self.db.exec("UPDATE model_pointers SET serving = ? WHERE name = ?", (version, name))

    def entries(self) -> list[VersionEntry]:
        pointers = {r[0]: (r[1], r[2]) for r in self.db.rows(
            "SELECT name, current, serving FROM model_pointers")}
        rows = self.db.rows("SELECT name, version, kind, objective, trained_at, auc, "
                            "deployed_at, actor, rejected FROM model_versions")
        out = []
        for r in sorted(rows, key=lambda r: (r[0], version_number(r[1]))):
            current, serving = pointers.get(r[0], (None, None))
            serving = serving or current  # no loader has reported yet
            status: Status = ("rejected" if r[8] is not None
                              else "serving" if r[1] == serving else "available")
            out.append(VersionEntry(r[0], r[1], r[1] == current, status, r[8], r[2], r[3],
                                    r[4], r[5], deployed_at=r[6], actor=r[7]))
        return out

    def _prune(self, name: str) -> list[str]:
        pruned = super()._prune(name)
        with self.db.tx():
            for version in pruned:
                self.db.exec("DELETE FROM model_versions WHERE name = ? AND version = ?",
                             (name, version))
        return pruned

    def revision(self) -> int:
        return self.db.revision()

    def audit(self, name: str | None = None, limit: int = 200) -> list[AuditEntry]:
        return self.db.audit(ENTITY, name, limit)

    def close(self) -> None:
        self.db.close()
