"""Batch collaborative-filtering jobs: item-CF neighbour tables and user-CF recommendations.

Both fit the shared interaction models (recall/models) on the intent-weighted behavior matrix,
the same models `tuijian eval recall` measures, and publish id-keyed tables the service maps
onto its own item indexes at load time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa

from tuijian.domain import FloatArray, IntArray
from tuijian.jobs.artifacts import Artifact
from tuijian.jobs.base import JobContext
from tuijian.jobs.behavior import BehaviorMatrix, behavior_matrix
from tuijian.recall.models.registry import create_model

BATCH = 2048


TopK = Callable[[IntArray], tuple[IntArray, FloatArray]]


def _top_lists(ctx: JobContext, stage: str, keys: Sequence[object], top: TopK,
               item_ids: IntArray, key: str, other: str, key_type: pa.DataType) -> pa.Table:
    """Run `top` over every row index in batches and flatten the (n, k) blocks into a
    (key, other, score) table of ids, padding (-1) dropped."""
    out_keys: list[object] = []
    out_ids: list[IntArray] = [np.empty(0, np.int64)]
    out_scores: list[FloatArray] = [np.empty(0)]
    for start in range(0, len(keys), BATCH):
        rows = np.arange(start, min(start + BATCH, len(keys)))
        ids, scores = top(rows)
        r, c = np.nonzero(ids >= 0)
        out_keys += [keys[j] for j in rows[r].tolist()]
        out_ids.append(item_ids[ids[r, c]])
        out_scores.append(scores[r, c])
        ctx.progress(stage, 0.2 + 0.7 * (start + BATCH) / max(len(keys), 1))
    return pa.table({key: pa.array(out_keys, key_type),
                     other: pa.array(np.concatenate(out_ids)),
                     "score": pa.array(np.concatenate(out_scores))})


class ItemCFJob:
    """Item-item similarity (BM25-weighted cosine by default) → top-k neighbours per item."""

    name = "item_cf"

    def run(self, ctx: JobContext) -> Artifact:
        p = {"similarity": "bm25", "n_neighbors": 100, "k": 50, **ctx.params}
        m = behavior_matrix(ctx.engine, ctx.now)
        ctx.progress("fit", 0.2)
        model = create_model("item_cf", similarity=p["similarity"], n_neighbors=p["n_neighbors"])
        model.fit(m.X)
        k = int(p["k"])
        table = _top_lists(ctx, "neighbours", m.item_ids.tolist(),
                           lambda rows: model.similar_items(rows, k), m.item_ids,
                           "item_id", "neighbor_id", pa.int64())
        return ctx.artifacts.write(self.name, {"neighbors": table},
                                   _meta(m, p, table, ctx.now))


class UserCFJob:
    """User-user neighbours → each known user's top-k items, precomputed in batch."""

    name = "user_cf"

    def run(self, ctx: JobContext) -> Artifact:
        p = {"n_neighbors": 50, "k": 100, **ctx.params}
        m = behavior_matrix(ctx.engine, ctx.now)
        ctx.progress("fit", 0.2)
        model = create_model("user_cf", n_neighbors=p["n_neighbors"]).fit(m.X)
        k = int(p["k"])
        table = _top_lists(ctx, "recommend", m.user_ids,
                           lambda rows: model.recommend(rows, m.X[rows], k), m.item_ids,
                           "user_id", "item_id", pa.string())
        return ctx.artifacts.write(self.name, {"recommendations": table},
                                   _meta(m, p, table, ctx.now))


def _meta(m: BehaviorMatrix, params: dict[str, object], table: pa.Table, now: float
          ) -> dict[str, object]:
    return {"params": params, "users": len(m.user_ids), "items": int(m.item_ids.shape[0]),
            "interactions": int(m.X.nnz), "rows": table.num_rows, "now": now}


class MFJob:
    """ALS (implicit) on the behavior matrix → item and user factors for the `mf` source."""

    name = "mf"

    def run(self, ctx: JobContext) -> Artifact:
        p = {"factors": 64, "regularization": 50.0, "alpha": 10.0, "iterations": 15,
             **ctx.params}
        m = behavior_matrix(ctx.engine, ctx.now)
        ctx.progress("fit", 0.2)
        model = create_model("als", **p).fit(m.X)
        item_f = np.asarray(model.item_factors_, np.float32)  # type: ignore[attr-defined]
        user_f = np.asarray(model.user_factors_, np.float32)  # type: ignore[attr-defined]
        items = pa.table({"item_id": pa.array(m.item_ids),
                          "vector": pa.array(list(item_f), pa.list_(pa.float32()))})
        users = pa.table({"user_id": pa.array(m.user_ids, pa.string()),
                          "vector": pa.array(list(user_f), pa.list_(pa.float32()))})
        return ctx.artifacts.write(self.name, {"items": items, "users": users},
                                   _meta(m, p, items, ctx.now))


class TwoTowerJob:
    """The two-tower model (PyTorch) on the behavior matrix; the artifact is the saved model
    (towers, item vectors, faiss index) plus the item ids of its rows."""

    name = "two_tower"

    def run(self, ctx: JobContext) -> Artifact:
        p = {"epochs": 10, "random_state": 42, **ctx.params}
        m = behavior_matrix(ctx.engine, ctx.now)
        ctx.progress("fit", 0.2)
        model = create_model("two_tower", **p).fit(m.X)
        items = pa.table({"item_id": pa.array(m.item_ids)})
        return ctx.artifacts.write(self.name, {"items": items}, _meta(m, p, items, ctx.now),
                                   extra=lambda path: model.save(path / "model"))
