"""Approximate nearest-neighbour search over item embeddings, by inner product, through faiss.

Why faiss: it is maintained (Meta, regular releases, CPU wheels on PyPI), its exact flat scan is
a tuned BLAS kernel, and its HNSW graph answers top-k over millions of vectors in well under a
millisecond, with search-time parameters that are safe to pass per call from several threads.
Below `EXACT_BELOW` items an exact scan is both fast enough and free of recall loss, so the
index only turns approximate where it has to.

Scores are raw inner products: callers that want cosine L2-normalise the vectors themselves
(the two-tower model does, inside its towers).
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from tuijian.domain import FloatArray, IntArray

# Exact below this many items: a flat scan of 50k × 64 floats is ~1 ms per query batch row.
EXACT_BELOW = 50_000
# Recall serves many requests in parallel; more faiss threads per request only oversubscribe.
FAISS_THREADS = 2


def _limit_threads() -> None:
    faiss.omp_set_num_threads(FAISS_THREADS)


class ItemIndex:
    """An inner-product index over item vectors whose row i is item i (ids are row numbers).

    `search` over-fetches by the largest exclusion row in the batch, drops excluded ids and
    returns exactly k per query, padded with -1 / -inf like `models.base.top_k`, so models
    can hand its output straight back from `recommend`.
    """

    def __init__(self, index: faiss.Index, ef_search: int = 128) -> None:
        self.index = index
        self.ef_search = ef_search

    @classmethod
    def build(
        cls,
        vectors: npt.ArrayLike,
        exact_below: int = EXACT_BELOW,
        hnsw_m: int = 32,
        ef_construction: int = 200,
        ef_search: int = 128,
    ) -> ItemIndex:
        """Exact `IndexFlatIP` for fewer than `exact_below` items, else HNSW by inner product."""
        _limit_threads()
        data = np.ascontiguousarray(vectors, dtype=np.float32)
        if data.ndim != 2:
            raise ValueError(f"item vectors must be 2-d, got shape {data.shape}")
        dim = data.shape[1]
        index: faiss.Index
        if data.shape[0] < exact_below:
            index = faiss.IndexFlatIP(dim)
        else:
            hnsw = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            hnsw.hnsw.efConstruction = ef_construction
            hnsw.hnsw.efSearch = ef_search
            index = hnsw
        index.add(data)
        return cls(index, ef_search)

    @property
    def exact(self) -> bool:
        return not hasattr(self.index, "hnsw")

    @property
    def n_items(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def search(
        self, queries: npt.ArrayLike, k: int, exclude: sp.csr_matrix | None = None
    ) -> tuple[IntArray, FloatArray]:
        """Top-k (ids, scores) per query row, best first; `exclude`'s stored entries never win.

        `exclude` is row-aligned with `queries` and has one column per item (seen items,
        the query item itself for item-to-item search).
        """
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        n_queries = q.shape[0]
        ids = np.full((n_queries, k), -1, dtype=np.int64)
        scores = np.full((n_queries, k), -np.inf)
        if n_queries == 0 or k <= 0 or self.n_items == 0:
            return ids, scores
        if exclude is not None:
            exclude = sp.csr_matrix(exclude)
            if exclude.shape[0] != n_queries:
                raise ValueError(f"exclude has {exclude.shape[0]} rows for {n_queries} queries")
        extra = int(np.diff(exclude.indptr).max()) if exclude is not None else 0
        fetch = min(self.n_items, k + extra)
        if self.exact:
            found_scores, found = self.index.search(q, fetch)
        else:
            # faiss's type stubs lack SearchParametersHNSW, which the library has had since 1.7.3
            params = faiss.SearchParametersHNSW(  # type: ignore[attr-defined]
                efSearch=max(self.ef_search, fetch))
            found_scores, found = self.index.search(q, fetch, params=params)
        drop = found < 0
        if exclude is not None:
            rows = np.repeat(np.arange(n_queries, dtype=np.int64), np.diff(exclude.indptr))
            banned = rows * self.n_items + exclude.indices
            offered = np.arange(n_queries, dtype=np.int64)[:, None] * self.n_items + found
            drop |= np.isin(offered, banned)
        # A stable sort on the drop flag keeps faiss's best-first order among the kept ids.
        order = np.argsort(drop, axis=1, kind="stable")[:, :k]
        width = order.shape[1]
        kept = ~np.take_along_axis(drop, order, axis=1)
        ids[:, :width] = np.where(kept, np.take_along_axis(found, order, axis=1), -1)
        scores[:, :width] = np.where(
            kept, np.take_along_axis(found_scores, order, axis=1).astype(np.float64), -np.inf
        )
        return ids, scores

    def save(self, path: str | Path) -> None:
        """One faiss file; HNSW keeps its graph and efSearch, so load needs no rebuild."""
        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: str | Path) -> ItemIndex:
        _limit_threads()
        index = faiss.read_index(str(path))
        ef_search = int(index.hnsw.efSearch) if hasattr(index, "hnsw") else 128
        return cls(index, ef_search)
