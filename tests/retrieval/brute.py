"""A brute-force reference for the retrieval engine: every condition is a numpy mask over every
item, titles are tokenized in plain Python, results are fully sorted. Slow and plainly right,
so the engine's answers can be compared with it exactly."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from tuijian.data.items import ColumnarItemStore, ItemFeatureCenter
from tuijian.domain import FloatArray, IntArray
from tuijian.retrieval import Query

WORD = re.compile(r"[^\W_]+")  # letters and digits (no CJK in generated titles)


def words(title: str | None) -> list[str]:
    return WORD.findall(title.lower()) if title else []


def distance_km(lat: float, lon: float, lats: FloatArray, lons: FloatArray) -> FloatArray:
    x = (lons - lon) * math.cos(math.radians(lat))
    return 111.2 * np.sqrt(x * x + (lats - lat) ** 2)


class Brute:
    def __init__(self, store: ItemFeatureCenter) -> None:
        n = len(store)
        self.n = n
        self.store = store
        self.words = [words(t) for t in store.column("title")]
        self.word_sets = [set(w) for w in self.words]
        self.tags = [set() if t is None else set(t) for t in store.column("tags")]
        self.hot: FloatArray = np.zeros(n)

    def col(self, name: str) -> np.ndarray[Any, Any]:
        return self.store.column(name)[: self.n]

    def mask(self, q: Query) -> np.ndarray[Any, np.dtype[np.bool_]]:
        m = np.ones(self.n, bool)
        if q.line is not None:
            m &= self.col("line") == q.line
        if q.city is not None:
            m &= self.col("city") == q.city
        for name, value in q.terms.items():
            values = [value] if isinstance(value, int | str) else list(value)
            if name == "tags":
                m &= np.array([bool(t & set(values)) for t in self.tags])
            else:
                m &= np.isin(self.col(name), np.array(values))
        for name, (low, high) in q.ranges.items():
            raw = self.col(name)
            v = raw.astype(np.float64)
            ok = raw != -1 if np.issubdtype(raw.dtype, np.integer) else ~np.isnan(v)
            if low is not None:
                ok &= v >= low
            if high is not None:
                ok &= v <= high
            m &= ok
        if q.text:
            need = set(words(q.text))
            m &= np.array([need <= s for s in self.word_sets])
        m[np.asarray(q.exclude, dtype=np.int64)] = False
        return m

    def search(self, q: Query) -> tuple[IntArray, FloatArray]:
        m = self.mask(q)
        point = q.point()
        dist = None
        if point is not None:
            dist = distance_km(point[0], point[1], self.col("lat").astype(np.float64),
                               self.col("lon").astype(np.float64))
            m &= np.isfinite(dist)
            if q.geo is not None:
                m &= dist <= q.geo[2]
        ids = np.flatnonzero(m)
        if q.near is not None:
            assert dist is not None
            ids = ids[np.lexsort((-ids, dist[ids]))][: q.limit]
        order = q.order()
        if order == "distance":
            assert dist is not None
            score = dist[ids]
            key = score
        else:
            score = self.scores(q, order, ids)
            key = -score
        ranked = np.lexsort((-ids, key))[: q.limit]
        return ids[ranked], score[ranked]

    def scores(self, q: Query, order: str, ids: IntArray) -> FloatArray:
        if order == "freshness":
            return self.col("refreshed_ts")[ids].astype(np.float64)
        if order == "hotness":
            return self.hot[ids]
        tokens = set(words(q.text))
        lengths = np.array([len(self.words[i]) for i in ids], dtype=np.float64)
        avg = max(sum(len(w) for w in self.words) / self.n, 1.0)
        idf = 0.0
        for t in tokens:
            df = sum(t in s for s in self.word_sets)
            idf += math.log(1 + (self.n - df + 0.5) / (df + 0.5))
        return idf * 2.2 / (1 + 1.2 * (0.25 + 0.75 * lengths / avg))


def random_query(rng: np.random.Generator, store: ColumnarItemStore) -> Query:
    """A query around a random item, so most have matches; each condition is optional."""
    a = int(rng.integers(len(store)))
    c = {name: store.column(name)[a] for name in (
        "line", "city", "district", "rooms", "brand", "series", "category", "price_band",
        "job_type", "salary_band", "publisher_id", "price", "area", "year", "mileage_km",
        "created_ts", "refreshed_ts", "lat", "lon", "title", "tags")}
    kw: dict[str, Any] = {}
    if rng.random() < 0.7:
        kw["city"] = int(c["city"])
    if rng.random() < 0.7:
        kw["line"] = int(c["line"])
    terms: dict[str, Any] = {}
    for name, p in (("district", 0.4), ("rooms", 0.3), ("brand", 0.3), ("series", 0.15),
                    ("category", 0.3), ("price_band", 0.3), ("job_type", 0.2),
                    ("salary_band", 0.2), ("publisher_id", 0.05)):
        if c[name] >= 0 and rng.random() < p:
            v = int(c[name])
            terms[name] = [v, v + 1] if rng.random() < 0.3 else v
    if len(c["tags"]) and rng.random() < 0.2:
        terms["tags"] = [str(t) for t in c["tags"][:2]]
    ranges: dict[str, tuple[float | None, float | None]] = {}
    for name, p, width in (("price", 0.4, 0.3), ("area", 0.2, 0.3), ("year", 0.2, 0.0),
                           ("mileage_km", 0.1, 0.5), ("created_ts", 0.15, 0.05),
                           ("refreshed_ts", 0.1, 0.05)):
        x = float(c[name])
        if x == x and x != -1 and rng.random() < p:
            low, high = x * (1 - width), x * (1 + width)
            side = rng.random()
            ranges[name] = (low if side > 0.3 else None, high if side < 0.7 else None)
    where = rng.random()
    if c["lat"] == c["lat"] and where < 0.25:
        lat, lon = float(c["lat"]) + rng.normal(0, 0.02), float(c["lon"]) + rng.normal(0, 0.02)
        kw["geo"] = (lat, lon, float(rng.choice([0.3, 1.0, 3.0, 8.0])))
    elif c["lat"] == c["lat"] and where < 0.45:
        kw["near"] = (float(c["lat"]) + rng.normal(0, 0.05), float(c["lon"]))
    if rng.random() < 0.25:
        title = words(c["title"])
        kw["text"] = " ".join(rng.choice(title, min(len(title), int(rng.integers(1, 3))),
                                         replace=False).tolist())
    if rng.random() < 0.2:
        kw["exclude"] = np.concatenate([[a], rng.integers(0, len(store), 50)])
    sorts: list[Any] = [None, "freshness", "hotness"]
    if "geo" in kw or "near" in kw:
        sorts.append("distance")
    if kw.get("text"):
        sorts.append("relevance")
    return Query(terms=terms, ranges=ranges, sort=sorts[int(rng.integers(len(sorts)))],
                 limit=int(rng.choice([1, 5, 20, 100, 1000])), **kw)


def assert_same(got: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]],
                want: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]], q: Query) -> None:
    assert got[0].dtype == np.int64 and got[1].dtype == np.float64
    assert got[0].tolist() == want[0].tolist(), q
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12, err_msg=str(q))
