"""Scatter: at most k items sharing a value (publisher, category…) in any window of w positions.

The first n positions (what the user sees) are filled in ranked order wherever the windows allow:
at each position the best-ranked item that fits every window goes next, so an item is only ever
pushed down past worse ones when it must be. Taking the best fit can paint a list into a corner
(A B C A, then only A's left, when A B A C A was possible), so when that greedy pass cannot
finish, a second pass only accepts an item if the rest can still be completed, checked by
filling the remaining positions with the most plentiful fitting value first (for one
constraint that order completes whenever any order can). Only if no arrangement exists does a
window get broken, by the best-ranked item.

The greedy pass is the one every request runs, so it is cheap where the Python scan was not:
the next free row is checked alone (it usually fits), and only when it does not are all free
rows tested at once, by one numpy comparison per value whose windows are full (a handful). A
list whose top is one category (related items) used to cost a scan of most of it per
position. The careful pass is rare and stays a plain Python loop.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence

import numpy as np

from tuijian.domain import Candidates, IntArray
from tuijian.rules.base import RuleContext, RuleReport
from tuijian.rules.spec import ScatterSpec

Key = tuple[int, ...]


class _Windows:
    """The last w−1 values per constraint, with counts, for O(1) "does this item fit".

    Plain loops and dict.get rather than all()/Counter: `fits` and `push` run for every
    placed row of every request, and the generator and Counter.__missing__ overheads were
    most of their cost.
    """

    def __init__(self, specs: Sequence[ScatterSpec]) -> None:
        self.limits = [(s.k, s.window) for s in specs]
        self.recent: list[deque[int]] = [deque() for _ in specs]
        self.counts: list[dict[int, int]] = [{} for _ in specs]

    def fits(self, key: Sequence[int]) -> bool:
        for (k, _), c, v in zip(self.limits, self.counts, key, strict=True):
            if c.get(v, 0) >= k:
                return False
        return True

    def full(self) -> list[list[int]]:
        """Per constraint, the values an item may not have now (their window holds k)."""
        return [[v for v, n in c.items() if n >= k]
                for (k, _), c in zip(self.limits, self.counts, strict=True)]

    def push(self, key: Sequence[int]) -> None:
        for (_, w), r, c, v in zip(self.limits, self.recent, self.counts, key, strict=True):
            r.append(v)
            c[v] = c.get(v, 0) + 1
            if len(r) >= w:
                c[r.popleft()] -= 1

    def copy(self) -> _Windows:
        w = _Windows([])
        w.limits = self.limits
        w.recent = [deque(r) for r in self.recent]
        w.counts = [dict(c) for c in self.counts]
        return w


def arrange(keys: Sequence[Key], specs: Sequence[ScatterSpec], n: int) -> list[int]:
    """Row order: the first min(n, len) rows placed under the windows, then the rest in order."""
    return _order(np.asarray(keys, np.int64).reshape(len(keys), len(specs)), specs, n).tolist()


def _order(table: IntArray, specs: Sequence[ScatterSpec], n: int) -> IntArray:
    """`arrange` over a (rows, specs) table of values (what the item store gathers)."""
    placed = _greedy(table, specs, n)
    if placed is None:
        placed = _careful([tuple(r) for r in table.tolist()], specs, n)
    rest = np.ones(len(table), bool)
    rest[placed] = False
    return np.concatenate([np.asarray(placed, np.int64), np.flatnonzero(rest)])


def _greedy(table: IntArray, specs: Sequence[ScatterSpec], n: int) -> list[int] | None:
    """Fill min(n, len) positions with the best-ranked row that fits, or None when at some
    position no row fits."""
    values = table.T.tolist()  # per constraint: what one row's key is read from
    win = _Windows(specs)
    taken = np.zeros(len(table), bool)
    head = 0  # every row above it is placed
    placed: list[int] = []
    for _ in range(min(n, len(table))):
        while taken[head]:
            head += 1
        row = head
        if not win.fits([v[head] for v in values]):
            # every free row at once: a row is out when one of its values fills its window
            out = taken[head:].copy()
            for c, full in enumerate(win.full()):
                for value in full:
                    out |= table[head:, c] == value
            row = head + int(np.argmin(out))
            if out[row - head]:
                return None
        taken[row] = True
        placed.append(row)
        win.push([v[row] for v in values])
    return placed


def _careful(keys: Sequence[Key], specs: Sequence[ScatterSpec], n: int) -> list[int]:
    """Fill min(n, len) positions accepting a row only if the rest can still be completed
    (`_completes`); when no row keeps it completable, the best fit, then the best-ranked row
    (breaking a window) from there on."""
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
            if feasible and not _completes(win, left, key, want - len(placed) - 1):
                continue
            chosen = j
            break
        if chosen is None:
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
        order = _order(np.stack([cols[f] for f in self.fields], axis=1), self.specs, ctx.n)
        shown = order[: ctx.n]
        moved = int(np.count_nonzero(shown != np.arange(len(shown))))
        return cands.take(order), RuleReport(self.name, moved=moved)


def violations(values: Sequence[Key], specs: Sequence[ScatterSpec]) -> int:
    """Windows (of any constraint) holding more than k items sharing a value."""
    bad = 0
    for c, s in enumerate(specs):
        col = [v[c] for v in values]
        for end in range(1, len(col) + 1):
            window = Counter(col[max(0, end - s.window): end])
            bad += any(cnt > s.k for cnt in window.values())
    return bad
