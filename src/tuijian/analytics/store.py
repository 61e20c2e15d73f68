"""Where the cube lives. `CubeStore` is the boundary a ClickHouse-compatible store can take over
behind; `ParquetCubeStore` is the embedded one: facts as Parquet partitioned by local date,
declared rollups as Parquet per rollup, written by a batch engine (DuckDB or Spark) and queried
with DuckDB."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Protocol

from tuijian.analytics.cube import DIMENSION, MEASURES, facts_version
from tuijian.jobs.engine import Engine

# rollups computed at every build: the dashboard's by-day charts read these, not the facts
ROLLUPS: dict[str, tuple[str, ...]] = {
    "day_slot_platform": ("date", "slot", "platform"),
    "day_scene_recall": ("date", "scene", "recall_id"),
    "day_source": ("date", "source"),
    "day_line_city": ("date", "line", "city"),
    "hour_slot_platform": ("date", "hour", "slot", "platform"),
}


class CubeStore(Protocol):
    def replace(self, engine: Engine, facts_query: str, built_until: float) -> int:
        """Materialize the facts the query returns (run on `engine`) and the rollups,
        replacing what was stored; returns the number of facts."""
        ...

    def facts_relation(self) -> str | None:
        """A SQL relation over the stored facts (None before the first build)."""
        ...

    def rollup_relation(self, name: str) -> str | None: ...

    def built_until(self) -> float: ...


def _q(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


class ParquetCubeStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def replace(self, engine: Engine, facts_query: str, built_until: float) -> int:
        tmp = self.root.with_name(self.root.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "rollups").mkdir(parents=True)
        n = engine.materialize("facts", facts_query)
        engine.write_parquet("SELECT * FROM facts", tmp / "facts", partition_by="date")
        for name, dims in ROLLUPS.items():
            engine.write_parquet(aggregate_sql("facts", list(dims)),
                                 tmp / "rollups" / f"{name}.parquet")
        (tmp / "meta.json").write_text(json.dumps({"built_until": built_until, "facts": n,
                                                   "version": facts_version()}))
        # swap whole directories: a reader sees the old cube or the new one, never half
        old = self.root.with_name(self.root.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if self.root.exists():
            self.root.rename(old)
        tmp.rename(self.root)
        shutil.rmtree(old, ignore_errors=True)
        return n

    def facts_relation(self) -> str | None:
        if not self._meta() or not (self.root / "facts").exists():
            return None
        return (f"read_parquet({_q(self.root / 'facts' / '**' / '*.parquet')}, "
                "hive_partitioning = true)")

    def rollup_relation(self, name: str) -> str | None:
        path = self.root / "rollups" / f"{name}.parquet"
        return f"read_parquet({_q(path)})" if self._meta() and path.exists() else None

    def built_until(self) -> float:
        return float(self._meta().get("built_until", 0.0))

    def _meta(self) -> dict[str, Any]:
        """The build's metadata; empty when there is none or it was built by a version of
        the facts SQL other than this one (then the event log is read instead, until the next
        build)."""
        try:
            meta: dict[str, Any] = json.loads((self.root / "meta.json").read_text())
        except (OSError, ValueError):
            return {}
        return meta if meta.get("version") == facts_version() else {}


def aggregate_sql(relation: str, dims: list[str], where: str = "") -> str:
    """Every measure grouped by `dims` over a facts relation."""
    for d in dims:
        if d not in DIMENSION:
            raise ValueError(f"unknown dimension {d!r}")
    measures = ", ".join(f"{m.sql} AS {m.name}" for m in MEASURES)
    cols = ", ".join(dims)
    group = f"GROUP BY {cols}" if dims else ""
    return (f"SELECT {cols + ', ' if dims else ''}{measures} FROM {relation} "
            f"{'WHERE ' + where if where else ''} {group}")

