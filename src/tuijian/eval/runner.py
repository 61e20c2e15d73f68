"""`tuijian eval recall`: every interaction model on a public dataset, under one protocol.

The protocol is the Microsoft Recommenders benchmark's (per-user stratified 75/25 split with a
fixed seed, every rating an implicit interaction, items seen in training never recommended), so
the numbers compare with their published table. Hyperparameters are chosen on a validation
split carved out of the training split the same way; the test split is scored once per model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from tuijian.domain import IntArray
from tuijian.eval.datasets import load_interactions, resolve
from tuijian.eval.grids import candidates
from tuijian.eval.metrics import catalog_coverage, ndcg_at_k, ranking_metrics
from tuijian.eval.split import BoolArray, stratified_split
from tuijian.eval.streams import ANCHORS, BUILDERS, DECAY, recommend_streams
from tuijian.recall.fusion import fuse
from tuijian.recall.models.base import InteractionModel
from tuijian.recall.models.registry import MODELS, create_model

ProgressFn = Callable[[str, float], None]
RATIO = 0.75
STREAM_SOURCES = tuple(BUILDERS)  # evaluated by replaying events through the serving code
FUSION_DEPTH = 100  # how deep each model's list goes into a fused strategy
# Fused strategies, evaluated with the serving path's own fusion code (recall/fusion.py).
FUSED: dict[str, tuple[str, tuple[str, ...]]] = {
    "fused_rrf(ease+als)": ("rrf", ("ease", "als")),
    "fused_rrf(ease+als+item_cf)": ("rrf", ("ease", "als", "item_cf")),
    "fused_rrf(ease+als+two_tower)": ("rrf", ("ease", "als", "two_tower")),
    "fused_quota(ease+als)": ("quota", ("ease", "als")),
    "fused_tiered(ease+als+item_cf)": ("tiered", ("ease", "als", "item_cf")),
}


@dataclass(slots=True)
class Fold:
    """A train matrix, the held-out matrix, and the users scored (held-out items and history)."""

    train: sp.csr_matrix
    test: sp.csr_matrix
    users: IntArray

    @classmethod
    def build(
        cls, users: IntArray, items: IntArray, in_train: BoolArray, shape: tuple[int, int]
    ) -> Fold:
        train = _binary(users[in_train], items[in_train], shape)
        test = _binary(users[~in_train], items[~in_train], shape)
        scored = np.flatnonzero((test.getnnz(axis=1) > 0) & (train.getnnz(axis=1) > 0))
        return cls(train, test, scored.astype(np.int64))

    def recommend(self, model: InteractionModel, k: int) -> IntArray:
        recs, _ = model.recommend(self.users, self.train[self.users], k, exclude_seen=True)
        return np.asarray(recs, dtype=np.int64)


def _binary(users: IntArray, items: IntArray, shape: tuple[int, int]) -> sp.csr_matrix:
    """Each (user, item) pair once, weight 1: a rating is an interaction, whatever its value."""
    m = sp.csr_matrix((np.ones(users.size), (users, items)), shape=shape)
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def _tune(
    name: str, fold: Fold, k: int, seed: int, report: Callable[[str], None]
) -> tuple[dict[str, Any], float, IntArray]:
    """The grid point with the best validation nDCG@k (first one wins ties), its score, and
    its deep validation lists (what fused strategies are chosen on)."""
    best: tuple[dict[str, Any], float, IntArray] = ({}, -1.0, np.empty((0, 0), np.int64))
    for params in candidates(name, seed):
        report(f"{name}: validating {params}")
        model = create_model(name, **params).fit(fold.train)
        deep = fold.recommend(model, FUSION_DEPTH)
        score = ndcg_at_k(deep[:, :k], fold.test[fold.users], k)
        if score > best[1]:
            best = (params, score, deep)
    return best


def _fused(mode: str, lists: list[IntArray], k: int) -> IntArray:
    """Each user's lists fused exactly as a recall strategy fuses its sources."""
    out = np.full((lists[0].shape[0], k), -1, np.int64)
    ks = [FUSION_DEPTH] * len(lists)
    for u in range(out.shape[0]):
        valid = [row[u][row[u] >= 0] for row in lists]
        top = fuse([(c, ids, np.zeros(ids.shape[0])) for c, ids in enumerate(valid)], ks, k,
                   mode).idx
        out[u, : top.shape[0]] = top
    return out


