"""Exact-duplicate removal: one listing per item and per (publisher, title) content key.

Re-posting the same listing is the commonest spam on a classifieds site; the content key is
computed once at ingest, so this is a vectorized first-occurrence filter on the ranked order.
Near-duplicate (SimHash / image hash) detection deepens this in its own issue.
"""

from __future__ import annotations

import numpy as np

from tuijian.data.items import ItemFeatureCenter
from tuijian.domain import Candidates
from tuijian.rules.base import RuleReport


class ExactDedup:
    name = "dedup"

    def apply(self, cands: Candidates, store: ItemFeatureCenter, n: int) -> tuple[
            Candidates, RuleReport]:
        if len(cands) == 0:
            return cands, RuleReport(self.name)
        keys = store.gather(cands.idx, ("content_key",))["content_key"]
        _, first_item = np.unique(cands.idx, return_index=True)
        keep = np.zeros(len(cands), bool)
        keep[first_item] = True
        _, first_key = np.unique(np.where(keep, keys, -1 - np.arange(len(cands))),
                                 return_index=True)
        keep2 = np.zeros(len(cands), bool)
        keep2[first_key] = True
        keep &= keep2
        removed = int(len(cands) - keep.sum())
        return cands.take(np.flatnonzero(keep)), RuleReport(self.name, removed=removed)
