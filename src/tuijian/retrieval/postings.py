"""Posting lists: the set of items holding each value of a field, as roaring bitmaps.

Roaring bitmaps (pyroaring, over CRoaring) because our item ids are dense integers: a posting
list of 100k ids is ~15 kB instead of 800 kB, and AND / OR / ANDNOT of two of them run on
compressed containers in tens of microseconds, so a query combines a dozen filters before it
touches a single column. Each index remembers what it indexed every item under, because the
item store has already overwritten the old values when `add` is called after an upsert.
"""

from __future__ import annotations

import array
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from pyroaring import BitMap

from tuijian.domain import IntArray

U32Array = npt.NDArray[np.uint32]
Explode = Callable[[npt.NDArray[Any]], tuple[pa.Array, IntArray]]
NA = -1  # integer codes use -1 for "not applicable" (see ColumnStore.record): never indexed


def to_bitmap(ids: npt.NDArray[Any]) -> BitMap:
    """A bitmap from an id array through pyroaring's buffer fast path (no Python int per id);
    about 5 ns per id when `ids` is sorted, several times more when it is not."""
    buf = array.array("I")
    buf.frombytes(np.ascontiguousarray(ids, dtype=np.uint32).tobytes())
    return BitMap(buf)


def to_ids(bitmap: BitMap) -> IntArray:
    """The bitmap's ids, ascending, through pyroaring's array buffer (no Python int per id)."""
    return np.frombuffer(bitmap.to_array(), dtype=np.uint32).astype(np.int64)


def grouped(codes: npt.NDArray[Any], rows: npt.NDArray[Any]) -> Iterator[tuple[int, BitMap]]:
    """(code, bitmap of its rows) for every code present, from one stable sort by code instead
    of a scan per code; codes must be >= 0 and small enough to count (they are vocabulary or
    dictionary codes). Codes under 2^16 sort by radix: ~10 ms per million rows."""
    if codes.shape[0] == 0:
        return
    counts = np.bincount(codes)
    narrow = codes.astype(np.uint16) if counts.shape[0] <= 1 << 16 else codes
    members = rows[np.argsort(narrow, kind="stable")].astype(np.uint32)
    ends = np.cumsum(counts)
    present = np.flatnonzero(counts)
    for c, s, e in zip(
        present.tolist(), (ends - counts)[present].tolist(), ends[present].tolist(), strict=True
    ):
        yield c, to_bitmap(members[s:e])


def intersect(sets: list[BitMap]) -> BitMap:
    """AND of bitmaps, smallest first, so each step is bounded by the running result. Of one
    bitmap, that bitmap itself (a posting, often a city's 100k ids, not worth copying per
    query): treat the result as read-only."""
    ordered = sorted(sets, key=len)
    out = ordered[0] if len(ordered) == 1 else ordered[0] & ordered[1]
    for other in ordered[2:]:
        if not out:
            break
        out &= other
    return out


def grown(values: npt.NDArray[Any], n: int, fill: Any) -> npt.NDArray[Any]:
    """`values` with room for index n-1, growing geometrically so appends stay amortized O(1)."""
    if values.shape[0] >= n:
        return values
    out = np.full(max(n, values.shape[0] * 3 // 2 + 1024), fill, dtype=values.dtype)
    out[: values.shape[0]] = values
    return out


K = TypeVar("K", int, str)


class _Lookup(Generic[K]):
    """Postings by key: one key's items, or the union over several keys."""

    postings: dict[K, BitMap]

    def get(self, key: K) -> BitMap:
        found = self.postings.get(key)
        return BitMap() if found is None else found

    def any_of(self, keys: Iterable[K]) -> BitMap:
        sets = [self.postings[k] for k in keys if k in self.postings]
        return BitMap.union(*sets) if sets else BitMap()


class TermPostings(_Lookup[int]):
    """Items per integer code of one field (codes < 0 are not indexed)."""

    def __init__(self, codes: npt.NDArray[Any]) -> None:
        valid = np.flatnonzero(codes >= 0)
        self.postings: dict[int, BitMap] = dict(grouped(codes[valid], valid))
        self._indexed = codes.copy()  # the code each item is currently indexed under

    def update(self, idx: IntArray, codes: npt.NDArray[Any]) -> None:
        """Move each item to the posting of its new code (idx unique)."""
        self._indexed = grown(self._indexed, int(idx.max()) + 1, NA)
        old = self._indexed[idx]
        changed = old != codes
        for i, was, now in zip(
            idx[changed].tolist(), old[changed].tolist(), codes[changed].tolist(), strict=True
        ):
            if was >= 0:
                self.postings[was].discard(i)
            if now >= 0:
                self.postings.setdefault(now, BitMap()).add(i)
        self._indexed[idx] = codes


class StringPostings(_Lookup[str]):
    """Items per string key, where each item holds any number of keys (tags, title words).

    `explode` turns a batch of per-item values into (keys, row in batch); the per-item values
    are kept by reference (strings and the store's per-row arrays are replaced on upsert,
    never mutated) so a changed item's old keys can be re-derived and removed.
    """

    def __init__(self, values: npt.NDArray[Any], explode: Explode) -> None:
        self._explode = explode
        keys, rows = explode(values)
        encoded = pc.dictionary_encode(keys)
        names = encoded.dictionary.to_pylist()
        codes = encoded.indices.to_numpy(zero_copy_only=False)
        self.postings: dict[str, BitMap] = {names[c]: b for c, b in grouped(codes, rows)}
        # keys per item: for titles, the length in tokens that BM25 normalizes by
        self.counts = np.bincount(rows, minlength=values.shape[0]).astype(np.int32)
        self.total = int(rows.shape[0])  # sum of counts, kept as items change
        self._values = values.copy()  # references to the indexed values, not copies of them

    def update(self, idx: IntArray, values: npt.NDArray[Any]) -> None:
        """Re-index the items whose values changed (idx unique)."""
        self._values = grown(self._values, int(idx.max()) + 1, None)
        self.counts = grown(self.counts, int(idx.max()) + 1, 0)
        old = self._values[idx].copy()
        changed = np.fromiter(
            (not _same(a, b) for a, b in zip(old, values, strict=True)), bool, idx.shape[0]
        )
        if changed.any():
            rows = idx[changed]
            gone, at = self._explode(old[changed])
            for key, i in zip(gone.to_pylist(), rows[at].tolist(), strict=True):
                self.postings[key].discard(i)
            new, at = self._explode(values[changed])
            for key, i in zip(new.to_pylist(), rows[at].tolist(), strict=True):
                self.postings.setdefault(key, BitMap()).add(i)
            now = np.bincount(at, minlength=rows.shape[0])
            self.total += int(now.sum()) - int(self.counts[rows].sum())
            self.counts[rows] = now
        self._values[idx] = values


def explode_lists(values: npt.NDArray[Any]) -> tuple[pa.Array, IntArray]:
    """(every element, its row) for a column of per-row lists or arrays of strings."""
    sizes = np.fromiter((0 if v is None else len(v) for v in values), np.int64, values.shape[0])
    rows = np.repeat(np.arange(values.shape[0], dtype=np.int64), sizes)
    parts = [np.asarray(v, dtype=object) for v in values if v is not None and len(v)]
    flat = np.concatenate(parts) if parts else np.empty(0, object)
    return pa.array(flat, type=pa.string()), rows


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if a is None or b is None:
        return False
    if isinstance(a, str) or isinstance(b, str):
        return bool(a == b)
    return len(a) == len(b) and all(x == y for x, y in zip(a, b, strict=True))
