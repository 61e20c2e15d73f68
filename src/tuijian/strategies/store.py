"""Where strategies live once a service has started: the metadata database.

The strategy file seeds an empty database; from then on each strategy, a (stage, id) pair, is
a versioned JSON body changed through the admin API or `tuijian strategies set`, so every
replica serves the same strategies and each change is audited. Stages are the strategy file's
sections: recall, rank, rule, display and scenes by id, and `settings` holding the file's
`filters` and `push` blocks. A change is validated exactly as the file is (the whole set,
references between sections included) before anything is written.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from tuijian.config import ConfigError, StrategyFile, validate_strategies
from tuijian.data.metadb import AuditEntry, MetaDB
from tuijian.serving.errors import RequestError

BY_ID = ("recall", "rank", "rule", "display", "scenes")
SETTINGS = "settings"  # the strategy file's single blocks, by their key
SETTING_KEYS = ("filters", "push")
STAGES = (*BY_ID, SETTINGS)

Key = tuple[str, str]  # (stage, id)
Bodies = dict[Key, dict[str, Any]]
# A change: given a mutable copy of every body, mutate it and return the action name.
Change = Callable[[Bodies], str]
Check = Callable[[StrategyFile], None]


class StrategyConflict(RequestError):
    """A change made against a version that is no longer the stored one."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(field, message, 409)


@dataclass(slots=True, frozen=True)
class StrategyEntry:
    stage: str
    sid: str
    version: int
    body: dict[str, Any]
    updated_at: float
    actor: str


class StrategyStore(Protocol):
    def revision(self) -> int: ...

    def entries(self) -> tuple[int, dict[Key, StrategyEntry]]: ...

    def load(self) -> tuple[int, StrategyFile | None]:
        """The stored strategies as one validated file; None while nothing is stored."""
        ...

    def seed(self, strategies: StrategyFile, actor: str) -> bool:
        """Store `strategies` if nothing is stored yet; True if it did."""
        ...

    def change(self, fn: Change, actor: str, check: Check | None = None) -> StrategyFile: ...

    def put(self, stage: str, sid: str, body: dict[str, Any], actor: str,
            check: Check | None = None, expect_version: int | None = None) -> StrategyEntry:
        ...

    def audit(self, stage: str | None = None, sid: str | None = None,
              limit: int = 200) -> list[AuditEntry]: ...

    def close(self) -> None: ...


def bodies_of(strategies: StrategyFile) -> Bodies:
    raw = strategies.model_dump(mode="json")
    out: Bodies = {(stage, sid): body for stage in BY_ID for sid, body in raw[stage].items()}
    out.update({(SETTINGS, key): raw[key] for key in SETTING_KEYS})
    return out


def file_of(bodies: Bodies) -> StrategyFile:
    """Validate a whole set of bodies as the strategy file would be (ConfigError naming the
    field, e.g. `scenes.feed.recall`, otherwise)."""
    raw: dict[str, Any] = {stage: {} for stage in BY_ID}
    for (stage, sid), body in bodies.items():
        if stage == SETTINGS:
            raw[sid] = body
        else:
            raw[stage][sid] = body
    return validate_strategies(raw, "strategies")


def check_key(stage: str, sid: str) -> None:
    if stage not in STAGES:
        raise ConfigError(f"stage: unknown stage {stage!r} (known: {', '.join(STAGES)})",
                          "stage")
    if stage == SETTINGS and sid not in SETTING_KEYS:
        raise ConfigError(f"id: {SETTINGS} holds {', '.join(SETTING_KEYS)}, not {sid!r}", "id")
    if not sid or len(sid) > 64 or "@" in sid:  # `@` marks experiments' derived ids
        raise ConfigError("id: 1-64 characters, no '@'", "id")


_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS strat_entries (stage TEXT NOT NULL, sid TEXT NOT NULL, "
    "version BIGINT NOT NULL, body TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL, "
    "actor TEXT NOT NULL, PRIMARY KEY (stage, sid))",
]


