"""Versioned job outputs: what batch jobs hand to the serving process.

Each run writes a new version directory `DATA/models/NAME/vYYYYmmddTHHMMSS-N/` and then
atomically replaces the `CURRENT` file naming it, so a reader sees either the old or the new
version, never a half-written one. The service polls `CURRENT` and reloads without restart;
the last KEEP versions stay on disk for rollback.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tuijian.data.durable import fsync_dir

KEEP = 3


@dataclass(slots=True, frozen=True)
class Artifact:
    name: str
    version: str
    path: Path

    def table(self, name: str) -> pa.Table:
        return pq.read_table(self.path / f"{name}.parquet")

    def meta(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads((self.path / "meta.json").read_text())
        return result


class ArtifactStore:
    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "models"

    def write(self, name: str, tables: dict[str, pa.Table], meta: dict[str, Any],
              extra: Callable[[Path], None] | None = None) -> Artifact:
        """Publish a version; `extra(dir)` may add files (a saved model) before it goes live."""
        base = self.root / name
        base.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        n = sum(1 for p in base.glob(f"v{stamp}-*"))
        version = f"v{stamp}-{n}"
        tmp = base / f".{version}.tmp"
        tmp.mkdir()
        for tname, table in tables.items():
            pq.write_table(table, tmp / f"{tname}.parquet")
        if extra is not None:
            extra(tmp)
        (tmp / "meta.json").write_text(json.dumps({**meta, "version": version}, default=str))
        final = base / version
        tmp.rename(final)
        pointer = base / "CURRENT.tmp"
        pointer.write_text(version)
        pointer.replace(base / "CURRENT")
        fsync_dir(base)
        self._prune(base, version)
        return Artifact(name, version, final)

    def current(self, name: str) -> Artifact | None:
        pointer = self.root / name / "CURRENT"
        if not pointer.exists():
            return None
        version = pointer.read_text().strip()
        path = self.root / name / version
        return Artifact(name, version, path) if path.is_dir() else None

    def _prune(self, base: Path, keep_version: str) -> None:
        versions = sorted(p for p in base.iterdir() if p.is_dir() and p.name.startswith("v"))
        for old in versions[:-KEEP]:
            if old.name != keep_version:
                shutil.rmtree(old, ignore_errors=True)
