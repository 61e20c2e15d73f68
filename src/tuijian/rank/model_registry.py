"""The rank model registry: deployed model directories, versioned, with a CURRENT pointer.

Layout on the embedded default (a directory; an object store can implement ModelStore later):

    DATA/rank_models/NAME/v0001/    a copy of a model directory (model.json, features.json, …)
    DATA/rank_models/NAME/v0001/REJECTED   the reason a live loader refused this version
    DATA/rank_models/NAME/CURRENT   the version that should serve
    DATA/rank_models/NAME/SERVING   the version the live loader last swapped in

A version is copied into a hidden temporary directory and renamed into place, and only then
does CURRENT move (an atomic replace), so a reader that follows CURRENT never sees a
half-written version. Versions are immutable once published; rollback only moves CURRENT.
What serves is a runtime fact: the markers make it visible to `tuijian models list` in another
process (with several serving processes on one data directory, SERVING is the last one's).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import orjson

from tuijian.data.durable import fsync_dir, fsync_file
from tuijian.rank.deployed import MANIFEST

CURRENT = "CURRENT"
SERVING = "SERVING"
REJECTED = "REJECTED"
KEEP = 10  # versions kept for rollback; CURRENT and SERVING are never pruned
STALE_TMP_S = 3600.0  # a temporary copy this old is a crashed deploy's leftover
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
VERSION_RE = re.compile(r"^v(\d{4,})$")

Status = Literal["serving", "rejected", "available"]


class RegistryError(ValueError):
    """A registry operation that cannot be done: unknown name or version, nothing to roll
    back to, a source directory that is not a model."""


@dataclass(slots=True)
class VersionEntry:
    """One row of `tuijian models list`."""

    name: str
    version: str
    current: bool
    status: Status
    reason: str | None
    kind: str | None
    objective: str | None
    trained_at: float | None
    auc: float | None
    deployed_at: float | None = None
    actor: str | None = None  # who deployed it (kept by the metadata-backed registry)


class ModelStore(Protocol):
    """Where deployed rank models live. `path` is a local directory holding a version's files
    (an object-store backend would materialise it in a local cache)."""

    def names(self) -> list[str]: ...

    def versions(self, name: str) -> list[str]:
        """Published versions, oldest first."""
        ...

    def current(self, name: str) -> str | None:
        """The version that should serve, or None if nothing is deployed."""
        ...

    def path(self, name: str, version: str) -> Path: ...

    def deploy(self, src_dir: Path, name: str, actor: str = "cli") -> str:
        """Publish a copy of a model directory as a new version and make it CURRENT."""
        ...

    def rollback(self, name: str, to: str | None = None, actor: str = "cli") -> str:
        """Point CURRENT at `to`, by default the newest usable version before CURRENT."""
        ...

    def reject(self, name: str, version: str, reason: str, actor: str = "loader") -> None: ...

    def rejection(self, name: str, version: str) -> str | None: ...

    def mark_serving(self, name: str, version: str) -> None: ...

    def serving(self, name: str) -> str | None: ...

    def entries(self) -> list[VersionEntry]: ...

    def close(self) -> None: ...


def _write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text`: readers see the old or the new content, never a mix. The
    temporary name is unique so concurrent writers (two deploys) cannot clobber each other."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except (FileNotFoundError, NotADirectoryError):
        return None


def rollback_target(name: str, versions: list[str], current: str | None, to: str | None,
                    rejection: Callable[[str], str | None]) -> str:
    """The version a rollback points CURRENT at: `to` if usable, else the newest usable
    version before CURRENT."""
    if not versions:
        raise RegistryError(f"no model named {name!r} is deployed")
    if to is not None:
        if to not in versions:
            raise RegistryError(f"{name} has no version {to!r} "
                                f"(versions: {', '.join(versions)})")
        reason = rejection(to)
        if reason is not None:
            raise RegistryError(f"{name} {to} was rejected ({reason}); deploy a fixed "
                                "model instead")
        return to
    older = versions[:versions.index(current)] if current in versions else versions
    usable = [v for v in older if rejection(v) is None]
    if not usable:
        raise RegistryError(f"{name} has no usable version before {current}")
    return usable[-1]


def version_number(version: str) -> int:
    return int(version[1:])


class ModelRegistry:
    """The directory-backed ModelStore: entries are the directories and their markers (the
    embedded default). SqlModelRegistry keeps the same files with the entries in the
    metadata database."""

    def __init__(self, root: Path, keep: int = KEEP) -> None:
        self.root = root
        self.keep = keep

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and NAME_RE.match(p.name))

    def versions(self, name: str) -> list[str]:
        return self._published(name)

    def close(self) -> None:
        """Nothing is held open: every call reads the files afresh."""

    def _published(self, name: str) -> list[str]:
        """The version directories, oldest first."""
        base = self.root / name
        if not base.is_dir():
            return []
        found = [(int(m.group(1)), p.name) for p in base.iterdir()
                 if (m := VERSION_RE.match(p.name)) and p.is_dir()]
        return [v for _, v in sorted(found)]

    def current(self, name: str) -> str | None:
        version = _read(self.root / name / CURRENT)
        return version if version and (self.root / name / version).is_dir() else None

    def path(self, name: str, version: str) -> Path:
        return self.root / name / version

    def deploy(self, src_dir: Path, name: str, actor: str = "cli") -> str:
        if not NAME_RE.match(name):
            raise RegistryError(f"model name {name!r} must match {NAME_RE.pattern}")
        if not (src_dir / MANIFEST).is_file():
            raise RegistryError(f"{src_dir} is not a model directory: no {MANIFEST}")
        base = self.root / name
        base.mkdir(parents=True, exist_ok=True)
        tmp = base / f".tmp-{uuid.uuid4().hex}"
        try:
            # markers describe a version in a registry, not the model: never copy them along
            shutil.copytree(src_dir, tmp,
                            ignore=shutil.ignore_patterns(REJECTED, SERVING, CURRENT))
            for f in tmp.rglob("*"):
                if f.is_file():
                    fsync_file(f)
            fsync_dir(tmp)
            version = self._publish(base, tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._register(name, version, actor)
        self._prune(name)
        return version

    def _register(self, name: str, version: str, actor: str) -> None:
        """Make a published version CURRENT."""
        _write_atomic(self.root / name / CURRENT, version)

    def _publish(self, base: Path, tmp: Path) -> str:
        """Rename the copy to the next free version. A rename onto an existing (non-empty)
        version fails, so two concurrent deploys cannot both claim one number."""
        while True:
            last = self._published(base.name)
            n = int(last[-1][1:]) + 1 if last else 1
            version = f"v{n:04d}"
            try:
                tmp.rename(base / version)
            except OSError:
                if (base / version).exists():
                    continue
                raise
            fsync_dir(base)
            return version

    def rollback(self, name: str, to: str | None = None, actor: str = "cli") -> str:
        target = rollback_target(name, self.versions(name), self.current(name), to,
                                 lambda v: self.rejection(name, v))
        _write_atomic(self.root / name / CURRENT, target)
        return target

    def reject(self, name: str, version: str, reason: str, actor: str = "loader") -> None:
        _write_atomic(self.path(name, version) / REJECTED, reason)

    def rejection(self, name: str, version: str) -> str | None:
        return _read(self.path(name, version) / REJECTED)

    def mark_serving(self, name: str, version: str) -> None:
        _write_atomic(self.root / name / SERVING, version)

    def serving(self, name: str) -> str | None:
        version = _read(self.root / name / SERVING)
        return version if version and self.path(name, version).is_dir() else None

    def entries(self) -> list[VersionEntry]:
        rows = []
        for name in self.names():
            current = self.current(name)
            # no live loader has reported yet: CURRENT is what a server would load
            serving = self.serving(name) or current
            for version in self.versions(name):
                reason = self.rejection(name, version)
                status: Status = ("rejected" if reason is not None
                                  else "serving" if version == serving else "available")
                path = self.path(name, version)
                rows.append(VersionEntry(name, version, version == current, status, reason,
                                         *self._summary(path), deployed_at=_mtime(path)))
        return rows

    @staticmethod
    def _summary(path: Path) -> tuple[str | None, str | None, float | None, float | None]:
        """kind, objective, trained_at and AUC from model.json; an unreadable manifest shows
        as blanks (the version's REJECTED reason says why)."""
        try:
            raw = orjson.loads((path / MANIFEST).read_bytes())
        except (OSError, orjson.JSONDecodeError):
            raw = None
        if not isinstance(raw, dict):
            raw = {}
        metrics = raw.get("metrics")
        auc = metrics.get("auc") if isinstance(metrics, dict) else None

        def text(key: str) -> str | None:
            value = raw.get(key)
            return value if isinstance(value, str) else None

        def number(value: object) -> float | None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None
            return float(value)

        return text("kind"), text("objective"), number(raw.get("trained_at")), number(auc)

    def _prune(self, name: str) -> list[str]:
        """Delete all but the newest `keep` versions (CURRENT and SERVING stay); returns
        the versions deleted."""
        base = self.root / name
        protected = {self.current(name), self.serving(name)}
        pruned = [old for old in self.versions(name)[:-self.keep] if old not in protected]
        for old in pruned:
            shutil.rmtree(base / old, ignore_errors=True)
        cutoff = time.time() - STALE_TMP_S
        for tmp in base.glob(".tmp-*"):
            try:
                if tmp.stat().st_mtime < cutoff:
                    shutil.rmtree(tmp, ignore_errors=True)
            except FileNotFoundError:
                pass
        return pruned


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def open_model_registry(root: Path, metadata_url: str = "") -> ModelStore:
    """The model registry over `root`: its entries in the metadata database when a metadata
    URL is configured (every replica then agrees on CURRENT), else in the directory."""
    if not metadata_url:
        return ModelRegistry(root)
    from tuijian.rank.model_registry_sql import SqlModelRegistry

    return SqlModelRegistry(root, metadata_url)
