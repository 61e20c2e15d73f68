"""The cost of splitting the pipeline: one request served with recall and rank in process vs
on `tuijian serve --role recall` and `--role rank` (separate processes, loopback gRPC).

Each server opens its own copy of the same generated marketplace, so both ways compute the
same lists; requests alternate between the two ways so machine noise hits both alike. Stage
budgets are raised out of the way: this measures overhead, not degradation.

    PYTHONPATH=src .venv/bin/python bench/bench_grpc.py --items 100000 --requests 400
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tuijian.config import Settings
from tuijian.data.generator import generate_marketplace
from tuijian.domain import RecommendRequest, Scene
from tuijian.serving.rpc_client import RankClient, RecallClient
from tuijian.serving.service import Service


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_serving(target: str, proc: subprocess.Popen[bytes], limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server for {target} exited with {proc.returncode}")
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{target} not SERVING after {limit_s} s")
            await asyncio.sleep(0.5)


def pct(xs: list[float], q: float) -> float:
    return round(float(np.percentile(np.array(xs) * 1000, q)), 2)


async def run(args: argparse.Namespace, root: Path) -> dict[str, object]:
    now = time.time()
    generated = root / "generated"
    generate_marketplace(generated, args.items, args.users, seed=5, now=now - 86400)
    procs, targets = [], {}
    for role in ("recall", "rank"):
        data = root / role
        shutil.copytree(generated, data / "generated")
        port = free_port()
        targets[role] = f"127.0.0.1:{port}"
        procs.append(subprocess.Popen(
            [sys.executable, "-c", "from tuijian.cli import app; app()", "serve", "--role", role,
             "--data", str(data), "--port", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    shutil.copytree(generated, root / "api" / "generated")
    service = Service(Settings(data_dir=root / "api"), now=now)
    try:
        for proc, role in zip(procs, ("recall", "rank"), strict=True):
            await wait_serving(targets[role], proc, 300)
        for strat in service.strategies.recall.values():
            strat.budget_ms = 10_000
            for spec in strat.sources:
                spec.budget_ms = 10_000
        for rank in service.strategies.rank.values():
            rank.budget_ms = 10_000
        pipe = service.pipeline
        remote = (RecallClient(targets["recall"], service.store),
                  RankClient(targets["rank"], service.store))
        times: dict[str, list[float]] = {"in_process": [], "remote": []}
        same = degraded = 0
        for i in range(args.requests + args.warmup):
            req = RecommendRequest(scene=Scene.GUESS_YOU_LIKE, user_id=f"u{i % args.users}",
                                   n=20, now=now)
            served = {}
            for way in ("in_process", "remote"):
                pipe.recall_remote, pipe.rank_remote = (None, None) if way == "in_process" \
                    else remote
                t0 = time.perf_counter()
                rec = await pipe.recommend(req, log_exposures=False)
                if i >= args.warmup:
                    times[way].append(time.perf_counter() - t0)
                served[way] = [it["item_id"] for it in rec.items]
                degraded += any(d in ("recall", "rank") for d in rec.degraded)
            same += served["in_process"] == served["remote"]
        for client in remote:
            await client.close()
        result: dict[str, object] = {
            "bench": "grpc", "items": args.items, "requests": args.requests,
            "stage_degradations": degraded, "same_lists": f"{same}/{args.requests + args.warmup}"}
        for way, xs in times.items():
            result[way] = {"p50_ms": pct(xs, 50), "p99_ms": pct(xs, 99)}
        result["overhead_p50_ms"] = round(pct(times["remote"], 50)
                                          - pct(times["in_process"], 50), 2)
        return result
    finally:
        service.close()
        for proc in procs:
            proc.terminate()
            proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--warmup", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(asyncio.run(run(args, Path(tmp)))))


if __name__ == "__main__":
    main()
