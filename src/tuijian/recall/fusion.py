"""Fusion: combine the per-source lists into one candidate set.

- tiered: fill in the strategy's source order; later sources only top up what earlier ones
  left (a fallback chain).
- quota: each source gets a fixed share of the set (its k over the sum of ks), then leftover
  room is filled from whatever the sources returned beyond their share.
An item found by several sources is kept once, credited to the first source that placed it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tuijian.domain import Candidates, FloatArray, IntArray

SourceResult = tuple[int, IntArray, FloatArray]  # (source code, item indexes, scores)


def fuse(results: Sequence[SourceResult], ks: Sequence[int], size: int, mode: str) -> Candidates:
    if not results:
        return Candidates.empty()
    if mode == "quota":
        total = max(sum(ks), 1)
        shares = [max(1, round(size * k / total)) for k in ks]
        heads = [(c, i[:s], sc[:s]) for (c, i, sc), s in zip(results, shares, strict=True)]
        tails = [(c, i[s:], sc[s:]) for (c, i, sc), s in zip(results, shares, strict=True)]
        ordered = heads + tails
    elif mode == "tiered":
        ordered = list(results)
    else:
        raise ValueError(f"fusion: unknown mode {mode!r}")
    idx = np.concatenate([r[1] for r in ordered]).astype(np.int64)
    score = np.concatenate([r[2] for r in ordered]).astype(np.float64)
    src = np.concatenate([np.full(r[1].shape[0], r[0], np.int16) for r in ordered])
    _, first = np.unique(idx, return_index=True)
    keep = np.sort(first)[:size]
    return Candidates(idx[keep], score[keep], src[keep])


def exclude(cands: Candidates, *banned: IntArray) -> Candidates:
    """Drop candidates the user has already seen or clicked (or the page's own item)."""
    ban = [b for b in banned if b.size]
    if not ban or not len(cands):
        return cands
    keep = ~np.isin(cands.idx, np.concatenate(ban))
    return cands.take(np.flatnonzero(keep))
