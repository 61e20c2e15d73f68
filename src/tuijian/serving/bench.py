"""The serving benchmark behind `tuijian bench serve`: in-process latency of the pipeline.

Generates a marketplace of the requested size into a temporary directory, opens a Service on
it, and times guess_you_like requests for users drawn at random (known users with their home
city, so region and hot recall both run). With `simulate_requests`, simulated traffic and every
batch job run first and only users who clicked are drawn, so every recall source (CF, MF,
association, real-time item-CF, interest) does real work. Reports overall and per-stage
percentiles, and per-source recall latency.
"""

from __future__ import annotations

import asyncio
import gc
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

from tuijian.config import Settings
from tuijian.data.generator import generate_marketplace
from tuijian.domain import RecommendRequest, Scene
from tuijian.jobs.base import JobContext
from tuijian.jobs.engine import DuckDBEngine
from tuijian.jobs.registry import JOBS
from tuijian.jobs.simulate import simulate
from tuijian.serving.service import Service, settle_heap

STAGES = ("recall", "rank", "rules", "display")


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1000.0
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3)}


async def _drive(service: Service, users: list[str], requests: int, seed: int
                 ) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    out = []
    for r in range(requests):
        user = users[int(rng.integers(len(users)))]
        req = RecommendRequest(Scene.GUESS_YOU_LIKE, user, 20, time.time())
        t0 = time.perf_counter()
        rec = await service.pipeline.recommend(req)
        rec.timings["wall"] = time.perf_counter() - t0
        if r % 200 == 199:
            service.exposures.flush()
        out.append(rec.timings)
    return out


def warm_up(service: Service, data: Path, simulate_requests: int, seed: int) -> list[str]:
    """Simulated traffic, then every batch job, so each recall source has something to say;
    returns the users who clicked (the ones every source can serve)."""
    now = time.time()
    simulate(service, data / "generated", now - 86_400, 1.0, simulate_requests, seed)
    with closing(DuckDBEngine.over_log(data / "events")) as engine:
        ctx = JobContext(data, engine, now)
        for job in JOBS.values():
            job.run(ctx)
    service.reload_models()
    return [u for u in service.profiles.active_users()
            if service.profiles.get(u).recent_clicks]


def run_bench(items: int, users: int, requests: int, seed: int = 3,
              simulate_requests: int = 0) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        t0 = time.perf_counter()
        generate_marketplace(data / "generated", items, users, seed,
                             time.time() - (86_400 if simulate_requests else 0))
        gen_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        service = Service(Settings(data_dir=data))
        open_s = time.perf_counter() - t0
        try:
            ids = service.profiles.table.keys()
            if simulate_requests:
                ids = warm_up(service, data, simulate_requests, seed)
            settle_heap()
            asyncio.run(_drive(service, ids, min(200, requests), seed + 1))  # warm-up
            timings = asyncio.run(_drive(service, ids, requests, seed))
        finally:
            service.close()
            gc.unfreeze()  # let the process tear its objects down normally
    result: dict[str, Any] = percentiles([t["wall"] for t in timings])
    result["stages"] = {s: percentiles([t[s] for t in timings if s in t]) for s in STAGES}
    sources = sorted({k for t in timings for k in t if k.startswith("source.")})
    result["sources"] = {k.removeprefix("source."): percentiles([t[k] for t in timings if k in t])
                         for k in sources}
    result.update(items=items, users=users, requests=requests,
                  simulated_requests=simulate_requests, generate_s=round(gen_s, 2),
                  open_s=round(open_s, 2))
    return result
