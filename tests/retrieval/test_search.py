"""The retrieval engine against brute-force numpy filtering, over the generated marketplace.

Every query plan (range index or column check, ring search or scan) is forced in turn, and
many random queries built around real items must give exactly the reference's ids, in the
same order, with the same scores.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tuijian.data.items import ColumnarItemStore
from tuijian.retrieval import Query, RetrievalEngine, SearchEngine, engine
from tuijian.retrieval.text import query_tokens, tokenize

from .brute import Brute, assert_same, random_query


@pytest.fixture(scope="module")
def store(generated: Path) -> ColumnarItemStore:
    return ColumnarItemStore(pq.read_table(generated / "items.parquet"))


@pytest.fixture(scope="module")
def built(store: ColumnarItemStore) -> tuple[RetrievalEngine, Brute]:
    search_engine = RetrievalEngine.build(store)
    brute = Brute(store)
    # coarse hot scores, so that ties are common and the tie-break is exercised
    brute.hot = np.round(np.random.default_rng(1).random(len(store)), 2)
    search_engine.set_hotness(brute.hot)
    return search_engine, brute


PLANS: dict[str, dict[str, float]] = {
    "default": {},
    "always_range_index": {"RANGE_INDEX_COST": 0.0},
    "never_range_index": {"RANGE_INDEX_COST": float("inf")},
    "always_rings": {"NEAR_SCAN": 0},
}


@pytest.fixture(params=list(PLANS))
def plan(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for name, value in PLANS[request.param].items():
        monkeypatch.setattr(engine, name, value)
    yield request.param


def test_random_queries_match_brute_force(built: tuple[RetrievalEngine, Brute],
                                          store: ColumnarItemStore, plan: str) -> None:
    search_engine, brute = built
    rng = np.random.default_rng(7)
    found = 0
    for _ in range(800):
        q = random_query(rng, store)
        want = brute.search(q)
        assert_same(search_engine.search(q), want, q)
        found += len(want[0]) > 0
    assert found > 600  # the comparison is over real results, not mostly empty ones


@pytest.mark.parametrize("radius", [0.2, 1.0, 3.0, 10.0, 40.0, 500.0])
def test_geo_radius_is_exact_at_every_scale(built: tuple[RetrievalEngine, Brute],
                                           store: ColumnarItemStore, radius: float) -> None:
    search_engine, brute = built
    rng = np.random.default_rng(int(radius * 10))
    for a in rng.integers(0, len(store), 25).tolist():
        lat, lon = float(store.column("lat")[a]), float(store.column("lon")[a])
        q = Query(geo=(lat + rng.normal(0, 0.03), lon, radius), limit=100_000)
        assert_same(search_engine.search(q), brute.search(q), q)


@pytest.mark.parametrize("n", [1, 10, 200, 5000])
def test_nearest_equals_brute_force_top_n(built: tuple[RetrievalEngine, Brute],
                                          store: ColumnarItemStore, n: int,
                                          plan: str) -> None:
    search_engine, brute = built
    rng = np.random.default_rng(n)
    for a in rng.integers(0, len(store), 10).tolist():
        point = (float(store.column("lat")[a]) + rng.normal(0, 0.1), float(store.column("lon")[a]))
        for q in (Query(near=point, limit=n), Query(near=point, line=1, limit=n),
                  Query(near=point, ranges={"price": (None, 3000.0)}, sort="freshness",
                        limit=n)):
            got = search_engine.search(q)
            assert_same(got, brute.search(q), q)
            if q.order() == "distance":
                assert np.all(np.diff(got[1]) >= 0)


def test_nearest_far_from_every_item_falls_back_to_a_scan(
        built: tuple[RetrievalEngine, Brute]) -> None:
    search_engine, brute = built
    q = Query(near=(0.0, 0.0), limit=3)  # the Gulf of Guinea: rings run out before any item
    assert_same(search_engine.search(q), brute.search(q), q)
    assert len(search_engine.search(q)[0]) == 3


def test_sorts_order_by_their_score(built: tuple[RetrievalEngine, Brute]) -> None:
    search_engine, _ = built
    fresh, ts = search_engine.search(Query(city=0, line=0, limit=50))
    assert len(fresh) == 50 and np.all(np.diff(ts) <= 0)
    hot, score = search_engine.search(Query(city=0, sort="hotness", limit=50))
    assert np.all(np.diff(score) <= 0)
    tied = np.flatnonzero(np.diff(score) == 0)
    assert np.all(hot[tied] > hot[tied + 1])  # ties: the newer listing (larger index) first
    rel, bm25 = search_engine.search(Query(text="rent", limit=50))
    assert len(rel) == 50 and np.all(np.diff(bm25) <= 0)


def test_empty_results(built: tuple[RetrievalEngine, Brute], store: ColumnarItemStore) -> None:
    search_engine, _ = built
    for q in (Query(line=2, terms={"rooms": 2}),  # cars have no rooms
              Query(text="no-such-word-anywhere"),
              Query(ranges={"price": (10.0, 5.0)}),
              Query(city=0, limit=0),
              Query(city=999),
              Query(city=0, line=6),  # no such line: must not alias (city 1, line 0)
              Query(city=0, line=256),
              Query(terms={"tags": "not_a_tag"}),
              Query(line=0, exclude=np.arange(len(store)))):
        ids, scores = search_engine.search(q)
        assert ids.shape == scores.shape == (0,), q


def test_unknown_fields_and_bad_queries_raise_naming_the_problem() -> None:
    with pytest.raises(ValueError, match="'colour'"):
        Query(terms={"colour": 1})
    with pytest.raises(ValueError, match="'weight'"):
        Query(ranges={"weight": (1.0, 2.0)})
    with pytest.raises(ValueError, match="'district' takes int"):
        Query(terms={"district": "Chaoyang"})
    with pytest.raises(ValueError, match="'fastest'"):
        Query(sort="fastest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="distance"):
        Query(sort="distance")
    with pytest.raises(ValueError, match="relevance"):
        Query(sort="relevance")
    with pytest.raises(ValueError, match="not both"):
        Query(geo=(30.0, 120.0, 1.0), near=(30.0, 120.0))
    with pytest.raises(ValueError, match="radius"):
        Query(geo=(30.0, 120.0, -1.0))


def test_tokenizer_lowercases_words_and_bigrams_cjk() -> None:
    tokens, rows = tokenize(["Chaoyang 2BR 60m² ¥4500/mo", "北京朝阳 两居室 iPhone15手机", None])
    assert tokens.to_pylist() == ["chaoyang", "2br", "60m²", "4500", "mo", "北京", "京朝",
                                  "朝阳", "两居", "居室", "iphone15", "手机"]
    assert rows.tolist() == [0] * 5 + [1] * 7
    assert query_tokens("!!!") == ()
    assert query_tokens("Rent RENT rent") == ("rent",)


def test_the_engine_meets_the_protocol(built: tuple[RetrievalEngine, Brute]) -> None:
    search_engine: SearchEngine = built[0]
    assert len(search_engine.search(Query(limit=5))[0]) == 5
