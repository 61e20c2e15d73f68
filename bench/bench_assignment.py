"""Experiment assignment per request: every built-in layer holding experiments (plus a launch,
a declared domain with its own layer, and whitelists), against the scene-defaults assigner
measured in the same run as the baseline. Prints one JSON line."""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np

from tuijian.config import load_strategies
from tuijian.domain import RecommendRequest, Scene
from tuijian.experiments.assignment import DefaultAssigner
from tuijian.experiments.platform import ExperimentPlatform
from tuijian.experiments.store import SqlExperimentStore

SCENES = ["guess_you_like", "feed"]


def _setup(platform: ExperimentPlatform) -> None:
    def exp(layer: str, ids: list[str], percent: float, **kw: object) -> None:
        variants = [{"name": "control" if i == 0 else f"v{i}", "stage_id": s}
                    for i, s in enumerate(ids)]
        platform.create({"name": f"{layer}-{percent}", "layer": layer, "scenes": SCENES,
                         "status": "running", "variants": variants, **kw}, "bench",
                        percent=percent)

    platform.put_domain({"name": "exclusive", "ranges": [[0, 100]]}, "bench")
    platform.put_layer({"name": "x_rank", "stage": "rank", "domain": "exclusive",
                        "buckets": 10_000}, "bench")
    exp("recall", ["r_default", "r_rrf"], 40, whitelist={f"qa{i}": "v1" for i in range(50)})
    exp("recall", ["r_default", "r_rrf"], 40)
    exp("rank", ["rk_rule", "rk_ctr", "rk_ctr_cvr"], 90)
    exp("rule", ["ru_default", "ru_weighted"], 50)
    exp("display", ["d_card", "d_big", "d_mixed"], 100)
    exp("x_rank", ["rk_rule", "rk_ctr"], 100)
    launched = platform.create({"name": "to launch", "layer": "recall",
                                "scenes": ["detail_related"], "variants": [
                                    {"name": "control", "stage_id": "r_related"},
                                    {"name": "v1", "stage_id": "r_default"}]}, "bench",
                               percent=10)
    platform.launch(launched.id, "v1", "bench", 50)


def _time(assign: object, reqs: list[RecommendRequest]) -> np.ndarray:
    fn = assign.assign  # type: ignore[attr-defined]
    out = np.empty(len(reqs))
    for i, r in enumerate(reqs):
        t0 = time.perf_counter()
        fn(r)
        out[i] = time.perf_counter() - t0
    return out * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=100_000)
    args = ap.parse_args()
    strategies = load_strategies()
    with tempfile.TemporaryDirectory() as d:
        platform = ExperimentPlatform(SqlExperimentStore(f"sqlite:///{d}/e.db"), strategies)
        _setup(platform)
        reqs = [RecommendRequest(Scene.GUESS_YOU_LIKE if i % 3 else Scene.FEED, f"user-{i}", 10,
                                 time.time()) for i in range(args.requests)]
        base = DefaultAssigner(strategies)
        _time(platform, reqs[:5000])  # warm up
        layered, default = _time(platform, reqs), _time(base, reqs)
        t0 = time.perf_counter()
        platform.revision = -1
        platform.refresh()
        recompile_ms = (time.perf_counter() - t0) * 1000
        platform.store.close()
    print(json.dumps({
        "bench": "experiment_assignment", "requests": args.requests,
        "experiments": len(platform.config.experiments),
        "p50_us": round(float(np.percentile(layered, 50)), 2),
        "p99_us": round(float(np.percentile(layered, 99)), 2),
        "baseline_p50_us": round(float(np.percentile(default, 50)), 2),
        "ratio_p50": round(float(np.percentile(layered, 50) / np.percentile(default, 50)), 1),
        "reload_ms": round(recompile_ms, 1),
    }))


if __name__ == "__main__":
    main()