class SqlStrategyStore:
    """The store over a metadata database (`sqlite:///PATH` or `postgresql://…`)."""

    def __init__(self, url: str) -> None:
        self.db = MetaDB(url, "strat", _SCHEMA)

    def revision(self) -> int:
        return self.db.revision()

    def entries(self) -> tuple[int, dict[Key, StrategyEntry]]:
        rev = self.db.revision()
        rows = self.db.rows("SELECT stage, sid, version, body, updated_at, actor "
                            "FROM strat_entries ORDER BY stage, sid")
        return rev, {(r[0], r[1]): StrategyEntry(r[0], r[1], int(r[2]), orjson.loads(r[3]),
                                                 float(r[4]), r[5]) for r in rows}

    def load(self) -> tuple[int, StrategyFile | None]:
        rev, entries = self.entries()
        if not entries:
            return rev, None
        return rev, file_of({k: e.body for k, e in entries.items()})

    def seed(self, strategies: StrategyFile, actor: str) -> bool:
        with self.db.tx():
            if self.db.rows("SELECT 1 FROM strat_entries LIMIT 1"):
                return False
            self._write({}, bodies_of(strategies), actor, "seed")
        return True

    def change(self, fn: Change, actor: str, check: Check | None = None) -> StrategyFile:
        """Apply `fn` to every stored body; validate the result as a whole (then `check`
        it, e.g. against live experiments), write and audit what changed, or change nothing
        if any step raises."""
        with self.db.tx():
            _, entries = self.entries()
            before = {k: e.body for k, e in entries.items()}
            after = copy.deepcopy(before)
            action = fn(after)
            for stage, sid in after:
                check_key(stage, sid)
            strategies = file_of(after)
            if check is not None:
                check(strategies)
            self._write(entries, bodies_of(strategies), actor, action)
        return strategies

    def put(self, stage: str, sid: str, body: dict[str, Any], actor: str,
            check: Check | None = None, expect_version: int | None = None) -> StrategyEntry:
        """Create or replace one strategy. With `expect_version`, only if the stored version
        is still that one (0: only if it does not exist yet)."""
        check_key(stage, sid)

        def fn(bodies: Bodies) -> str:
            if expect_version is not None:
                version = self._version(stage, sid)
                if version != expect_version:
                    raise StrategyConflict("version", f"{stage}.{sid} is at version {version}, "
                                                      f"not {expect_version}")
            bodies[(stage, sid)] = body
            return "put"

        with self.db.tx():
            self.change(fn, actor, check)
            return self.entries()[1][(stage, sid)]

    def _version(self, stage: str, sid: str) -> int:
        row = self.db.rows("SELECT version FROM strat_entries WHERE stage = ? AND sid = ?",
                           (stage, sid))
        return int(row[0][0]) if row else 0

    def _write(self, old: dict[Key, StrategyEntry], normal: Bodies, actor: str,
               action: str) -> None:
        """Inside the change's transaction: each changed body a new version + an audit row,
        then one revision bump. Bodies are stored as the validated models dump them, so an
        unchanged resubmission (or one spelling out defaults) is no change."""
        now = time.time()
        changed = False
        for key in sorted(set(old) | set(normal)):
            prev, body = old.get(key), normal.get(key)
            if prev is not None and prev.body == body:
                continue
            changed = True
            version = (prev.version if prev is not None else 0) + 1
            if body is None:
                self.db.exec("DELETE FROM strat_entries WHERE stage = ? AND sid = ?", key)
            else:
                self.db.exec(
                    "INSERT INTO strat_entries (stage, sid, version, body, updated_at, actor) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (stage, sid) DO UPDATE SET "
                    "version = excluded.version, body = excluded.body, "
                    "updated_at = excluded.updated_at, actor = excluded.actor",
                    (*key, version, orjson.dumps(body).decode(), now, actor))
            self.db.record(now, actor, action, key[0], key[1], version,
                           None if prev is None else prev.body, body)
        if changed:
            self.db.bump()

    def audit(self, stage: str | None = None, sid: str | None = None,
              limit: int = 200) -> list[AuditEntry]:
        return self.db.audit(stage, sid, limit)

    def close(self) -> None:
        self.db.close()
