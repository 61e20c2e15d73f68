"""The recall index: hot lists at every granularity, ordered by hot score.

Granularities (DESIGN: hot at city → district → category/series → item): the city, the city's
business line, the district, the city's category and the city's car/goods series. All are
built in one vectorized pass each over the item feature center (a lexsort by group then score)
and rebuilt periodically; upserted items are appended so they can be recalled on the very next
request. Requests read whichever index object is current, so a rebuild swaps in atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from tuijian.data.items import ItemFeatureCenter
from tuijian.data.vocab import CATEGORIES, CITIES, LINES, SERIES
from tuijian.domain import FloatArray, IntArray
from tuijian.rank.signals import (
    default_position_ctr,
    freshness,
    prior_ctr,
    smoothed_coec,
    smoothed_ctr,
)

HOT_HALF_LIFE_H = 24.0 * 7
FRESH_POOL = 3000  # per city: the newest listings, the pool "nearest newest" searches
N_LINES = len(LINES)
# granularity -> (the columns whose codes make the key, the code ranges that compose it)
GRANULARITIES: dict[str, tuple[str, ...]] = {
    "city": ("city",),
    "city_line": ("city", "line"),
    "district": ("district",),
    "city_category": ("city", "category"),
    "city_series": ("city", "series"),
}
_RADIX = {"city": len(CITIES), "line": N_LINES, "district": 1 << 16,
          "category": len(CATEGORIES), "series": len(SERIES)}
_EMPTY = np.empty(0, np.int64)


def group_key(granularity: str, *codes: int) -> int:
    """The key of one group, e.g. group_key("city_line", city, line)."""
    key = 0
    for name, code in zip(GRANULARITIES[granularity], codes, strict=True):
        if code < 0:
            return -1
        key = key * _RADIX[name] + code
    return key


class Recent(Protocol):
    """Recent per-item counters (the `hot` job), aligned with dense item indexes."""

    pv: FloatArray
    uv: FloatArray
    clicks: FloatArray
    expected: FloatArray


def _recent(values: FloatArray, idx: IntArray) -> FloatArray:
    """Recent counters of `idx`; 0 for items newer than the job's output."""
    inside = idx < values.shape[0]
    return np.where(inside, values[np.where(inside, idx, 0)], 0.0)


def hot_scores(store: ItemFeatureCenter, idx: IntArray, now: float, prior: float,
               recent: Recent | None = None) -> FloatArray:
    """CTR smoothed with a quality-leaning Beta prior × √COEC (the position-debiased view of
    the same clicks) × a unique-visitor lift × freshness.

    Counts are the `hot` job's recent window (PV = exposures, UV, clicks, expected clicks)
    when a version is loaded, else the live all-time counters (UV then unknown: no lift).
    """
    c = store.gather(idx, ("quality", "refreshed_ts", "clicks", "exposures", "expected_clicks"))
    if recent is None:
        clicks, pv, expected = c["clicks"], c["exposures"], c["expected_clicks"]
        lift: float | FloatArray = 1.0
    else:
        clicks, pv = _recent(recent.clicks, idx), _recent(recent.pv, idx)
        expected = _recent(recent.expected, idx)
        lift = 1.0 + 0.1 * np.log1p(_recent(recent.uv, idx))
    ctr = smoothed_ctr(clicks, pv, c["quality"], prior)
    coec = np.sqrt(smoothed_coec(clicks, expected))
    return ctr * coec * lift * (0.25 + 0.75 * freshness(c["refreshed_ts"], now, HOT_HALF_LIFE_H))


