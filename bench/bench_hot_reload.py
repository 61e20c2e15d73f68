"""Rank model hot reload under load: predictions served at full speed in one thread while the
main thread deploys and polls N new versions (load + warm-up + swap, as the service's background
loop does). Every request must get a model and none may fail; the latency of requests that
overlap a deploy+poll is compared with a baseline measured in the same run before any swap.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tuijian.rank.deployed import DeployedModel, Manifest
from tuijian.rank.features.featureset import FeatureSet, Raw
from tuijian.rank.features.spec import FeatureConfig, FeatureSpec
from tuijian.rank.live_models import LiveModels
from tuijian.rank.model_registry import ModelRegistry
from tuijian.rank.models.base import TrainSet
from tuijian.rank.models.registry import model_class
from tuijian.serving.metrics import Metrics

ITEM_BUCKETS = 1 << 20  # an item-id embedding field: the bulk of an LR weights file


def config() -> FeatureConfig:
    return FeatureConfig(name="bench", features=[
        FeatureSpec(name="price", side="item", inputs=["price"], transform="normalize",
                    log1p=True),
        FeatureSpec(name="quality", side="item", inputs=["quality"], transform="numeric"),
        FeatureSpec(name="category", side="item", inputs=["category"],
                    transform="categorical", size=50),
        FeatureSpec(name="hour", side="context", inputs=["hour"], transform="bucketize",
                    boundaries=[3.0, 6.0, 9.0, 12.0, 15.0, 18.0, 21.0]),
        FeatureSpec(name="user_category", side="cross", inputs=["user_segment", "category"],
                    transform="hash_cross", buckets=4096),
        FeatureSpec(name="item_id", side="item", inputs=["item_id"], transform="embedding_id",
                    buckets=ITEM_BUCKETS),
    ])


def raw_rows(n: int, seed: int) -> dict[str, npt.NDArray[Any]]:
    rng = np.random.default_rng(seed)
    return {"price": rng.lognormal(6, 1, n), "quality": rng.random(n),
            "category": rng.integers(0, 50, n), "hour": rng.integers(0, 24, n).astype(float),
            "user_segment": rng.integers(0, 20, n), "item_id": rng.integers(0, 5_000_000, n)}


def build_model(path: Path, kind: str, rows: int) -> None:
    raw = raw_rows(rows, 1)
    features = FeatureSet.fit(config(), raw)
    x = features.transform(raw)
    rng = np.random.default_rng(2)
    logit = -2.0 + 0.8 * raw["quality"] + 0.05 * (raw["category"] % 7)
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(float)
    params: dict[str, Any] = {"n_estimators": 200} if kind == "gbdt" else {}
    model = model_class(kind)(features.layout, "binary", params)
    model.fit(TrainSet(x, y))
    layout = features.layout
    DeployedModel(Manifest(kind=kind, objective="click", task="binary", params=params,
                           n_dense=layout.n_dense, field_sizes=list(layout.field_sizes),
                           train_rows=rows), features, model).save(path)


def p99(ms: list[float]) -> float:
    return round(float(np.percentile(ms, 99)), 4) if ms else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kind", default="lr", choices=["lr", "gbdt"])
    parser.add_argument("--versions", type=int, default=20)
    parser.add_argument("--batch", type=int, default=150, help="candidates per request")
    parser.add_argument("--rows", type=int, default=20_000, help="training rows")
    parser.add_argument("--baseline-s", type=float, default=2.0)
    parser.add_argument("--gap-s", type=float, default=0.1, help="pause between deploys")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tuijian-bench-") as tmp:
        src = Path(tmp) / "model"
        build_model(src, args.kind, args.rows)
        model_mb = sum(f.stat().st_size for f in src.iterdir()) / 1e6
        registry = ModelRegistry(Path(tmp) / "rank_models")
        live = LiveModels(registry, Metrics())
        registry.deploy(src, "ctr")
        live.poll()

        raw: Raw = raw_rows(args.batch, 3)
        stop = threading.Event()
        starts: list[float] = []
        took: list[float] = []
        failed = [0]

        def serve() -> None:
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    model = live.get("ctr")
                    if model is None:
                        failed[0] += 1
                        continue
                    model.predict(raw)
                except Exception:
                    failed[0] += 1
                    continue
                starts.append(t0)
                took.append(time.perf_counter() - t0)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        time.sleep(args.baseline_s)
        baseline_n = len(took)
        windows: list[tuple[float, float]] = []
        deploy_ms, poll_ms = [], []
        swaps = 0
        try:
            for _ in range(args.versions):
                w0 = time.perf_counter()
                registry.deploy(src, "ctr")
                w1 = time.perf_counter()
                swaps += len(live.poll())
                w2 = time.perf_counter()
                windows.append((w0, w2))
                deploy_ms.append((w1 - w0) * 1000)
                poll_ms.append((w2 - w1) * 1000)
                time.sleep(args.gap_s)
        finally:
            stop.set()
            thread.join()

    n = min(len(starts), len(took))
    start_a, took_a = np.array(starts[:n]), np.array(took[:n])
    end_a = start_a + took_a
    during = np.zeros(n, bool)
    for w0, w1 in windows:
        during |= (start_a < w1) & (end_a > w0)
    during[:baseline_n] = False
    ms = took_a * 1000
    print(json.dumps({
        "bench": "hot_reload", "kind": args.kind, "batch": args.batch,
        "model_mb": round(model_mb, 1), "versions": args.versions,
        "requests": n + failed[0], "failed": failed[0], "swaps": swaps,
        "requests_during_swaps": int(during.sum()),
        "p99_ms_during_swaps": p99(ms[during].tolist()),
        "p99_ms_baseline": p99(ms[:baseline_n].tolist()),
        "p50_ms_baseline": round(float(np.median(ms[:baseline_n])), 4),
        "deploy_ms_p50": round(float(np.median(deploy_ms)), 1),
        "poll_ms_p50": round(float(np.median(poll_ms)), 1),
    }))


if __name__ == "__main__":
    main()