def evaluate(
    dataset: str,
    data_dir: str | Path | None = None,
    k: int = 10,
    models: list[str] | None = None,
    seed: int = 42,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Tune on validation, refit on train, score on test; one JSON-ready dict for the CLI.

    `progress(message, fraction_done)` is called before each fit.
    """
    names = list(MODELS) if models is None else [m for m in models if m not in STREAM_SOURCES]
    unknown = [name for name in names if name not in MODELS]
    if unknown:
        raise KeyError(f"unknown model(s) {unknown}; known: {', '.join(MODELS)}")
    table = load_interactions(dataset, data_dir)
    raw_users, users = np.unique(table["user"].to_numpy(), return_inverse=True)
    raw_items, items = np.unique(table["item"].to_numpy(), return_inverse=True)
    users, items = users.astype(np.int64), items.astype(np.int64)
    shape = (raw_users.size, raw_items.size)
    in_train = stratified_split(users, RATIO, seed)
    test_fold = Fold.build(users, items, in_train, shape)
    fit_users, fit_items = users[in_train], items[in_train]
    val_fold = Fold.build(fit_users, fit_items, stratified_split(fit_users, RATIO, seed), shape)
    n_catalog = int(np.count_nonzero(test_fold.train.getnnz(axis=0)))

    skipped = {name: MODELS[name].unsupported(*shape) for name in names}
    streams = [n for n in STREAM_SOURCES if models is None or n in models]
    total = sum(len(candidates(name, seed)) + 1 for name in names if skipped[name] is None)
    total = max(total + len(streams), 1)
    done = 0

    def report(message: str) -> None:
        nonlocal done
        if progress is not None:
            progress(message, done / total)
        done += 1

    results: dict[str, Any] = {}
    deep: dict[str, IntArray] = {}
    val_deep: dict[str, IntArray] = {}
    for name in names:
        if (reason := skipped[name]) is not None:
            results[name] = {"skipped": reason}
            continue
        params, val_ndcg, val_deep[name] = _tune(name, val_fold, k, seed, report)
        report(f"{name}: fitting on train with {params}")
        model = create_model(name, **params)
        started = time.perf_counter()
        model.fit(test_fold.train)
        train_s = time.perf_counter() - started
        deep[name] = test_fold.recommend(model, FUSION_DEPTH)
        recs = deep[name][:, :k]
        results[name] = ranking_metrics(recs, test_fold.test[test_fold.users], k) | {
            "coverage": catalog_coverage(recs, n_catalog),
            "train_s": round(train_s, 3),
            "params": model.get_params(),
            f"validation_ndcg@{k}": val_ndcg,
        }
    if streams:
        ts = table["timestamp"].to_numpy().astype(np.int64)
        for name in streams:
            report(f"{name}: replaying the training events")
            recs, build_s = recommend_streams(name, users[in_train], items[in_train],
                                              ts[in_train], shape[1], test_fold.users, k)
            results[name] = ranking_metrics(recs, test_fold.test[test_fold.users], k) | {
                "coverage": catalog_coverage(recs, n_catalog),
                "train_s": round(build_s, 3),
                "params": {"anchors": ANCHORS, "decay": DECAY, "tuned": False},
            }
    for fused, (mode, parts) in FUSED.items():
        if all(p in deep for p in parts):
            recs = _fused(mode, [deep[p] for p in parts], k)
            val_recs = _fused(mode, [val_deep[p] for p in parts], k)
            results[fused] = ranking_metrics(recs, test_fold.test[test_fold.users], k) | {
                "coverage": catalog_coverage(recs, n_catalog),
                "train_s": round(sum(results[p]["train_s"] for p in parts), 3),
                "params": {"fusion": mode, "sources": list(parts), "depth": FUSION_DEPTH},
                f"validation_ndcg@{k}": ndcg_at_k(val_recs, val_fold.test[val_fold.users], k),
            }
    scored = {n: r for n, r in results.items() if f"validation_ndcg@{k}" in r}
    singles = [n for n in scored if n not in FUSED]
    fused_names = [n for n in scored if n in FUSED]

    def by_validation(names: list[str]) -> str | None:
        return max(names, key=lambda n: scored[n][f"validation_ndcg@{k}"], default=None)

    if progress is not None:
        progress("done", 1.0)
    return {
        "protocol": {
            "dataset": dataset,
            "source": str(resolve(dataset, data_dir)),
            "users": shape[0],
            "items": shape[1],
            "interactions": table.num_rows,
            "train_interactions": int(test_fold.train.nnz),
            "test_interactions": int(test_fold.test.nnz),
            "test_users": int(test_fold.users.size),
            "split": f"per-user stratified {RATIO:.0%}/{1 - RATIO:.0%} "
            "(Microsoft Recommenders python_stratified_split semantics)",
            "seed": seed,
            "k": k,
            "relevance": "binary: every rating is an implicit interaction",
            "exclude_seen": True,
            "tuning": f"grid search on nDCG@{k} of a validation split carved from train the "
            "same way; the chosen params are refitted on all of train",
            "metrics": "Microsoft Recommenders python_evaluation: ndcg_at_k, precision_at_k, "
            "recall_at_k, map_at_k (normalised by min(k, #relevant)), catalog_coverage",
        },
        "models": results,
        # chosen on the validation split only: the honest "best" to quote
        "selected": {"single": by_validation(singles), "fused": by_validation(fused_names)},
    }
