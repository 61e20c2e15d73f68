"""The proof harness itself (bench/): run briefly against live server subprocesses, so the load
generator and its output cannot rot between benchmark runs. (The fault scenarios start three
server processes each, ~40 s on the shared machine: run them with `python bench/faults.py`.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tuijian.data.generator import generate_marketplace

from ..conftest import NOW

BENCH = Path(__file__).resolve().parents[2] / "bench"
LEVEL_KEYS = {"connections", "rps", "p50_ms", "p99_ms", "max_ms", "ok", "non_2xx", "5xx",
              "errors", "statuses"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A marketplace small enough that a server starts in a few seconds."""
    out = tmp_path_factory.mktemp("tiny") / "generated"
    generate_marketplace(out, 2_000, 500, seed=3, now=NOW - 86400)
    return out


def bench(script: str, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BENCH / script), *argv], capture_output=True,
                          text=True, timeout=timeout)


def test_load_bench_drives_the_service_and_the_bare_ceiling(tiny: Path) -> None:
    done = bench("bench_load.py", "--generated", str(tiny), "--items", "2000", "--users",
                 "500", "--levels", "1,2", "--seconds", "1", "--warmup", "0", "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    for side in ("service", "bare"):
        rows = result[side]
        assert [r["connections"] for r in rows] == [1, 2]
        for row in rows:
            assert set(row) >= LEVEL_KEYS
            assert row["ok"] > 0 and row["rps"] > 0 and row["p50_ms"] <= row["p99_ms"]
            assert row["non_2xx"] == 0 and row["errors"] == 0, row
            assert row["statuses"] == {"200": row["ok"]}
    assert result["errors_total"] == 0
    assert 0 < result["ratio_best_rps"] == pytest.approx(
        result["best"]["rps"] / max(r["rps"] for r in result["bare"]), abs=1e-3)

