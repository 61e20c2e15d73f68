"""Scatter: at most k items sharing a value (publisher, category…) in any window of w.

A greedy pass that keeps the ranked order wherever the constraint allows: at each position it
takes the best remaining item that does not break the window, so an item is only ever pushed
down, never up past a better one. Python loops are fine here: the rules stage only sees the
final few hundred items (DESIGN.md), and we stop once n items are placed.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from tuijian.data.items import ItemFeatureCenter
from tuijian.domain import Candidates
from tuijian.rules.base import RuleReport


class Scatter:
    name = "scatter"

    def __init__(self, field: str, k: int, window: int) -> None:
        self.field, self.k, self.window = field, k, window

    def apply(self, cands: Candidates, store: ItemFeatureCenter, n: int) -> tuple[
            Candidates, RuleReport]:
        values = store.gather(cands.idx, (self.field,))[self.field].tolist()
        pending = deque(range(len(values)))
        placed: list[int] = []
        moved = 0
        while pending and len(placed) < n:
            recent = [values[p] for p in placed[-(self.window - 1):]] if self.window > 1 else []
            chosen = None
            for j, cand in enumerate(pending):
                if recent.count(values[cand]) < self.k:
                    chosen = j
                    break
            if chosen is None:  # nothing fits: relax rather than return a short list
                chosen = 0
            cand = pending[chosen]
            del pending[chosen]
            moved += chosen > 0
            placed.append(cand)
        order = np.array(placed + list(pending), np.int64)
        return cands.take(order), RuleReport(self.name, moved=moved)
