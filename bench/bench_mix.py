"""In-process cost of the load bench's request mix: the pipeline alone, no HTTP, no wrk.

Opens a `Service` over a cached generated marketplace (1M items / 1M users by default; the
backends from the environment, so `TUIJIAN_FEATURES_URL=redis://…` measures the Redis
replica path) and sends the same mix as `recommend_mix.lua` — guess_you_like 50 /
detail_related 30 / feed 20, zipf users and items, n=20, exposures logged — one request at a
time. Prints per scene and per stage mean/p50/p99 ms and the mean cost of a request, which
is what bounds one core's throughput before the framework's share. `--profile FILE` writes a
pyinstrument text profile of the measured requests instead of timing them cleanly.

    python bench/bench_mix.py --requests 2000 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from harness import data_dir, generated_data
from tuijian.config import Settings
from tuijian.domain import RecommendRequest, Scene
from tuijian.serving.service import Service, settle_heap

MIX = ((Scene.GUESS_YOU_LIKE, 50), (Scene.DETAIL_RELATED, 30), (Scene.FEED, 20))


def requests(n: int, users: int, items: int, seed: int) -> list[RecommendRequest]:
    """The mix, drawn as recommend_mix.lua draws it (zipf with s = 1 over ids)."""
    rng = np.random.default_rng(seed)
    scenes = [s for s, w in MIX for _ in range(w)]
    out = []
    for _ in range(n):
        scene = scenes[int(rng.integers(len(scenes)))]
        req = RecommendRequest(scene, f"u{int((users + 1) ** rng.random())}", 20, time.time())
        if scene == Scene.DETAIL_RELATED:
            req.item_id = int((items + 1) ** rng.random())
        out.append(req)
    return out


async def drive(service: Service, reqs: list[RecommendRequest]) -> dict[str, list[float]]:
    seconds: dict[str, list[float]] = defaultdict(list)
    for req in reqs:
        req.now = time.time()
        t0 = time.perf_counter()
        rec = await service.pipeline.recommend(req)
        seconds[req.scene.value].append(time.perf_counter() - t0)
        for stage, s in rec.timings.items():
            seconds[f"stage.{stage}"].append(s)
    return seconds


def summary(seconds: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    out = {}
    for name, values in sorted(seconds.items()):
        ms = np.asarray(values) * 1000
        out[name] = {"n": len(ms), "mean_ms": round(float(ms.mean()), 3),
                     "p50_ms": round(float(np.percentile(ms, 50)), 3),
                     "p99_ms": round(float(np.percentile(ms, 99)), 3)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    generated = generated_data(args.items, args.users)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        service = Service(Settings.from_env(data_dir=data_dir(generated, Path(tmp))))
        open_s = time.perf_counter() - t0
        try:
            settle_heap()
            reqs = requests(args.warmup + args.requests, args.users, args.items, args.seed)
            asyncio.run(drive(service, reqs[:args.warmup]))
            measured = reqs[args.warmup:]
            t0 = time.perf_counter()
            if args.profile is not None:
                from pyinstrument import Profiler

                with Profiler(interval=0.0002) as profiler:
                    seconds = asyncio.run(drive(service, measured))
                args.profile.write_text(profiler.output_text(unicode=False, color=False))
            else:
                seconds = asyncio.run(drive(service, measured))
            per_request = (time.perf_counter() - t0) / len(measured)
        finally:
            service.close()
    result: dict[str, Any] = {
        "bench": "pipeline_mix", "items": args.items, "users": args.users,
        "requests": args.requests, "open_s": round(open_s, 1),
        "mean_ms_per_request": round(per_request * 1000, 3), "timings": summary(seconds)}
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"{result['mean_ms_per_request']:.3f} ms per request (mean over the mix)")
    for name, t in result["timings"].items():
        print(f"{name:30s} n={t['n']:5d} mean={t['mean_ms']:7.3f} p50={t['p50_ms']:7.3f} "
              f"p99={t['p99_ms']:7.3f}")


if __name__ == "__main__":
    main()
