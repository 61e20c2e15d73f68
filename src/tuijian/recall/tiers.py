"""Tiered retrieval: run queries from tight to loose until enough listings are found.

Search, related and interest recall all ask the retrieval engine a sequence of ever looser
questions; each tier excludes what earlier tiers found, and the answer keeps tier order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tuijian.domain import FloatArray, IntArray
from tuijian.retrieval.base import Query, SearchEngine


def search_tiers(engine: SearchEngine, plan: Sequence[Mapping[str, Any]], enough: int,
                 exclude: IntArray | None = None) -> list[IntArray]:
    """Each tier's new finds, tier by tier, stopping once `enough` were found in all."""
    found: list[IntArray] = [] if exclude is None else [exclude]
    tiers: list[IntArray] = []
    total = 0
    for kwargs in plan:
        idx, _ = engine.search(Query(exclude=np.concatenate(found) if found else (),
                                     **kwargs))
        found.append(idx)
        tiers.append(idx)
        total += idx.shape[0]
        if total >= max(enough, 1):
            break
    return tiers


def by_tier(tiers: list[IntArray], n_plan: int, k: int) -> tuple[IntArray, FloatArray]:
    """The first k finds, each scored by its tier (the tightest tier highest)."""
    if not tiers:
        return np.empty(0, np.int64), np.empty(0)
    scores = [np.full(t.shape[0], float(n_plan - i)) for i, t in enumerate(tiers)]
    return np.concatenate(tiers)[:k], np.concatenate(scores)[:k]
