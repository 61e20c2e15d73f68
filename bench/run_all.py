"""`make bench`: every benchmark once, one JSON line each (record them in docs/BENCHMARKS.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
RUNS = [
    [sys.executable, str(HERE / "bench_generate.py"), "--items", "1000000", "--users", "1000000"],
    [sys.executable, str(HERE / "bench_features.py"), "--items", "1000000"],
    [sys.executable, "-m", "tuijian.cli", "bench", "serve", "--items", "1000000", "--users",
     "1000000", "--requests", "3000", "--json"],
    [sys.executable, str(HERE / "bench_ingest.py")],
    # the load bench's request mix in process: what the pipeline costs without HTTP
    [sys.executable, str(HERE / "bench_mix.py"), "--json"],
    # the rules stage alone (dedup, scatter) on lists built from the 1M marketplace
    [sys.executable, str(HERE / "bench_rules.py")],
    # HTTP load at 1, 2 … 32 connections (wrk), the service beside a bare FastAPI ceiling
    [sys.executable, str(HERE / "bench_load.py"), "--json"],
    [sys.executable, str(HERE / "bench_retrieval.py")],
    # experiment assignment per request (5 layers, a domain, a launch) vs scene defaults
    [sys.executable, str(HERE / "bench_assignment.py")],
    # the daily effect-data cube from 10M events (target <= 60 s)
    [sys.executable, str(HERE / "bench_cube.py"), "--events", "10000000"],
    # rank model hot reload: 20 deploy+poll swaps while predictions run at full speed
    [sys.executable, str(HERE / "bench_hot_reload.py"), "--versions", "20"],
    # the recall stage with every source working: simulated traffic and all jobs first
    [sys.executable, "-m", "tuijian.cli", "bench", "serve", "--items", "1000000", "--users",
     "1000000", "--requests", "3000", "--simulate", "20000", "--json"],
    # recall + rank on their gRPC services vs in process, requests alternating
    [sys.executable, str(HERE / "bench_grpc.py"), "--items", "100000", "--requests", "400"],
    # the rank stage: 300 candidates, GBDT+LR CTR and GBDT CVR fused, at 1M items
    [sys.executable, str(HERE / "bench_rank.py"), "--items", "1000000"],
    [sys.executable, "-m", "tuijian.cli", "eval", "rank", "--data-dir",
     str(HERE.parent.parent / "shared" / "datasets"), "--json"],
    # dedup precision / recall against planted re-posts; the rule stage on 500 ranked items
    [sys.executable, "-m", "tuijian.cli", "eval", "rules", "--json"],
    [sys.executable, "-m", "tuijian.cli", "eval", "recall", "--dataset", "ml-100k",
     "--data-dir", str(HERE.parent.parent / "shared" / "datasets"), "--k", "10", "--json"],
]

if __name__ == "__main__":
    failed = 0
    for cmd in RUNS:
        result = subprocess.run(cmd, capture_output=True, text=True)
        lines = result.stdout.strip().splitlines()
        print(lines[-1] if lines else "", flush=True)
        if result.returncode != 0:
            failed += 1
            print(result.stderr[-2000:], file=sys.stderr)
    sys.exit(1 if failed else 0)
