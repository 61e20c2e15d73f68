"""What latent-factor models share once trained: dot-product scoring and factor similarity."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

# A dependency of implicit, which it asks callers to use; it ships no type information.
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from tuijian.domain import FloatArray, IntArray
from tuijian.recall.models.base import ModelBase, top_k


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """implicit parallelises itself; a BLAS thread pool on top oversubscribes the cores."""
    with threadpool_limits(1, "blas"):
        yield


class FactorModel(ModelBase):
    """Scores with the learned user factors; X serves only to exclude seen items.

    Factor models know the users they were fitted on; a user index outside that range is an
    error rather than a silent popularity fallback (the recall layer owns fallbacks).
    """

    _state = ("user_factors_", "item_factors_")
    user_factors_: npt.NDArray[np.float32]
    item_factors_: npt.NDArray[np.float32]

    def _fit_implicit(self, estimator: Callable[..., Any], X: sp.csr_matrix,
                      **params: Any) -> Self:
        """Fit one of implicit's factorization models and keep its factors as numpy."""
        with single_threaded_blas():
            mf = estimator(**params)
            mf.fit(sp.csr_matrix(X, dtype=np.float32), show_progress=False)
        self.user_factors_ = np.asarray(mf.user_factors, dtype=np.float32)
        self.item_factors_ = np.asarray(mf.item_factors, dtype=np.float32)
        return self

    def _score(self, users: IntArray, X: sp.csr_matrix) -> FloatArray:
        n_users = self.user_factors_.shape[0]
        if users.size and (users.min() < 0 or users.max() >= n_users):
            raise ValueError(f"{self.name} was fitted on {n_users} users; got index out of range")
        return np.asarray(self.user_factors_[users] @ self.item_factors_.T, dtype=np.float64)

    def similar_items(self, items: IntArray, k: int) -> tuple[IntArray, FloatArray]:
        """Cosine between item factors."""
        norms = np.linalg.norm(self.item_factors_, axis=1)
        norms[norms == 0] = 1.0
        unit = self.item_factors_ / norms[:, None]
        items = np.asarray(items, dtype=np.int64)
        sims = np.asarray(unit[items] @ unit.T, dtype=np.float64)
        sims[np.arange(items.size), items] = -np.inf
        return top_k(sims, k)
