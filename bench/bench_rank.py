"""The rank stage: 300 candidates scored by a CTR model (GBDT+LR) and a CVR model (GBDT),
fused by `ctr * cvr ** 0.5`, at 1M items (target p99 ≤ 5 ms).

Models are trained on simulated logs (tuijian.rank.eval_runner.synthetic_data), deployed as
files and loaded through the model registry's loader, then asked to rank random candidate
sets drawn from a 1M-item catalog for users with real profiles. The rule ranker is measured on
the same candidate sets in the same run as the baseline.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from tuijian.data.generator import generate_marketplace
from tuijian.data.items import ColumnarItemStore
from tuijian.data.users import UserProfile, UserTable
from tuijian.domain import Candidates, RecommendRequest, Scene
from tuijian.rank.base import RankContext
from tuijian.rank.deployed import DeployedModel
from tuijian.rank.eval_runner import SyntheticSpec, synthetic_data
from tuijian.rank.model_ranker import ModelRanker
from tuijian.rank.rule_order import RuleOrderRanker
from tuijian.rank.training import TrainOptions, load_rows, train
from tuijian.serving.service import serving_threads, settle_heap, snapshot_and_journal


def trained(root: Path, out: Path) -> dict[str, DeployedModel]:
    synthetic_data(root, SyntheticSpec(requests=15_000))
    store = ColumnarItemStore.open(*snapshot_and_journal(root, "items"))
    users = UserTable.open(*snapshot_and_journal(root, "users"))
    rows = load_rows(pq.read_table(root / "samples" / "samples.parquet"), store, users)
    models = {}
    for name, opts in {"ctr": TrainOptions("gbdt_lr"),
                       "cvr": TrainOptions("gbdt", objective="convert")}.items():
        model, _ = train(rows, opts)
        model.save(out / name)
        models[name] = DeployedModel.load(out / name)  # as the registry loads it
    return models


def profile(rng: np.random.Generator, store: ColumnarItemStore) -> UserProfile:
    p = UserProfile(user_id="u1", known=True, city=int(rng.integers(24)))
    clicked = rng.integers(0, len(store), 30)
    for f in ("line", "category", "district", "brand", "series", "price_band"):
        vals = store.column(f)[clicked]
        p.interests[f] = {int(v): float(c) for v, c in zip(*np.unique(vals, return_counts=True),
                                                            strict=True)}
        p.shown_tags[f] = {int(v): 10 * int(c) for v, c in
                           zip(*np.unique(vals, return_counts=True), strict=True)}
        p.clicked_tags[f] = {int(v): 1 for v in vals.tolist()}
    p.n_shown, p.n_clicked = 300, 30
    p.recent_clicks.extend(clicked.tolist())
    return p


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--candidates", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3000)
    parser.add_argument("--logs", type=Path, help="Keep (and reuse) the simulated logs here.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tuijian-bench-") as tmp:
        models = trained(args.logs or Path(tmp) / "logs", Path(tmp) / "models")
        generate_marketplace(Path(tmp) / "big", args.items, 1000, 1, now=time.time())
        store = ColumnarItemStore(pq.read_table(Path(tmp) / "big" / "items.parquet"))
        users = UserTable(pq.read_table(Path(tmp) / "big" / "users.parquet"))
    ranker = ModelRanker({"models": {"ctr": "ctr", "cvr": "cvr"},
                          "formula": "ctr * cvr ** 0.5"})
    baseline = RuleOrderRanker({})
    rng = np.random.default_rng(5)
    prof = profile(rng, store)
    serving_threads()
    settle_heap()
    model_ms, rule_ms = [], []
    for r in range(args.rounds):
        idx = rng.choice(len(store), args.candidates, replace=False).astype(np.int64)
        cands = Candidates(idx, rng.random(len(idx)), rng.integers(2, 13, len(idx)).astype(
            np.int16), rng.integers(1, 1 << 13, len(idx)))
        req = RecommendRequest(Scene.GUESS_YOU_LIKE, "u1", 10, time.time(), platform="ios")
        ctx = RankContext(req, prof, store, 0.03, users, models.get)
        t0 = time.perf_counter()
        scores = ranker.score(cands, ctx)
        t1 = time.perf_counter()
        baseline.score(cands, ctx)
        t2 = time.perf_counter()
        if r == 0 and (ctx.degraded or not np.all(np.isfinite(scores))):
            raise SystemExit(f"the model ranker did not rank: {ctx.degraded}")
        model_ms.append((t1 - t0) * 1000)
        rule_ms.append((t2 - t1) * 1000)
    m, b = np.array(model_ms[100:]), np.array(rule_ms[100:])
    print(json.dumps({
        "bench": "rank", "items": args.items, "candidates": args.candidates,
        "models": "ctr=gbdt_lr, cvr=gbdt", "p50_ms": round(float(np.percentile(m, 50)), 3),
        "p99_ms": round(float(np.percentile(m, 99)), 3),
        "rule_p50_ms": round(float(np.percentile(b, 50)), 3),
        "rule_p99_ms": round(float(np.percentile(b, 99)), 3),
        "ratio_p50": round(float(np.percentile(m, 50) / np.percentile(b, 50)), 1),
    }))


if __name__ == "__main__":
    main()
