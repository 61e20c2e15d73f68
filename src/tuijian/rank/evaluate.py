"""Ranking metrics: AUC, group AUC (per user), log loss and calibration.

GAUC is the exposure-weighted mean of per-user AUCs over users with both labels: it is what a
ranker actually does (order one user's list), where global AUC also rewards telling active
users from idle ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import log_loss, roc_auc_score

from tuijian.domain import FloatArray


def auc(y: FloatArray, p: FloatArray) -> float:
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def gauc(y: FloatArray, p: FloatArray, groups: npt.NDArray[Any]) -> float:
    """Per-group AUC by the rank-sum formula, vectorized over all groups at once."""
    _, g = np.unique(groups, return_inverse=True)
    order = np.lexsort((p, g))
    g, y, p = g[order], y[order], p[order]
    # 1-based ranks within each group, ties averaged: runs of equal (group, score) share the
    # mean of their positions, then each group's starting position is subtracted
    new_run = np.ones(len(p), bool)
    new_run[1:] = (g[1:] != g[:-1]) | (p[1:] != p[:-1])
    starts = np.flatnonzero(new_run) + 1
    ends = np.append(starts[1:] - 1, len(p))
    ranks = ((starts + ends) / 2.0)[np.cumsum(new_run) - 1] - np.searchsorted(g, g)
    n = np.bincount(g).astype(np.float64)
    pos = np.bincount(g, weights=y)
    neg = n - pos
    rank_sum = np.bincount(g, weights=ranks * y)
    ok = (pos > 0) & (neg > 0)
    aucs = (rank_sum[ok] - pos[ok] * (pos[ok] + 1) / 2) / (pos[ok] * neg[ok])
    return float(np.average(aucs, weights=n[ok])) if ok.any() else float("nan")


def calibration(y: FloatArray, p: FloatArray) -> float:
    """Mean prediction over observed rate: 1.0 is calibrated, which push thresholds and the
    fusion formula rely on."""
    return float(p.mean() / y.mean()) if y.mean() > 0 else float("nan")


def binary_metrics(y: FloatArray, p: FloatArray, groups: npt.NDArray[Any] | None = None
                   ) -> dict[str, float]:
    out = {"auc": auc(y, p), "logloss": float(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7),
                                                        labels=[0, 1])),
           "calibration": calibration(y, p)}
    if groups is not None:
        out["gauc"] = gauc(y, p, groups)
    return out


def regression_metrics(y: FloatArray, p: FloatArray) -> dict[str, float]:
    return {"rmse": float(np.sqrt(np.mean((y - p) ** 2))),
            "corr": float(np.corrcoef(y, p)[0, 1]) if len(y) > 1 else float("nan")}
