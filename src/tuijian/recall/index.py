"""The recall index: per-city and per-(city, line) item lists, ordered by hot score.

Built in one vectorized pass over the item feature center (a lexsort by group then score), and
rebuilt periodically by the build job; upserted items are appended so they can be recalled on
the very next request. Requests read whichever index object is current, so a rebuild swaps in
atomically.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tuijian.data.items import ItemFeatureCenter
from tuijian.data.vocab import CITIES, LINES
from tuijian.domain import FloatArray, IntArray
from tuijian.rank.signals import freshness, prior_ctr, smoothed_ctr

HOT_HALF_LIFE_H = 24.0 * 7
FRESH_POOL = 3000  # per city: the newest listings, the pool "nearest newest" searches
N_LINES = len(LINES)


@dataclass(slots=True)
class RecallIndex:
    hot: FloatArray  # per item: smoothed CTR × freshness, the hot-list score
    by_group: dict[int, IntArray]  # city * N_LINES + line -> members, hot score descending
    by_city: dict[int, IntArray]  # city -> members, hot score descending
    fresh_by_city: dict[int, IntArray]  # city -> newest FRESH_POOL members, newest first
    global_hot: IntArray  # the overall top list: the last-resort fallback
    prior_ctr: float  # marketplace CTR at build time, the Beta prior's mean
    built_at: float = 0.0

    @classmethod
    def build(cls, store: ItemFeatureCenter, now: float) -> RecallIndex:
        n = len(store)
        cols = store.gather(np.arange(n), ("city", "line", "quality", "refreshed_ts",
                                           "clicks", "exposures"))
        prior = prior_ctr(cols["clicks"], cols["exposures"])
        ctr = smoothed_ctr(cols["clicks"], cols["exposures"], cols["quality"], prior)
        hot = ctr * (0.25 + 0.75 * freshness(cols["refreshed_ts"], now, HOT_HALF_LIFE_H))
        city = cols["city"].astype(np.int64)
        group = city * N_LINES + cols["line"].astype(np.int64)
        by_group = _grouped(group, hot)
        by_city = _grouped(city, hot)
        fresh_by_city = {
            c: members[np.argsort(-cols["refreshed_ts"][members], kind="stable")[:FRESH_POOL]]
            for c, members in by_city.items()
        }
        top = np.argsort(-hot, kind="stable")[:1000].astype(np.int64)
        return cls(hot, by_group, by_city, fresh_by_city, top, prior, built_at=now)

    def add(self, store: ItemFeatureCenter, idx: IntArray) -> None:
        """Make freshly upserted items recallable now (full re-ordering waits for a rebuild)."""
        n = len(store)
        if self.hot.shape[0] < n:
            grown = np.zeros(n, np.float64)
            grown[: self.hot.shape[0]] = self.hot
            self.hot = grown
        cols = store.gather(idx, ("city", "line", "quality"))
        self.hot[idx] = smoothed_ctr(np.zeros(len(idx)), np.zeros(len(idx)), cols["quality"],
                                     self.prior_ctr)
        for i, c, line in zip(idx.tolist(), cols["city"].tolist(), cols["line"].tolist(),
                              strict=True):
            one = np.array([i], np.int64)
            for table, key in ((self.by_group, c * N_LINES + line), (self.by_city, c)):
                members = table.get(key, np.empty(0, np.int64))
                table[key] = np.concatenate([members[members != i], one])
            fresh = self.fresh_by_city.get(c, np.empty(0, np.int64))
            self.fresh_by_city[c] = np.concatenate([one, fresh[fresh != i]])[:FRESH_POOL]

    def city_list(self, city: int) -> IntArray:
        return self.by_city.get(city, self.global_hot) if city >= 0 else self.global_hot

    def group_list(self, city: int, line: int) -> IntArray:
        return self.by_group.get(city * N_LINES + line, np.empty(0, np.int64))


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
        if e > s
    }


def city_centre(city: int) -> tuple[float, float] | None:
    if 0 <= city < len(CITIES):
        return CITIES[city][1], CITIES[city][2]
    return None
