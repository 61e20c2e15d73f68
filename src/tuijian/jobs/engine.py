"""Where batch SQL runs: the embedded engine (DuckDB) or Spark, behind one small boundary.

Every batch job is written once, as SQL both engines accept over a view named `events` (the
event log), plus whatever numpy step follows; the engine runs the SQL and hands back Arrow, so
artifact writing is shared too. The constructs the two dialects spell differently (list
lambdas) come from the engine's `Dialect`; the rest is
written in the portable form (CAST over `::`, a row_number subquery over QUALIFY, `||` with
explicit casts). Engines are chosen by a spec string: "" or "duckdb" for the embedded engine,
"spark" / "local[N]" / "spark://HOST:PORT" for Spark (imported only when asked for).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import duckdb
import pyarrow as pa

from tuijian.data.eventlog import SEGMENT_GLOB, snapshot_sql

EVENTS = "events"  # the view every job's SQL reads the event log through


@dataclass(frozen=True, slots=True)
class Dialect:
    """The spellings that differ between engines, as format templates."""

    name: str
    first_where: str  # {list}, {var}, {cond}: the first element satisfying cond, else NULL

    def first(self, values: str, var: str, cond: str) -> str:
        return self.first_where.format(list=values, var=var, cond=cond)


DUCKDB = Dialect("duckdb", "list_filter({list}, lambda {var}: {cond})[1]")
# try_element_at: Spark 4 runs ANSI SQL, where an out-of-range index is an error, not NULL
SPARK = Dialect("spark", "try_element_at(filter({list}, {var} -> {cond}), 1)")


class Engine(Protocol):
    """A SQL engine holding the event log as the view `events`."""

    dialect: Dialect

    def table(self, sql: str) -> pa.Table:
        """Run a query; its result as Arrow."""
        ...

    def register(self, name: str, table: pa.Table) -> None:
        """Make an Arrow table queryable as `name`."""
        ...

    def materialize(self, name: str, sql: str) -> int:
        """Compute a query once and keep it as `name` for the queries that follow; its rows."""
        ...

    def write_parquet(self, sql: str, path: Path, partition_by: str | None = None) -> None:
        """Write a query's result: one file at `path`, or a hive-partitioned directory."""
        ...

    def close(self) -> None: ...


class DuckDBEngine:
    """The embedded engine: one DuckDB connection over the log's segment files, read without
    taking the serving process's lock."""

    dialect = DUCKDB

    def __init__(self, events_sql: str, threads: int | None = None) -> None:
        self.con = duckdb.connect()
        if threads is not None:
            self.con.execute(f"SET threads = {int(threads)}")
        self.con.execute(f"CREATE TEMP VIEW {EVENTS} AS SELECT * FROM {events_sql}")

    @classmethod
    def over_log(cls, root: Path) -> DuckDBEngine:
        return cls(snapshot_sql(root))

    def table(self, sql: str) -> pa.Table:
        return self.con.sql(sql).to_arrow_table()

    def register(self, name: str, table: pa.Table) -> None:
        self.con.register(name, table)

    def materialize(self, name: str, sql: str) -> int:
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")
        return int(self.con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0])

    def write_parquet(self, sql: str, path: Path, partition_by: str | None = None) -> None:
        target = "'" + str(path).replace("'", "''") + "'"
        options = (f", PARTITION_BY ({partition_by}), OVERWRITE_OR_IGNORE" if partition_by
                   else "")
        self.con.execute(f"COPY ({sql}) TO {target} (FORMAT parquet{options})")

    def close(self) -> None:
        self.con.close()


def event_files(root: Path) -> list[Path]:
    """The log's segment files as they are now (a segment created later is not read)."""
    return sorted(Path(root).glob(SEGMENT_GLOB))


_LOCAL = re.compile(r"local(\[(\*|\d+)\])?")


def spark_master(spec: str) -> str | None:
    """The Spark master a spec names, None for the embedded engine; ValueError otherwise."""
    if spec in ("", "duckdb"):
        return None
    if spec == "spark":
        return "local[*]"
    if _LOCAL.fullmatch(spec) or (spec.startswith("spark://") and len(spec) > len("spark://")):
        return spec
    raise ValueError(f"batch_engine: {spec!r} is not duckdb, spark, local[N] or "
                     "spark://HOST:PORT")


def open_engine(spec: str, events_root: Path) -> Engine:
    """The engine a spec names, over the event log under `events_root`."""
    master = spark_master(spec)
    if master is None:
        return DuckDBEngine.over_log(events_root)
    from tuijian.jobs.spark_engine import SparkEngine

    return SparkEngine.start(master, event_files(events_root))

