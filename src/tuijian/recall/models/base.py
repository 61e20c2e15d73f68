"""The contract of interaction models: collaborative filtering, factorization, closed forms.

Recall sources and the offline evaluation share these models, so a number in the benchmark is
the number of the model the service runs. Models see only dense indexes and a users × items CSR
of float weights; turning ids into indexes and events into weights is the caller's job.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self

import numpy as np
import scipy.sparse as sp

from tuijian.domain import FloatArray, IntArray

# Dense score blocks are at most this many floats (32 MB), whatever the batch size.
_SCORE_BLOCK = 1 << 22


class InteractionModel(Protocol):
    name: str

    def fit(self, X: sp.csr_matrix) -> Self:
        """Learn from X: users × items weights, rows and columns dense indexes."""
        ...

    def recommend(
        self, users: IntArray, X: sp.csr_matrix, k: int, exclude_seen: bool = True
    ) -> tuple[IntArray, FloatArray]:
        """Top-k (items, scores) per user, best first, padded with -1 / -inf.

        `X` holds those users' current interactions, one row per entry of `users`, so a user
        with history newer than the fit is scored on it (item-based models use X, factor
        models their learned user factors) and seen items can be excluded.
        """
        ...

    def similar_items(self, items: IntArray, k: int) -> tuple[IntArray, FloatArray]:
        """Top-k neighbours per item (self excluded); NotImplementedError if not meaningful."""
        ...

    def get_params(self) -> dict[str, Any]: ...

    def save(self, path: str | Path) -> None: ...

    @classmethod
    def load(cls, path: str | Path) -> Self: ...


def top_k(
    scores: FloatArray, k: int, exclude: sp.csr_matrix | None = None
) -> tuple[IntArray, FloatArray]:
    """Row-wise top-k of a dense score block; `exclude`'s stored entries (row-aligned) never win.

    Entries scored -inf are padding: reported as item -1, so a short list is visible as such.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    scores = np.array(scores, dtype=np.float64)
    n_rows, n_items = scores.shape
    if exclude is not None:
        rows = np.repeat(np.arange(n_rows), np.diff(exclude.indptr))
        scores[rows, exclude.indices] = -np.inf
    width = min(k, n_items)
    part = np.argpartition(-scores, width - 1, axis=1)[:, :width]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    ids = np.full((n_rows, k), -1, dtype=np.int64)
    best = np.full((n_rows, k), -np.inf)
    ids[:, :width] = np.take_along_axis(part, order, axis=1)
    best[:, :width] = np.take_along_axis(part_scores, order, axis=1)
    ids[np.isneginf(best)] = -1
    return ids, best


def top_per_row(m: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """Keep each row's n largest stored entries: neighbour lists without densifying."""
    m = sp.csr_matrix(m)
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    order = np.lexsort((-m.data, rows))
    rank = np.arange(order.size) - m.indptr[rows[order]]
    keep = np.sort(order[rank < n])
    return sp.csr_matrix((m.data[keep], (rows[keep], m.indices[keep])), shape=m.shape)


def top_k_sparse(m: sp.csr_matrix, k: int) -> tuple[IntArray, FloatArray]:
    """Row-wise top-k of a sparse block, where unstored entries are absent (not zero)."""
    dense = np.full(m.shape, -np.inf)
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    dense[rows, m.indices] = m.data
    return top_k(dense, k)


class ModelBase:
    """Shared plumbing: batched recommend over `_score`, parameters and persistence.

    Subclasses store hyperparameters in `__init__` under the argument names (the sklearn
    contract, which `get_params` and `load` rely on) and list learned attributes, all ending
    in `_`, in `_state`.
    """

    name: str
    _state: ClassVar[tuple[str, ...]]

    @classmethod
    def unsupported(cls, n_users: int, n_items: int) -> str | None:
        """Why this model cannot fit data of this size (None when it can), checked up front."""
        return None

    def fit(self, X: sp.csr_matrix) -> Self:
        raise NotImplementedError

    def _score(self, users: IntArray, X: sp.csr_matrix) -> FloatArray:
        """Dense scores (len(users) × n_items) from the learned state."""
        raise NotImplementedError

    def recommend(
        self, users: IntArray, X: sp.csr_matrix, k: int, exclude_seen: bool = True
    ) -> tuple[IntArray, FloatArray]:
        users = np.asarray(users, dtype=np.int64)
        X = sp.csr_matrix(X)
        if X.shape[0] != users.size:
            raise ValueError(f"X has {X.shape[0]} rows for {users.size} users")
        step = max(1, _SCORE_BLOCK // max(1, X.shape[1]))
        ids = np.empty((users.size, k), dtype=np.int64)
        scores = np.empty((users.size, k))
        for start in range(0, users.size, step):
            block = slice(start, start + step)
            rows = X[block]
            ids[block], scores[block] = top_k(
                self._score(users[block], rows), k, rows if exclude_seen else None
            )
        return ids, scores

    def similar_items(self, items: IntArray, k: int) -> tuple[IntArray, FloatArray]:
        raise NotImplementedError(f"{self.name} has no item-item similarity")

    def get_params(self) -> dict[str, Any]:
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {p: getattr(self, p) for p in names}

    def save(self, path: str | Path) -> None:
        """Write `path/params.json` and `path/state.npz` (CSR state split into its arrays)."""
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {}
        for attr in self._state:
            value = getattr(self, attr)
            if sp.issparse(value):
                csr = sp.csr_matrix(value)
                arrays |= {
                    f"{attr}.data": csr.data,
                    f"{attr}.indices": csr.indices,
                    f"{attr}.indptr": csr.indptr,
                    f"{attr}.shape": np.asarray(csr.shape),
                }
            else:
                arrays[attr] = np.asarray(value)
        np.savez(out / "state.npz", **arrays)
        meta = {"model": self.name, "params": self.get_params()}
        (out / "params.json").write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def unfitted_from(cls, src: Path) -> tuple[Self, dict[str, Any]]:
        """The saved model's class, checked, built from its saved params; and its meta."""
        meta: dict[str, Any] = json.loads((src / "params.json").read_text())
        if meta["model"] != cls.name:
            raise ValueError(f"{src} holds a {meta['model']!r} model, not {cls.name!r}")
        return cls(**meta["params"]), meta

    @classmethod
    def load(cls, path: str | Path) -> Self:
        src = Path(path)
        model, _ = cls.unfitted_from(src)
        with np.load(src / "state.npz", allow_pickle=False) as state:
            for attr in cls._state:
                if attr in state:
                    setattr(model, attr, state[attr])
                else:
                    parts = (state[f"{attr}.{p}"] for p in ("data", "indices", "indptr"))
                    shape = tuple(state[f"{attr}.shape"])
                    setattr(model, attr, sp.csr_matrix(tuple(parts), shape=shape))
        return model
