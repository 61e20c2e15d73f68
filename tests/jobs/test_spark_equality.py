"""The same job definitions on the embedded engine (DuckDB) and on Spark (local mode) publish
the same tables from the same log: rows equal, floats to a tight tolerance."""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from pyspark.sql import SparkSession

from tuijian.analytics.build import build_cube
from tuijian.analytics.funnel import items_table
from tuijian.analytics.store import ROLLUPS, ParquetCubeStore
from tuijian.config import Settings
from tuijian.jobs.base import JobContext
from tuijian.jobs.engine import DuckDBEngine, Engine, event_files, spark_master
from tuijian.jobs.join import join
from tuijian.jobs.registry import JOBS
from tuijian.jobs.simulate import simulate
from tuijian.jobs.spark_engine import SparkEngine, session
from tuijian.serving.service import Service

from ..conftest import NOW

REL = 1e-9


@dataclass(frozen=True, slots=True)
class Log:
    root: Path  # the data directory whose events/ both engines read
    items: pa.Table
    layers: dict[int, str]


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    # tiny data: compiling whole-stage code costs more than it saves, and one shuffle
    # partition is plenty
    spark = session("local[2]", "tuijian-test", {
        "spark.sql.shuffle.partitions": "1", "spark.driver.memory": "512m",
        "spark.sql.codegen.wholeStage": "false"})
    yield spark
    spark.stop()


@pytest.fixture(scope="module")
def log(generated: Path, tmp_path_factory: pytest.TempPathFactory) -> Log:
    """Half a day of simulated traffic through a running recall experiment."""
    data = tmp_path_factory.mktemp("spark") / "data"
    shutil.copytree(generated, data / "generated")
    service = Service(Settings(data_dir=data), now=NOW)
    try:
        service.experiments.create({
            "name": "fusion", "layer": "recall", "scenes": ["guess_you_like", "feed"],
            "status": "running", "variants": [{"name": "control", "stage_id": "r_default"},
                                              {"name": "rrf", "stage_id": "r_rrf"}]}, "t",
            percent=100)
        with ThreadPoolExecutor(1) as pool:  # the simulator runs an event loop of its own
            pool.submit(simulate, service, data / "generated", NOW - 43_200, 0.5, 300,
                        seed=11).result()
        service.exposures.flush()
        return Log(data, items_table(service.store), service.experiment_layers())
    finally:
        service.close()


@pytest.fixture
def engines(log: Log, spark: SparkSession) -> Iterator[tuple[Engine, Engine]]:
    duck = DuckDBEngine.over_log(log.root / "events")
    yield duck, SparkEngine(spark, event_files(log.root / "events"))
    duck.close()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=REL, abs_tol=1e-12)
    return bool(a == b)


def assert_same_rows(a: pa.Table, b: pa.Table, what: str) -> None:
    """Same columns and, sorted on every column, the same rows (floats to REL)."""
    assert a.column_names == b.column_names, what
    assert a.num_rows == b.num_rows, what
    assert a.num_rows > 0, what  # an empty table would prove nothing

    def rows(t: pa.Table) -> list[tuple[Any, ...]]:
        # rounded for sorting only, so a last-bit difference cannot reorder rows
        return sorted(t.to_pylist(), key=lambda r: tuple(
            (v is None, round(v, 6) if isinstance(v, float) else v if v is not None else 0)
            for v in r.values()))

    for ra, rb in zip(rows(a), rows(b), strict=True):
        bad = [k for k in ra if not _same(ra[k], rb[k])]
        assert not bad, f"{what}: {bad[0]} differs: {ra} vs {rb}"


@pytest.mark.parametrize("name", ["hot", "association", "item_cf", "user_cf"])
def test_a_job_publishes_the_same_table_on_both_engines(
        name: str, log: Log, engines: tuple[Engine, Engine], tmp_path: Path) -> None:
    params = {"min_support": 0.05} if name == "association" else {}
    published = []
    for engine in engines:
        out = tmp_path / engine.dialect.name
        artifact = JOBS[name].run(JobContext(out, engine, NOW, params=dict(params)))
        published.append(artifact)
    duck, spark = published
    for table in (p.stem for p in duck.path.glob("*.parquet")):
        assert_same_rows(duck.table(table), spark.table(table), f"{name}/{table}")
    meta = [{k: v for k, v in a.meta().items() if k != "version"} for a in published]
    assert meta[0] == meta[1]


def test_the_samples_join_is_the_same_on_both_engines(
        engines: tuple[Engine, Engine], tmp_path: Path) -> None:
    results = [join(engine, tmp_path / engine.dialect.name) for engine in engines]
    duck, spark = results
    assert duck["samples"] == spark["samples"] > 0
    assert duck["unmatched_clicks"] == spark["unmatched_clicks"]
    import pyarrow.parquet as pq

    assert_same_rows(pq.read_table(duck["path"]), pq.read_table(spark["path"]), "samples")
    for dim, rows in duck["funnel"].items():
        assert_same_rows(pa.Table.from_pylist(rows), pa.Table.from_pylist(spark["funnel"][dim]),
                         f"funnel/{dim}")


def test_the_effect_cube_is_the_same_on_both_engines(
        log: Log, engines: tuple[Engine, Engine], tmp_path: Path) -> None:
    cubes = []
    for engine in engines:
        cube = ParquetCubeStore(tmp_path / engine.dialect.name / "cube")
        res = build_cube(engine, cube, log.items, log.layers, until=NOW + 1)
        assert res.facts > 0
        cubes.append(cube)
    con = duckdb.connect()

    def read(relation: str | None) -> pa.Table:
        assert relation is not None
        return con.sql(f"SELECT * FROM {relation}").to_arrow_table()

    duck, spark = cubes
    facts = read(duck.facts_relation())
    assert facts.column("exp_recall").drop_null().to_pylist()  # the experiment's tags resolved
    # Spark names the partition column last when read back; compare by name
    assert_same_rows(facts, read(spark.facts_relation()).select(facts.column_names), "facts")
    for name in ROLLUPS:
        assert_same_rows(read(duck.rollup_relation(name)), read(spark.rollup_relation(name)),
                         f"rollup/{name}")


def test_an_engine_spec_is_checked_and_names_the_setting() -> None:
    assert spark_master("") is None and spark_master("duckdb") is None
    assert spark_master("spark") == "local[*]"
    assert spark_master("local[4]") == "local[4]"
    assert spark_master("spark://10.0.0.5:7077") == "spark://10.0.0.5:7077"
    for bad in ("sparkle", "local[x]", "spark://", "postgresql://x"):
        with pytest.raises(ValueError, match="batch_engine"):
            spark_master(bad)
    with pytest.raises(ValueError, match="batch_engine"):
        Settings(batch_engine="hive")
