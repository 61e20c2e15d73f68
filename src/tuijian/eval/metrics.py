"""Top-k ranking metrics with Microsoft Recommenders' `python_evaluation` definitions.

Relevance is binary (an item in the user's test set is relevant). Only users with at least one
relevant item are averaged over, as their "common users" rule does when every test user gets a
list. Definitions, for a user with R relevant items and hit indicators h_1..h_k:
- precision@k = Σh / k (a short list still divides by k);
- recall@k = Σh / R;
- nDCG@k = Σ h_i / log(1 + i) over IDCG = Σ_{i ≤ min(k, R)} 1 / log(1 + i) (the log base
  cancels, so their natural log and our log2 agree);
- MAP@k = Σ_i h_i · precision@i / min(k, R): their `map_at_k`. Their older `map_at_k`, now
  `map`, divides by R instead, and is what older benchmark tables print as MAP;
- catalog coverage = distinct recommended items / distinct items in train.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from tuijian.domain import IntArray


def _hits(
    recs: IntArray, relevant: sp.csr_matrix, k: int
) -> tuple[npt.NDArray[np.bool_], IntArray]:
    """hits[u, i]: recs[u, i] is relevant for u; plus R per user. Rows with R = 0 dropped."""
    relevant = sp.csr_matrix(relevant)
    if recs.shape[0] != relevant.shape[0]:
        raise ValueError(f"{recs.shape[0]} recommendation rows for {relevant.shape[0]} users")
    recs = np.asarray(recs, dtype=np.int64)[:, :k]
    n_items = relevant.shape[1]
    rows = np.repeat(np.arange(relevant.shape[0], dtype=np.int64), np.diff(relevant.indptr))
    wanted = rows * n_items + relevant.indices
    offered = np.arange(recs.shape[0], dtype=np.int64)[:, None] * n_items + recs
    hits = np.isin(offered, wanted) & (recs >= 0)
    n_relevant = np.diff(relevant.indptr).astype(np.int64)
    keep = n_relevant > 0
    return hits[keep], n_relevant[keep]


def precision_at_k(recs: IntArray, relevant: sp.csr_matrix, k: int) -> float:
    hits, _ = _hits(recs, relevant, k)
    return float(hits.sum(axis=1).mean() / k) if hits.size else 0.0


def recall_at_k(recs: IntArray, relevant: sp.csr_matrix, k: int) -> float:
    hits, n_relevant = _hits(recs, relevant, k)
    return float((hits.sum(axis=1) / n_relevant).mean()) if hits.size else 0.0


def ndcg_at_k(recs: IntArray, relevant: sp.csr_matrix, k: int) -> float:
    hits, n_relevant = _hits(recs, relevant, k)
    if not hits.size:
        return 0.0
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = hits @ discount[: hits.shape[1]]
    idcg = np.cumsum(discount)[np.minimum(n_relevant, k) - 1]
    return float((dcg / idcg).mean())


def map_at_k(recs: IntArray, relevant: sp.csr_matrix, k: int) -> float:
    hits, n_relevant = _hits(recs, relevant, k)
    if not hits.size:
        return 0.0
    precision_at_i = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    average_precision = (precision_at_i * hits).sum(axis=1) / np.minimum(n_relevant, k)
    return float(average_precision.mean())


def catalog_coverage(recs: IntArray, n_catalog: int) -> float:
    """Share of the catalog (items seen in train) that appears in at least one list."""
    return float(np.unique(recs[recs >= 0]).size / n_catalog) if n_catalog else 0.0


def ranking_metrics(recs: IntArray, relevant: sp.csr_matrix, k: int) -> dict[str, float]:
    """The four accuracy metrics under the names the benchmark JSON uses."""
    return {
        f"ndcg@{k}": ndcg_at_k(recs, relevant, k),
        f"precision@{k}": precision_at_k(recs, relevant, k),
        f"recall@{k}": recall_at_k(recs, relevant, k),
        f"map@{k}": map_at_k(recs, relevant, k),
    }
