"""Fusion: combine the per-source lists into one candidate set.

- tiered: fill in the strategy's source order; later sources only top up what earlier ones
  left (a fallback chain).
- quota: each source gets a fixed share of the set (its k over the sum of ks), then leftover
  room is filled from whatever the sources returned beyond their share.
- rrf: reciprocal rank fusion (Cormack et al. 2009): an item scores the sum over sources of
  weight / (RRF_K + rank), weights proportional to each source's k, so items several sources
  rank high rise to the top; robust to sources whose scores are not comparable.
An item found by several sources is kept once, credited to the first source that placed it;
`Candidates.sources` keeps a bit for every source that found it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from tuijian.config import CandidateFilters
from tuijian.data.items import ItemFeatureCenter
from tuijian.domain import Candidates, FloatArray, IntArray

SourceResult = tuple[int, IntArray, FloatArray]  # (source code, item indexes, scores)


RRF_K = 60.0  # the constant of the original paper; damps the weight of the very top ranks


def fuse(results: Sequence[SourceResult], ks: Sequence[int], size: int, mode: str) -> Candidates:
    if not results:
        return Candidates.empty()
    if mode not in ("rrf", "quota", "tiered"):
        raise ValueError(f"fusion: unknown mode {mode!r}")
    pooled = _Pooled(results)
    if mode == "rrf":
        return _rrf(results, ks, size, pooled)
    score = np.concatenate([r[2] for r in results]).astype(np.float64)
    order = _quota_order(results, ks, size, pooled) if mode == "quota" else \
        np.arange(pooled.every.shape[0])
    _, first = np.unique(pooled.code[order], return_index=True)
    keep = order[np.sort(first)[:size]]
    return Candidates(pooled.every[keep], score[keep], pooled.source[keep],
                      pooled.found_by[pooled.code[keep]])


class _Pooled:
    """Every source's items end to end, in source order, with each one's code among the
    distinct items: one sort serves the fusion's dedup, its quotas and its source bits, and
    codes index small arrays where item indexes would need one as long as the catalog."""

    def __init__(self, results: Sequence[SourceResult]) -> None:
        self.every = np.concatenate([r[1] for r in results]).astype(np.int64)
        self.source = np.repeat(np.array([r[0] for r in results], np.int16),
                                [r[1].shape[0] for r in results])
        self.uniq, self.code = np.unique(self.every, return_inverse=True)
        # a bit per source code for every source whose list holds each distinct item
        self.found_by = np.zeros(self.uniq.shape[0], np.int64)
        np.bitwise_or.at(self.found_by, self.code, np.int64(1) << self.source.astype(np.int64))


def _quota_order(results: Sequence[SourceResult], ks: Sequence[int], size: int,
                 pooled: _Pooled) -> IntArray:
    """Positions in `pooled.every`: each source's share filled from its own list, skipping
    what an earlier source already placed (so overlap never costs a source its share); then
    the leftovers, in source order."""
    total = max(sum(ks), 1)
    taken = np.zeros(pooled.uniq.shape[0], bool)
    heads: list[IntArray] = []
    tails: list[IntArray] = []
    start = 0
    for (_, ids, _), k in zip(results, ks, strict=True):
        share = max(1, round(size * k / total))
        codes = pooled.code[start:start + ids.shape[0]]
        pos = np.flatnonzero(~taken[codes])
        heads.append(start + pos[:share])
        tails.append(start + pos[share:])
        taken[codes[pos[:share]]] = True
        start += ids.shape[0]
    return np.concatenate(heads + tails)


def _rrf(results: Sequence[SourceResult], ks: Sequence[int], size: int,
         pooled: _Pooled) -> Candidates:
    total = max(sum(ks), 1)
    idx = np.concatenate([r[1][:k] for r, k in zip(results, ks, strict=True)]).astype(np.int64)
    contrib = np.concatenate([
        (k / total) / (RRF_K + 1.0 + np.arange(min(k, r[1].shape[0])))
        for r, k in zip(results, ks, strict=True)
    ])
    src = np.concatenate([np.full(min(k, r[1].shape[0]), r[0], np.int64)
                          for r, k in zip(results, ks, strict=True)])
    if idx.size == 0:
        return Candidates.empty()
    uniq, inverse = np.unique(idx, return_inverse=True)
    score = np.zeros(uniq.shape[0])
    np.add.at(score, inverse, contrib)
    # credit each item to the source that contributed most to it
    best = np.lexsort((-contrib, inverse))
    first = best[np.concatenate([[True], np.diff(inverse[best]) != 0])]
    placed = np.empty(uniq.shape[0], np.int16)
    placed[inverse[first]] = src[first]
    order = np.argsort(-score, kind="stable")[:size]
    found_by = pooled.found_by[np.searchsorted(pooled.uniq, uniq[order])]
    return Candidates(uniq[order], score[order], placed[order], found_by)


def exclude(cands: Candidates, *banned: IntArray) -> Candidates:
    """Drop candidates the user has already seen or clicked (or the page's own item)."""
    ban = [b for b in banned if b.size]
    if not ban or not len(cands):
        return cands
    keep = ~member(cands.idx, np.sort(np.concatenate(ban)))
    return cands if keep.all() else cands.take(np.flatnonzero(keep))


def member(ids: IntArray, sorted_ids: IntArray) -> npt.NDArray[np.bool_]:
    """Which of `ids` are in `sorted_ids` (ascending): a binary search, several times faster
    than `np.isin` on the few hundred ids recall handles."""
    if sorted_ids.shape[0] == 0:
        return np.zeros(ids.shape[0], bool)
    at = np.minimum(np.searchsorted(sorted_ids, ids), sorted_ids.shape[0] - 1)
    return sorted_ids[at] == ids


def keep_eligible(cands: Candidates, store: ItemFeatureCenter, f: CandidateFilters, city: int
                  ) -> Candidates:
    """Apply a strategy's candidate filters in one vectorized pass."""
    if not len(cands):
        return cands
    cols = store.gather(cands.idx, ("active", "quality", "city"))
    keep = np.ones(len(cands), bool)
    if f.active_only:
        keep &= cols["active"] == 1
    if f.min_quality > 0:
        keep &= cols["quality"] >= f.min_quality
    if f.same_city and city >= 0:
        keep &= cols["city"] == city
    return cands if keep.all() else cands.take(np.flatnonzero(keep))
