"""The ItemFeatureCenter contract, run against every backend: the embedded columnar store,
Redis (the real server on 127.0.0.1:6379) and a replica's mirror of it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tuijian.data.items import COUNTERS, ColumnarItemStore, ItemFeatureCenter
from tuijian.data.mirror import Mirror
from tuijian.data.redis_backend import Breaker
from tuijian.data.redis_columns import RedisItemStore

Factory = Callable[[pa.Table], ItemFeatureCenter]


@pytest.fixture(params=["embedded", "redis", "mirror"])
def make(request: pytest.FixtureRequest) -> Factory:
    if request.param == "embedded":
        return ColumnarItemStore

    url = request.getfixturevalue("redis_url")

    def redis_store(table: pa.Table) -> ItemFeatureCenter:
        store = RedisItemStore(url)
        store.upsert(table)
        return store

    def mirror(table: pa.Table) -> ItemFeatureCenter:
        return Mirror.attach(RedisItemStore(url), ColumnarItemStore(table), Breaker("test"))[0]

    return redis_store if request.param == "redis" else mirror


def _items(ids: list[int], titles: list[str], pubs: list[int], **extra: list[object]
           ) -> pa.Table:
    n = len(ids)
    return pa.table({
        "item_id": ids, "line": [0] * n, "category": [3] * n, "city": [1] * n,
        "district": [9] * n, "title": titles, "publisher_id": pubs, "price": [1000.0] * n,
        **extra,
    })


@pytest.fixture(scope="module")
def catalog(generated: Path) -> pa.Table:
    return pq.read_table(generated / "items.parquet").slice(0, 2000)


def test_upsert_allocates_dense_indexes_and_replaces_in_place(make: Factory) -> None:
    store = make(_items([10, 20, 30], ["a", "b", "c"], [1, 2, 3]))
    assert len(store) == 3
    idx = store.upsert(_items([20, 40], ["b2", "d"], [2, 4]))
    assert idx.tolist() == [1, 3]
    assert len(store) == 4
    assert store.position(40) == 3 and store.position(99) == -1
    assert store.index_of([40, 99, 10]).tolist() == [3, -1, 0]
    assert store.record(1)["title"] == "b2"
    got = store.gather(np.array([3, 0]), ("item_id", "publisher_id", "price"))
    assert got["item_id"].tolist() == [40, 10]
    assert got["publisher_id"].tolist() == [4, 1]
    assert got["price"].dtype == np.float32


def test_a_partial_upsert_keeps_the_columns_it_does_not_carry(make: Factory) -> None:
    store = make(_items([1, 2], ["a", "b"], [5, 6], quality=[0.9, 0.2], rooms=[3, 2]))
    store.upsert(_items([2], ["b"], [6], price=[777.0]))
    got = store.gather(np.array([0, 1]), ("quality", "rooms", "price"))
    assert got["quality"].tolist() == pytest.approx([0.9, 0.2])
    assert got["rooms"].tolist() == [3, 2]
    assert got["price"].tolist() == [1000.0, 777.0]


def test_missing_values_read_as_the_column_default_and_record_says_none(make: Factory) -> None:
    store = make(_items([1, 2], ["a", "b"], [5, 6], rooms=[None, 4]))
    got = store.gather(np.array([0, 1]), ("rooms", "lat", "active", "quality"))
    assert got["rooms"].tolist() == [-1, 4]
    assert np.isnan(got["lat"]).all()
    assert got["active"].tolist() == [1, 1]  # the declared default
    rec = store.record(0)
    assert rec["rooms"] is None and rec["lat"] is None and rec["title"] == "a"


def test_counters_accumulate_repeated_indexes_and_survive_upserts(make: Factory) -> None:
    store = make(_items([1, 2, 3], ["a", "b", "c"], [1, 1, 1]))
    store.add_counts(np.array([0, 2, 2]), "exposures")
    store.add_counts(np.array([2]), "clicks", 1.0)
    store.add_counts(np.array([0, 1]), "expected_clicks", np.array([0.25, 0.5]))
    store.upsert(_items([3], ["c2"], [1]))  # a re-post of the listing keeps its history
    got = store.gather(np.array([0, 1, 2]), COUNTERS)
    assert got["exposures"].tolist() == [1.0, 0.0, 2.0]
    assert got["clicks"].tolist() == [0.0, 0.0, 1.0]
    assert got["expected_clicks"].tolist() == [0.25, 0.5, 0.0]
    store.set_counts("clicks", np.array([7.0, 8.0, 9.0]))
    assert store.column("clicks").tolist() == [7.0, 8.0, 9.0]
    assert store.column("exposures").tolist() == [1.0, 0.0, 2.0]
    with pytest.raises(KeyError):
        store.add_counts(np.array([0]), "views")


def test_derived_signatures_are_computed_at_ingest(make: Factory) -> None:
    store = make(_items([1, 2, 3], ["Flat A", "flat a ", "Flat A"], [7, 7, 8],
                       image_hashes=[[11, 12], [], None]))
    key = store.column("content_key")
    assert key[0] == key[1] != key[2]  # exact re-post: same publisher, same title
    got = store.gather(np.array([0, 1, 2]), ("cover_hash", "n_images", "text_band_00"))
    assert got["cover_hash"].tolist() == [11, 0, 0]
    assert got["n_images"].tolist() == [2, 0, 0]
    assert got["text_band_00"][0] == got["text_band_00"][1]


def test_required_columns_are_checked(make: Factory) -> None:
    store = make(_items([1], ["a"], [1]))
    with pytest.raises(ValueError, match="title"):
        store.upsert(pa.table({"item_id": [5], "line": [0], "category": [0], "city": [0],
                               "district": [0]}))
    assert len(store) == 1


def test_every_backend_reads_back_the_real_catalog_identically(catalog: pa.Table,
                                                               redis_url: str) -> None:
    """The same generated listings in both backends: every column equal, dtypes included."""
    embedded = ColumnarItemStore(catalog)
    remote = RedisItemStore(redis_url)
    remote.upsert(catalog)
    rng = np.random.default_rng(1)
    idx = rng.integers(0, catalog.num_rows, 150)
    names = [*ColumnarItemStore.numeric, *ColumnarItemStore.objects]
    want, got = embedded.gather(idx, names), remote.gather(idx, names)
    for name in ColumnarItemStore.numeric:
        assert got[name].dtype == want[name].dtype, name
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    for name in ColumnarItemStore.objects:
        for a, b in zip(got[name], want[name], strict=True):
            assert _plain(a) == _plain(b), name
    assert remote.record(int(idx[0])) == embedded.record(int(idx[0]))
    np.testing.assert_array_equal(remote.column("price"), embedded.column("price"))
    assert remote.keys() == embedded.keys()


def _plain(v: object) -> object:
    return v.tolist() if isinstance(v, np.ndarray) else v
