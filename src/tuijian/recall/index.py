"""The recall index: hot lists at every granularity, ordered by hot score.

Granularities (DESIGN: hot at city → district → category/series → item): the city, the city's
business line, the district, the city's category and the city's car/goods series. All are
built in one vectorized pass each over the item feature center (a lexsort by group then score)
and rebuilt periodically; upserted items are appended so they can be recalled on the very next
request. Requests read whichever index object is current, so a rebuild swaps in atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

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

    uv: FloatArray
    clicks: FloatArray
    expected: FloatArray


def hot_scores(store: ItemFeatureCenter, idx: IntArray, now: float, prior: float,
               recent: Recent | None = None) -> FloatArray:
    """Quality-informed prior CTR × position-debiased COEC × freshness, and, when the `hot`
    job has published recent counters, COEC over the recent window × a unique-visitor lift."""
    c = store.gather(idx, ("quality", "refreshed_ts", "clicks", "expected_clicks"))
    base = smoothed_ctr(np.zeros(len(idx)), np.zeros(len(idx)), c["quality"], prior)
    fresh = 0.25 + 0.75 * freshness(c["refreshed_ts"], now, HOT_HALF_LIFE_H)
    if recent is None or recent.uv.shape[0] < len(store):
        return base * smoothed_coec(c["clicks"], c["expected_clicks"]) * fresh
    coec = smoothed_coec(recent.clicks[idx], recent.expected[idx])
    return base * coec * (1.0 + 0.1 * np.log1p(recent.uv[idx])) * fresh


@dataclass(slots=True)
class RecallIndex:
    hot: FloatArray  # per item: the hot-list score
    lists: dict[str, dict[int, IntArray]]  # granularity -> group key -> members, hot desc
    fresh_by_city: dict[int, IntArray]  # city -> newest FRESH_POOL members, newest first
    global_hot: IntArray  # the overall top list: the last-resort fallback
    prior_ctr: float  # marketplace CTR at build time, the Beta prior's mean
    position_ctr: FloatArray  # CTR by list position: what an exposure there is worth
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
        lists = {g: _grouped(_keys(g, cols), hot) for g in GRANULARITIES}
        fresh_by_city = {
            c: members[np.argsort(-cols["refreshed_ts"][members], kind="stable")[:FRESH_POOL]]
            for c, members in lists["city"].items()
        }
        top = np.argsort(-hot, kind="stable")[:1000].astype(np.int64)
        curve = default_position_ctr(prior) if position_ctr is None else position_ctr
        return cls(hot, lists, fresh_by_city, top, prior, curve, built_at=now)

    def add(self, store: ItemFeatureCenter, idx: IntArray) -> None:
        """Make freshly upserted items recallable now (full re-ordering waits for a rebuild)."""
        n = len(store)
        if self.hot.shape[0] < n:
            grown = np.zeros(n, np.float64)
            grown[: self.hot.shape[0]] = self.hot
            self.hot = grown
        self.hot[idx] = hot_scores(store, idx, self.built_at, self.prior_ctr)
        cols = store.gather(idx, ("city", "line", "district", "category", "series"))
        for g in GRANULARITIES:
            keys = _keys(g, cols)
            for i, key in zip(idx.tolist(), keys.tolist(), strict=True):
                members = self.lists[g].get(key, _EMPTY)
                self.lists[g][key] = np.concatenate([members[members != i], [i]])
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