@dataclass(slots=True)
class RecallIndex:
    hot: FloatArray  # per item: the hot-list score
    lists: dict[str, dict[int, IntArray]]  # granularity -> group key -> members, hot desc
    fresh_by_city: dict[int, IntArray]  # city -> newest FRESH_POOL members, newest first
    global_hot: IntArray  # the overall top list: the last-resort fallback
    prior_ctr: float  # marketplace CTR at build time, the Beta prior's mean
    position_ctr: FloatArray  # CTR by list position: what an exposure there is worth
    keys: dict[str, IntArray]  # granularity -> each item's group key when last indexed
    recent: Recent | None = None
    built_at: float = 0.0
    version: int = 0  # bumped by every `add`, so caches over the lists know to refresh

    @classmethod
    def build(cls, store: ItemFeatureCenter, now: float,
              position_ctr: FloatArray | None = None, recent: Recent | None = None
              ) -> RecallIndex:
        n = len(store)
        all_idx = np.arange(n)
        cols = store.gather(all_idx, ("city", "line", "district", "category", "series",
                                      "refreshed_ts", "clicks", "exposures"))
        prior = prior_ctr(cols["clicks"], cols["exposures"])
        hot = hot_scores(store, all_idx, now, prior, recent)
        keys = {g: _keys(g, cols) for g in GRANULARITIES}
        lists = {g: _grouped(keys[g], hot) for g in GRANULARITIES}
        fresh_by_city = {
            c: members[np.argsort(-cols["refreshed_ts"][members], kind="stable")[:FRESH_POOL]]
            for c, members in lists["city"].items()
        }
        top = np.argsort(-hot, kind="stable")[:1000].astype(np.int64)
        curve = default_position_ctr(prior) if position_ctr is None else position_ctr
        return cls(hot, lists, fresh_by_city, top, prior, curve, keys, recent, built_at=now)

    def add(self, store: ItemFeatureCenter, idx: IntArray) -> None:
        """Make upserted items recallable now: a new item is inserted by its score, a changed
        one keeps its place unless its group changed (then it moves). Full re-ordering waits
        for the next rebuild."""
        n = len(store)
        if self.hot.shape[0] < n:
            self.hot = _grown(self.hot, n, 0.0)
            for g in GRANULARITIES:
                self.keys[g] = _grown(self.keys[g], n, -1)
        self.hot[idx] = hot_scores(store, idx, self.built_at, self.prior_ctr, self.recent)
        cols = store.gather(idx, ("city", "line", "district", "category", "series"))
        for g in GRANULARITIES:
            table = self.lists[g]
            for i, key in zip(idx.tolist(), _keys(g, cols).tolist(), strict=True):
                old = int(self.keys[g][i])
                if old == key and key in table and (table[key] == i).any():
                    continue
                if old >= 0 and old in table:
                    table[old] = table[old][table[old] != i]
                self.keys[g][i] = key
                if key >= 0:
                    members = table.get(key, _EMPTY)
                    at = int(np.searchsorted(-self.hot[members], -self.hot[i], side="right"))
                    table[key] = np.concatenate([members[:at], [i], members[at:]])
        for i, c in zip(idx.tolist(), cols["city"].tolist(), strict=True):
            fresh = self.fresh_by_city.get(c, _EMPTY)
            self.fresh_by_city[c] = np.concatenate([[i], fresh[fresh != i]])[:FRESH_POOL]
        self.version += 1

    def list_for(self, granularity: str, *codes: int) -> IntArray:
        return self.lists[granularity].get(group_key(granularity, *codes), _EMPTY)

    def city_list(self, city: int) -> IntArray:
        return self.lists["city"].get(city, self.global_hot) if city >= 0 else self.global_hot

    def group_list(self, city: int, line: int) -> IntArray:
        return self.list_for("city_line", city, line)


def _grown(values: npt.NDArray[Any], n: int, fill: float) -> npt.NDArray[Any]:
    out = np.full(n, fill, values.dtype)
    out[: values.shape[0]] = values
    return out


def _keys(granularity: str, cols: dict[str, IntArray]) -> IntArray:
    """Group keys per item; -1 where a code is "not applicable" (no series, say)."""
    key = np.zeros(cols["city"].shape[0], np.int64)
    valid = np.ones(key.shape[0], bool)
    for name in GRANULARITIES[granularity]:
        code = cols[name].astype(np.int64)
        valid &= code >= 0
        key = key * _RADIX[name] + code
    return np.where(valid, key, -1)


def _grouped(keys: IntArray, score: FloatArray) -> dict[int, IntArray]:
    """Members of each key, score descending: one lexsort instead of a loop per group."""
    order = np.lexsort((-score, keys))
    sorted_keys = keys[order]
    bounds = np.flatnonzero(np.diff(sorted_keys)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(order)]])
    return {
        int(sorted_keys[s]): order[s:e].astype(np.int64)
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True)
        if e > s and sorted_keys[s] >= 0
    }


def city_centre(city: int) -> tuple[float, float] | None:
    if 0 <= city < len(CITIES):
        return CITIES[city][1], CITIES[city][2]
    return None
