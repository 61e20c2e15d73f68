"""Upserts: an item added or changed through the store is found as it now is, on the next query."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tuijian.data.items import ColumnarItemStore
from tuijian.retrieval import Query, RetrievalEngine, ranges

from .brute import Brute, assert_same, random_query


@pytest.fixture
def store(generated: Path) -> ColumnarItemStore:
    return ColumnarItemStore(pq.read_table(generated / "items.parquet"))


def _row(store: ColumnarItemStore, i: int, **changes: Any) -> dict[str, Any]:
    row = store.record(i)
    row.update(changes)
    return row


def _upsert(store: ColumnarItemStore, search: RetrievalEngine,
            rows: list[dict[str, Any]]) -> np.ndarray[Any, Any]:
    idx = store.upsert(pa.Table.from_pylist(rows))
    search.add(idx)
    return idx


def _found(search: RetrievalEngine, q: Query) -> set[int]:
    return set(search.search(q)[0].tolist())


def test_a_new_item_is_found_by_the_next_query(store: ColumnarItemStore) -> None:
    search = RetrievalEngine.build(store)
    n = len(store)
    last = int(store.column("refreshed_ts").max())
    [idx] = _upsert(store, search, [{
        "item_id": 10**9, "line": 5, "category": 21, "city": 3, "district": 25,
        "title": "Zebrawood chair, like new", "price": 1234.0, "lat": 22.55, "lon": 114.06,
        "tags": ["urgent"], "created_ts": last + 60, "refreshed_ts": last + 60,
    }]).tolist()
    assert idx == n and len(search) == n + 1
    assert search.search(Query(text="zebrawood"))[0].tolist() == [idx]
    assert idx in _found(search, Query(city=3, line=5, terms={"district": 25, "tags": "urgent"},
                                       ranges={"price": (1234.0, 1234.0)}))
    assert search.search(Query(ranges={"price": (1234.0, 1234.0)}, limit=10**6))[0].tolist() \
        == np.flatnonzero(store.column("price") == 1234.0)[::-1].tolist()
    assert search.search(Query(near=(22.55, 114.06), limit=1))[0].tolist() == [idx]
    assert search.search(Query(city=3, limit=1))[0].tolist() == [idx]  # the freshest


def test_a_changed_item_no_longer_matches_its_old_values(store: ColumnarItemStore) -> None:
    search = RetrievalEngine.build(store)
    tagged = np.array([len(t) > 0 for t in store.column("tags")])
    i = int(np.flatnonzero((store.column("line") == 0) & (store.column("city") == 0) & tagged)[0])
    old = store.record(i)
    old_words = Query(text=old["title"], limit=10**6)
    near_old = Query(near=(old["lat"], old["lon"]), limit=500)
    before = [Query(terms={"district": old["district"]}, limit=10**6),
              Query(city=0, line=0, limit=10**6),
              Query(ranges={"price": (old["price"], old["price"])}, limit=10**6),
              Query(terms={"tags": list(old["tags"])}, limit=10**6), old_words, near_old]
    for q in before:
        assert i in _found(search, q), q
    _upsert(store, search, [_row(store, i, city=5, district=40, line=1, title="Villa by the lake",
                                 price=9.9e6, lat=30.3, lon=120.1, tags=["elevator"])])
    for q in before:
        assert i not in _found(search, q), q
    everything = 10**6
    for q in (Query(terms={"district": 40}, limit=everything),
              Query(city=5, line=1, limit=everything),
              Query(ranges={"price": (9.9e6, 9.9e6)}, limit=everything),
              Query(terms={"tags": "elevator"}, limit=everything),
              Query(text="lake villa", limit=everything), Query(near=(30.3, 120.1), limit=1)):
        assert i in _found(search, q), q


@pytest.mark.parametrize("n", [1, 10, 200])
def test_nearest_between_an_upsert_and_its_add_skips_items_that_lost_their_place(
        store: ColumnarItemStore, n: int) -> None:
    """Until `add` re-posts them, items whose coordinates the store just cleared are still
    posted under their old cells: their distance is NaN, and the answer is the n nearest of
    the items that are located now."""
    search = RetrievalEngine.build(store)
    point = (float(store.column("lat")[0]), float(store.column("lon")[0]))
    q = Query(near=point, limit=n)
    moved = search.search(q)[0][: n // 2 + 1].tolist()
    store.upsert(pa.Table.from_pylist([_row(store, i, lat=None, lon=None) for i in moved]))
    got = search.search(q)
    assert_same(got, Brute(store).search(q), q)
    assert len(got[0]) == n and not set(moved) & set(got[0].tolist())


@pytest.mark.parametrize("compact_at", [50, 10**6])  # merge after every batch / never
def test_many_upserts_and_range_merges_still_match_brute_force(
        store: ColumnarItemStore, monkeypatch: pytest.MonkeyPatch, compact_at: int) -> None:
    monkeypatch.setattr(ranges, "COMPACT_AT", compact_at)
    search = RetrievalEngine.build(store)
    rng = np.random.default_rng(3)
    n = len(store)
    for batch in range(8):
        changed = rng.choice(n, 40, replace=False).tolist()
        rows = [_row(store, i, price=float(rng.integers(100, 10_000)),
                     district=int(rng.integers(0, 120)), refreshed_ts=int(rng.integers(1, 2**31)),
                     title=f"batch{batch} item {i} {'sofa' if i % 2 else 'bike'}",
                     lat=float(rng.uniform(22, 40)), lon=float(rng.uniform(104, 122)))
                for i in changed]
        rows += [_row(store, int(rng.integers(n)), item_id=10**9 + batch * 100 + j)
                 for j in range(20)]
        _upsert(store, search, rows)
    brute = Brute(store)
    for _ in range(300):
        q = random_query(rng, store)
        assert_same(search.search(q), brute.search(q), q)
    for q in (Query(text="sofa", limit=10**6), Query(ranges={"price": (100.0, 400.0)}, limit=10**6),
              Query(near=(30.0, 110.0), limit=50)):
        assert_same(search.search(q), brute.search(q), q)


def test_add_is_idempotent_and_takes_duplicates(store: ColumnarItemStore) -> None:
    search = RetrievalEngine.build(store)
    q = Query(city=1, line=2, ranges={"price": (None, 1e5)}, limit=10**6)
    want = search.search(q)
    search.add(np.array([], np.int64))
    search.add(np.array([5, 5, 7, 5]))
    search.add(np.arange(len(store)))
    assert_same(search.search(q), want, q)


def test_searches_run_while_a_writer_adds(store: ColumnarItemStore) -> None:
    search = RetrievalEngine.build(store)
    failures: list[BaseException] = []

    def write() -> None:
        try:
            for j in range(200):
                _upsert(store, search, [_row(store, j, district=(j % 7), price=float(j))])
        except BaseException as e:  # noqa: BLE001 - reported below
            failures.append(e)

    writer = threading.Thread(target=write)
    writer.start()
    while writer.is_alive():
        search.search(Query(city=0, terms={"district": [0, 1, 2]}, ranges={"price": (0, 500)}))
    writer.join()
    assert not failures
    q = Query(ranges={"price": (0.0, 199.0)}, terms={"district": 3}, limit=1000)
    assert_same(search.search(q), Brute(store).search(q), q)


def test_an_empty_catalog_builds_and_fills_through_add() -> None:
    store = ColumnarItemStore(pa.table({
        "item_id": pa.array([], pa.int64()), "line": pa.array([], pa.int8()),
        "category": pa.array([], pa.int16()), "city": pa.array([], pa.int16()),
        "district": pa.array([], pa.int16()), "title": pa.array([], pa.string()),
    }))
    search = RetrievalEngine.build(store)
    assert len(search) == 0 and len(search.search(Query(text="bike"))[0]) == 0
    _upsert(store, search, [{"item_id": 1, "line": 5, "category": 24, "city": 0, "district": 0,
                             "title": "Giant bike", "lat": 39.9, "lon": 116.4}])
    assert search.search(Query(text="bike", city=0))[0].tolist() == [0]
    assert search.search(Query(near=(39.9, 116.4)))[0].tolist() == [0]
