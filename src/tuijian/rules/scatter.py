"""Scatter: at most k items sharing a value (publisher, category…) in any window of w positions.

The first n positions (what the user sees) are filled in ranked order wherever the windows allow:
at each position the best-ranked item that fits every window goes next, so an item is only ever
pushed down past worse ones when it must be. Taking the best fit can paint a list into a corner
(A B C A, then only A's left, when A B A C A was possible), so when that greedy pass cannot
finish, a second pass only accepts an item if the rest can still be completed, checked by
filling the remaining positions with the most plentiful fitting value first (for one
constraint that order completes whenever any order can). Only if no arrangement exists does a
window get broken, by the best-ranked item.

Python loops are fine here: the rules stage sees the final few hundred items (DESIGN.md) and
only n of them are placed.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence

import numpy as np

from tuijian.domain import Candidates
from tuijian.rules.base import RuleContext, RuleReport
from tuijian.rules.spec import ScatterSpec

Key = tuple[int, ...]


class _Windows:
    """The last w−1 values per constraint, with counts, for O(1) "does this item fit"."""

    def __init__(self, specs: Sequence[ScatterSpec]) -> None:
        self.specs = specs
        self.recent: list[deque[int]] = [deque() for _ in specs]
        self.counts: list[Counter[int]] = [Counter() for _ in specs]

    def fits(self, key: Key) -> bool:
        return all(c[v] < s.k for s, c, v in zip(self.specs, self.counts, key, strict=True))

    def push(self, key: Key) -> None:
        for s, r, c, v in zip(self.specs, self.recent, self.counts, key, strict=True):
            r.append(v)
            c[v] += 1
            if len(r) >= s.window:
                c[r.popleft()] -= 1

    def copy(self) -> _Windows:
        w = _Windows(self.specs)
        w.recent = [deque(r) for r in self.recent]
        w.counts = [Counter(c) for c in self.counts]
        return w


def arrange(keys: Sequence[Key], specs: Sequence[ScatterSpec], n: int) -> list[int]:
    """Row order: the first min(n, len) rows placed under the windows, then the rest in order."""
    placed = _greedy(keys, specs, n, careful=False)
    if placed is None:
        placed = _greedy(keys, specs, n, careful=True)
    assert placed is not None
    chosen = set(placed)
    return placed + [j for j in range(len(keys)) if j not in chosen]


def _greedy(keys: Sequence[Key], specs: Sequence[ScatterSpec], n: int,
            careful: bool) -> list[int] | None:
    """Fill min(n, len) positions; without `careful`, give up (None) instead of breaking a
    window."""
    want = min(n, len(keys))
    pending = list(range(len(keys)))
    left: Counter[Key] = Counter(keys)
    win = _Windows(specs)
    placed: list[int] = []
    feasible = True
    while len(placed) < want:
        chosen = None
        for j, row in enumerate(pending):
            key = keys[row]
            if not win.fits(key):
                continue
            if careful and feasible and not _completes(win, left, key, want - len(placed) - 1):
                continue
            chosen = j
            break
        if chosen is None:
            if not careful:
                return None
            if feasible:  # nothing keeps the rest completable: take the best fit, then relax
                feasible = False
                continue
            chosen = 0
        row = pending.pop(chosen)
        placed.append(row)
        left[keys[row]] -= 1
        win.push(keys[row])
    return placed


def _completes(win: _Windows, left: Counter[Key], key: Key, remaining: int) -> bool:
    """Could `remaining` more positions be filled after placing `key`?"""
    if remaining == 0:
        return True
    w = win.copy()
    w.push(key)
    pool = Counter(left)
    pool[key] -= 1
    for _ in range(remaining):
        best = max((k for k, c in pool.items() if c > 0 and w.fits(k)),
                   key=lambda k: pool[k], default=None)
        if best is None:
            return False
        pool[best] -= 1
        w.push(best)
    return True


class Scatter:
    name = "scatter"

    def __init__(self, specs: Sequence[ScatterSpec]) -> None:
        self.specs = list(specs)
        self.fields = tuple(s.field for s in self.specs)

    def apply(self, cands: Candidates, ctx: RuleContext) -> tuple[Candidates, RuleReport]:
        if len(cands) < 2 or not self.specs:
            return cands, RuleReport(self.name)
        cols = ctx.store.gather(cands.idx, self.fields)
        keys = list(zip(*(cols[f].tolist() for f in self.fields), strict=True))
        order = arrange(keys, self.specs, ctx.n)
        moved = int(np.count_nonzero(np.asarray(order[: ctx.n]) != np.arange(min(ctx.n,
                                                                                 len(order)))))
        return cands.take(np.asarray(order, np.int64)), RuleReport(self.name, moved=moved)


def violations(values: Sequence[Key], specs: Sequence[ScatterSpec]) -> int:
    """Windows (of any constraint) holding more than k items sharing a value."""
    bad = 0
    for c, s in enumerate(specs):
        col = [v[c] for v in values]
        for end in range(1, len(col) + 1):
            window = Counter(col[max(0, end - s.window): end])
            bad += any(cnt > s.k for cnt in window.values())
    return bad
