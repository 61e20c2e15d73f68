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

from tuijian.config import CandidateFilters
from tuijian.data.items import ItemFeatureCenter
from tuijian.domain import Candidates, FloatArray, IntArray

SourceResult = tuple[int, IntArray, FloatArray]  # (source code, item indexes, scores)


RRF_K = 60.0  # the constant of the original paper; damps the weight of the very top ranks


def fuse(results: Sequence[SourceResult], ks: Sequence[int], size: int, mode: str) -> Candidates:
    if not results:
        return Candidates.empty()
    if mode == "rrf":
        return _rrf(results, ks, size)
    if mode == "quota":
        ordered = _quota_order(results, ks, size)
    elif mode == "tiered":
        ordered = list(results)
    else:
        raise ValueError(f"fusion: unknown mode {mode!r}")
    idx = np.concatenate([r[1] for r in ordered]).astype(np.int64)
    score = np.concatenate([r[2] for r in ordered]).astype(np.float64)
    src = np.concatenate([np.full(r[1].shape[0], r[0], np.int16) for r in ordered])
    _, first = np.unique(idx, return_index=True)
    keep = np.sort(first)[:size]
    return Candidates(idx[keep], score[keep], src[keep], _found_by(results, idx[keep]))


def _quota_order(results: Sequence[SourceResult], ks: Sequence[int], size: int
                 ) -> list[SourceResult]:
    """Each source's share filled from its own list, skipping what an earlier source already
    placed (so overlap never costs a source its share); then the leftovers, in source order."""
    total = max(sum(ks), 1)
    top = max((int(r[1].max()) for r in results if r[1].size), default=-1)
    taken = np.zeros(top + 1, bool)  # a membership mask: O(k) per source, no sorting
    heads: list[SourceResult] = []
    tails: list[SourceResult] = []
    for (code, ids, scores), k in zip(results, ks, strict=True):
        share = max(1, round(size * k / total))
        pos = np.flatnonzero(~taken[ids])
        head, tail = pos[:share], pos[share:]
        heads.append((code, ids[head], scores[head]))
        tails.append((code, ids[tail], scores[tail]))
        taken[ids[head]] = True
    return heads + tails


def _found_by(results: Sequence[SourceResult], idx: IntArray) -> IntArray:
    """A bit per source code for every source whose list holds each of `idx` (one sort of
    all the sources' items, not a membership test per source)."""
    if not results:
        return np.zeros(idx.shape[0], np.int64)
    every = np.concatenate([r[1] for r in results]).astype(np.int64)
    bits = np.concatenate([np.full(r[1].shape[0], np.int64(1) << r[0], np.int64)
                           for r in results])
    uniq, inverse = np.unique(every, return_inverse=True)
    mask = np.zeros(uniq.shape[0], np.int64)
    np.bitwise_or.at(mask, inverse, bits)
    pos = np.minimum(np.searchsorted(uniq, idx), max(uniq.shape[0] - 1, 0))
    return np.where(uniq[pos] == idx, mask[pos], 0) if uniq.size else np.zeros_like(idx)


def _rrf(results: Sequence[SourceResult], ks: Sequence[int], size: int) -> Candidates:
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
    return Candidates(uniq[order], score[order], placed[order],
                      _found_by(results, uniq[order]))


def exclude(cands: Candidates, *banned: IntArray) -> Candidates:
    """Drop candidates the user has already seen or clicked (or the page's own item)."""
    ban = [b for b in banned if b.size]
    if not ban or not len(cands):
        return cands
    keep = ~np.isin(cands.idx, np.concatenate(ban))
    return cands.take(np.flatnonzero(keep))


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
