"""The Spark engine: the same job SQL on a SparkSession, local (`local[*]`) or on a cluster.

It reads the event log's segment files directly (JSON Lines with the log's own schema), so a
job runs beside a serving process exactly as the embedded engine does. With a `spark://`
master, the data directory must be on storage the executors see under the same path.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from tuijian.data.eventlog import COLUMNS
from tuijian.jobs.engine import EVENTS, SPARK

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# the log's DuckDB column types in Spark DDL (JSON values stay as their text, as in DuckDB)
_TYPES = {"VARCHAR": "STRING", "BIGINT": "BIGINT", "DOUBLE": "DOUBLE", "INTEGER": "INT",
          "JSON": "STRING", "VARCHAR[]": "ARRAY<STRING>"}
EVENTS_SCHEMA = ", ".join(f"`{c}` {_TYPES[t]}" for c, t in COLUMNS.items())

LOCAL_CONF = {
    # one machine: a few shuffle partitions instead of 200 mostly-empty tasks
    "spark.sql.shuffle.partitions": "4",
    "spark.ui.enabled": "false",
}
CONF = {
    # dates and hours are computed from epoch microseconds as UTC wall time, as in DuckDB
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


def session(master: str, app_name: str = "tuijian-jobs",
            extra: dict[str, str] | None = None) -> SparkSession:
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(master).appName(app_name)
    conf = {**CONF, **(LOCAL_CONF if master.startswith("local") else {}), **(extra or {})}
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


class SparkEngine:
    """Runs job SQL with Spark SQL. The log is the session's temp view `events`, so one
    session serves one event log at a time."""

    dialect = SPARK

    def __init__(self, spark: SparkSession, event_files: list[Path], *,
                 owns_session: bool = False) -> None:
        self.spark = spark
        self._owns = owns_session
        self._cached: dict[str, DataFrame] = {}
        reader = spark.read.schema(EVENTS_SCHEMA).option("mode", "PERMISSIVE")
        events = (reader.json([str(f) for f in event_files]) if event_files
                  else spark.createDataFrame([], EVENTS_SCHEMA))
        # a line being written as the job reads parses as all-null: skipped, as in DuckDB
        events.where("event_id IS NOT NULL").createOrReplaceTempView(EVENTS)

    @classmethod
    def start(cls, master: str, event_files: list[Path]) -> SparkEngine:
        return cls(session(master), event_files, owns_session=True)

    def table(self, sql: str) -> pa.Table:
        return self.spark.sql(sql).toArrow()

    def register(self, name: str, table: pa.Table) -> None:
        self.spark.createDataFrame(table).createOrReplaceTempView(name)

    def materialize(self, name: str, sql: str) -> int:
        if (old := self._cached.pop(name, None)) is not None:
            old.unpersist()
        df = self.spark.sql(sql).cache()
        df.createOrReplaceTempView(name)
        self._cached[name] = df
        return df.count()

    def write_parquet(self, sql: str, path: Path, partition_by: str | None = None) -> None:
        if partition_by:
            self.spark.sql(sql).write.mode("overwrite").partitionBy(partition_by).parquet(
                str(path))
        else:
            # one file, as readers expect: these are aggregates and samples, collected to
            # the driver rather than written as a directory of parts
            pq.write_table(self.table(sql), path)

    def close(self) -> None:
        for df in self._cached.values():
            df.unpersist()
        self._cached.clear()
        if self._owns:
            self.spark.stop()
