"""The serving benchmark behind `tuijian bench serve`: in-process latency of the pipeline.

Generates a marketplace of the requested size into a temporary directory, opens a Service on
it, and times guess_you_like requests for users drawn at random (known users with their home
city, so region and hot recall both run). Reports overall and per-stage percentiles.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from tuijian.config import Settings
from tuijian.data.generator import generate_marketplace
from tuijian.domain import RecommendRequest, Scene
from tuijian.serving.service import Service

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


def run_bench(items: int, users: int, requests: int, seed: int = 3) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        t0 = time.perf_counter()
        generate_marketplace(data / "generated", items, users, seed, time.time())
        gen_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        service = Service(Settings(data_dir=data))
        open_s = time.perf_counter() - t0
        try:
            ids = service.profiles.table.keys()
            asyncio.run(_drive(service, ids, min(200, requests), seed + 1))  # warm-up
            timings = asyncio.run(_drive(service, ids, requests, seed))
        finally:
            service.close()
    result: dict[str, Any] = percentiles([t["wall"] for t in timings])
    result["stages"] = {s: percentiles([t[s] for t in timings if s in t]) for s in STAGES}
    result.update(items=items, users=users, requests=requests,
                  generate_s=round(gen_s, 2), open_s=round(open_s, 2))
    return result
