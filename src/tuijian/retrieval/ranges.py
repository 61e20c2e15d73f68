"""Numeric range filters: each range column's values sorted once, searched by bisection.

A range (price between 2M and 3M) is two `np.searchsorted` calls on the sorted values, which
give the matching ids as one slice, and its size, in microseconds. Sorted arrays cannot take
an upsert cheaply, so changed and new items are marked stale instead: a selection drops stale
ids from the slice and re-checks them against their current values in the item store. Once
`COMPACT_AT` items are stale, the writer merges them back into fresh sorted arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pyroaring import BitMap

from tuijian.data.items import ItemFeatureCenter
from tuijian.domain import FloatArray, IntArray
from tuijian.retrieval.postings import NA, U32Array, to_bitmap, to_ids

Bounds = tuple[float | None, float | None]
COMPACT_AT = 4096  # stale items re-checked per range selection before a merge is due


def within(values: npt.NDArray[Any], bounds: Bounds) -> npt.NDArray[np.bool_]:
    """Which values lie in [low, high], compared as float64; missing values never match."""
    v = values.astype(np.float64)
    keep = values != NA if np.issubdtype(values.dtype, np.integer) else ~np.isnan(v)
    low, high = bounds
    if low is not None:
        keep &= v >= low
    if high is not None:
        keep &= v <= high
    return keep


@dataclass(slots=True)
class SortedColumn:
    values: FloatArray  # ascending; float64 so bounds compare exactly as `within` does
    ids: U32Array  # the item of each value


class RangeIndex:
    def __init__(self, store: ItemFeatureCenter, fields: tuple[str, ...]) -> None:
        self._store = store
        self._sorted = {name: _sorted(store.column(name)) for name in fields}
        self._stale = BitMap()  # items whose entries in the sorted arrays may be out of date

    def estimate(self, name: str, bounds: Bounds) -> int:
        """An upper bound of the matches, without touching them: slice size + stale items."""
        lo, hi = self._slice(name, bounds)
        return hi - lo + len(self._stale)

    def select(self, name: str, bounds: Bounds) -> BitMap:
        """Exactly the items whose current value lies in bounds."""
        lo, hi = self._slice(name, bounds)
        # sorting first makes the bitmap build ~5x cheaper than from value-ordered ids
        out = to_bitmap(np.sort(self._sorted[name].ids[lo:hi]))
        if self._stale:
            out -= self._stale
            stale = to_ids(self._stale)
            current = self._store.gather(stale, (name,))[name]
            out |= to_bitmap(stale[within(current, bounds)])
        return out

    def mark_stale(self, idx: IntArray) -> None:
        self._stale |= to_bitmap(np.sort(idx))

    def due(self) -> bool:
        return len(self._stale) > COMPACT_AT

    def compacted(self) -> tuple[dict[str, SortedColumn], BitMap]:
        """Sorted arrays with every stale item merged in at its current value, and the items
        merged. O(n) per column, so the writer builds them outside the engine's lock."""
        merged = self._stale.copy()
        stale = to_ids(merged)
        fresh = {
            name: _merged(s, stale, self._store.gather(stale, (name,))[name])
            for name, s in self._sorted.items()
        }
        return fresh, merged

    def install(self, fresh: dict[str, SortedColumn], merged: BitMap) -> None:
        self._sorted = fresh
        self._stale = self._stale - merged

    def _slice(self, name: str, bounds: Bounds) -> tuple[int, int]:
        values = self._sorted[name].values
        low, high = bounds
        lo = 0 if low is None else int(np.searchsorted(values, low, side="left"))
        hi = values.shape[0] if high is None else int(np.searchsorted(values, high, side="right"))
        return lo, max(lo, hi)


def _sorted(column: npt.NDArray[Any]) -> SortedColumn:
    ids = np.flatnonzero(within(column, (None, None)))
    vals = column[ids]
    order = np.argsort(vals)  # in the column's own dtype: int16 sorts by radix, far faster
    return SortedColumn(vals[order].astype(np.float64), ids[order].astype(np.uint32))


def _merged(s: SortedColumn, stale: IntArray, current: npt.NDArray[Any]) -> SortedColumn:
    drop = np.zeros(max(int(s.ids.max(initial=0)), int(stale.max(initial=0))) + 1, bool)
    drop[stale] = True
    keep = ~drop[s.ids]
    values, ids = s.values[keep], s.ids[keep]
    ok = within(current, (None, None))
    add_values = current[ok].astype(np.float64)
    order = np.argsort(add_values)
    add_values, add_ids = add_values[order], stale[ok][order]
    at = np.searchsorted(values, add_values)
    return SortedColumn(np.insert(values, at, add_values), np.insert(ids, at, add_ids))
