"""The retrieval engine: inverted indexes over the item feature center, queried in-process.

The forward index is the item store itself (its numpy columns, never copied); the engine adds
what a search engine adds on top: roaring-bitmap postings per term value, per (city, line),
per title token and per H3 cell, and sorted arrays for numeric ranges. A query ANDs the
bitmaps of its filters, turns the survivors into an id array once, checks what is left on the
store's columns (exact ranges, exact distances) and keeps the top `limit` by its sort key.

Concurrency: one writer (the thread or task that upserts items) calls `add`; any number of
readers call `search`, typically on the asyncio loop. A lock makes each `add` batch atomic to
readers: a search never sees an item half re-posted. It is held only for the posting updates
(microseconds per item); the occasional O(n) merge of the range arrays is built outside it.
Between `store.upsert` and `add`, searches may see the item's new column values under its old
postings; once `add` returns every search sees the item as it now is.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
from pyroaring import BitMap

from tuijian.data.items import ItemFeatureCenter
from tuijian.domain import FloatArray, IntArray
from tuijian.retrieval.base import (
    RANGE_FIELDS,
    STRING_TERM_FIELDS,
    TERM_FIELDS,
    Query,
    term_values,
)
from tuijian.retrieval.geo import GeoIndex
from tuijian.retrieval.ordering import top
from tuijian.retrieval.postings import (
    StringPostings,
    TermPostings,
    explode_lists,
    intersect,
    to_bitmap,
    to_ids,
)
from tuijian.retrieval.ranges import Bounds, RangeIndex, within
from tuijian.retrieval.text import TextIndex

CODE_FIELDS = tuple(f for f in TERM_FIELDS if f not in STRING_TERM_FIELDS)
LINE_CODES = 1 << 8  # `line` is an int8 column: codes 0..127
# Planning rule for ranges. Selecting a range through its sorted array costs ~5-10 ns per id
# in the bisected slice (sort the slice, build a bitmap, AND it); checking it on the candidates
# costs ~2-5 ns per candidate (a gather and a compare). So the most selective range goes
# through the index only when its slice is under half the candidate count; every other range
# is checked on the candidates' columns.
RANGE_INDEX_COST = 2.0
# A nearest search over at most this many candidates computes all their distances instead of
# growing rings of cells (a few tens of microseconds either way).
NEAR_SCAN = 8192


class RetrievalEngine:
    """The embedded `SearchEngine`; build it with `RetrievalEngine.build(store)`."""

    def __init__(self, store: ItemFeatureCenter) -> None:
        n = len(store)
        self._store = store
        self._lock = threading.Lock()
        self._indexed = BitMap(range(n))
        self._terms = {name: TermPostings(store.column(name)) for name in CODE_FIELDS}
        self._line_city = TermPostings(_line_city(store.column("line"), store.column("city")))
        self._tags = StringPostings(store.column("tags"), explode_lists)
        self._text = TextIndex(store)
        self._geo = GeoIndex(store)
        self._ranges = RangeIndex(store, RANGE_FIELDS)
        self._hot: FloatArray = np.zeros(0)

    @classmethod
    def build(cls, store: ItemFeatureCenter) -> RetrievalEngine:
        """Index the whole catalog, vectorized (a few seconds for a million items)."""
        return cls(store)

    def __len__(self) -> int:
        return len(self._indexed)

    def set_hotness(self, hot: FloatArray) -> None:
        self._hot = hot

    def add(self, idx: IntArray) -> None:
        idx = np.unique(np.asarray(idx, dtype=np.int64))
        if idx.shape[0] == 0:
            return
        cols = self._store.gather(idx, (*CODE_FIELDS, "tags"))
        with self._lock:
            for name, postings in self._terms.items():
                postings.update(idx, cols[name])
            self._line_city.update(idx, _line_city(cols["line"], cols["city"]))
            self._tags.update(idx, cols["tags"])
            self._text.update(idx)
            self._geo.update(idx)
            self._ranges.mark_stale(idx)
            self._indexed |= to_bitmap(idx)
        if self._ranges.due():
            fresh, merged = self._ranges.compacted()
            with self._lock:
                self._ranges.install(fresh, merged)

    def search(self, query: Query) -> tuple[IntArray, FloatArray]:
        if query.limit == 0:
            return _empty()
        with self._lock:
            return self._search(query)

    def _search(self, q: Query) -> tuple[IntArray, FloatArray]:
        sets = self._term_sets(q)
        if q.text:
            matched = self._text.match(q.text)
            if matched is not None:
                sets.append(matched)
        if q.geo is not None:
            cover = self._geo.covering(*q.geo)
            if cover is not None:
                sets.append(cover)
        pool = intersect(sets) if sets else None
        checks = dict(q.ranges)  # the ranges left to check on columns
        pool = self._plan_ranges(pool, checks, near=q.near is not None)
        if len(q.exclude):
            excluded = to_bitmap(np.sort(np.asarray(q.exclude, dtype=np.int64)))
            pool = (self._indexed if pool is None else pool) - excluded
        if pool is not None and not pool:
            return _empty()
        if q.near is not None:
            ids, dist = self._nearest(q.near, q.limit, pool, checks)
        else:
            ids = self._check(checks, to_ids(self._indexed if pool is None else pool))
            dist = None
            if q.geo is not None:
                lat, lon, radius = q.geo
                dist = self._geo.distances(ids, lat, lon)
                inside = dist <= radius
                ids, dist = ids[inside], dist[inside]
        return self._ordered(q, ids, dist)

    def _term_sets(self, q: Query) -> list[BitMap]:
        sets = []
        if q.line is not None and q.city is not None:
            in_range = q.line < LINE_CODES  # else it would alias another city's code
            sets.append(self._line_city.get(q.city * LINE_CODES + q.line if in_range else -1))
        elif q.line is not None:
            sets.append(self._terms["line"].get(q.line))
        elif q.city is not None:
            sets.append(self._terms["city"].get(q.city))
        for name, value in q.terms.items():
            values = term_values(value)
            if name in STRING_TERM_FIELDS:
                sets.append(self._tags.any_of(str(v) for v in values))
            else:
                sets.append(self._terms[name].any_of(int(v) for v in values))
        return sets

    def _plan_ranges(
        self, pool: BitMap | None, checks: dict[str, Bounds], near: bool
    ) -> BitMap | None:
        """AND the most selective range's index into the pool when that is the cheaper plan
        (see RANGE_INDEX_COST); a nearest search only ever touches its rings, so for it the
        index pays only when it leaves few enough candidates to scan."""
        if not checks:
            return pool
        size = len(self._indexed if pool is None else pool)
        if near:
            size = min(size, NEAR_SCAN)
        name, estimate = min(
            ((f, self._ranges.estimate(f, b)) for f, b in checks.items()), key=lambda fe: fe[1]
        )
        if estimate * RANGE_INDEX_COST >= size:
            return pool
        selected = self._ranges.select(name, checks.pop(name))
        return selected if pool is None else pool & selected

    def _check(self, checks: Mapping[str, Bounds], ids: IntArray) -> IntArray:
        if not checks or ids.shape[0] == 0:
            return ids
        cols = self._store.gather(ids, tuple(checks))
        keep = np.ones(ids.shape[0], bool)
        for name, bounds in checks.items():
            keep &= within(cols[name], bounds)
        return ids[keep]

    def _nearest(
        self, point: tuple[float, float], n: int, pool: BitMap | None, checks: Mapping[str, Bounds]
    ) -> tuple[IntArray, FloatArray]:
        lat, lon = point
        found = None
        if pool is None or len(pool) > NEAR_SCAN:
            found = self._geo.nearest(lat, lon, n, pool, lambda c: self._check(checks, c))
        if found is None:
            ids = self._check(checks, to_ids(self._indexed if pool is None else pool))
            found = ids, self._geo.distances(ids, lat, lon)
        ids, dist = found
        located = np.isfinite(dist)
        ids, dist = ids[located], dist[located]
        best = top(dist, ids, n)
        return ids[best], dist[best]

    def _ordered(
        self, q: Query, ids: IntArray, dist: FloatArray | None
    ) -> tuple[IntArray, FloatArray]:
        order = q.order()
        if order == "distance":
            assert dist is not None  # Query guarantees a point for this sort
            score, key = dist, dist
        else:
            score = self._scores(q, order, ids)
            key = -score
        best = top(key, ids, q.limit)
        return ids[best], score[best]

    def _scores(self, q: Query, order: str, ids: IntArray) -> FloatArray:
        if order == "freshness":
            ts = self._store.gather(ids, ("refreshed_ts",))["refreshed_ts"]
            return ts.astype(np.float64)
        if order == "relevance":
            assert q.text is not None  # Query guarantees text for this sort
            return self._text.scores(q.text, ids, len(self._indexed))
        hot = np.zeros(ids.shape[0])
        known = ids < self._hot.shape[0]
        hot[known] = self._hot[ids[known]]
        return hot


def _line_city(line: npt.NDArray[np.integer], city: npt.NDArray[np.integer]) -> IntArray:
    """One code per (city, line) pair, so the most common filter pair is one posting."""
    code = city.astype(np.int64) * LINE_CODES + line
    return np.where((line >= 0) & (city >= 0), code, -1)


def _empty() -> tuple[IntArray, FloatArray]:
    return np.empty(0, np.int64), np.empty(0, np.float64)
