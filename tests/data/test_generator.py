import difflib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tuijian.data.generator import generate_marketplace
from tuijian.data.vocab import CATEGORY_LINE, CITIES, DISTRICTS, SERIES_BRAND

NOW = 1_700_000_000.0
ITEM_TYPES = {
    "item_id": pa.int64(), "line": pa.int8(), "category": pa.int16(), "city": pa.int16(),
    "district": pa.int16(), "lat": pa.float32(), "lon": pa.float32(), "title": pa.string(),
    "body": pa.string(), "tags": pa.list_(pa.string()), "price": pa.float32(),
    "price_band": pa.int8(), "rooms": pa.int8(), "area": pa.float32(), "floor": pa.int16(),
    "brand": pa.int16(), "series": pa.int16(), "year": pa.int16(),
    "mileage_km": pa.float32(), "salary_band": pa.int8(), "job_type": pa.int8(),
    "publisher_id": pa.int32(), "quality": pa.float32(), "image_hashes": pa.list_(pa.int64()),
    "images": pa.list_(pa.string()), "created_ts": pa.int64(), "refreshed_ts": pa.int64(),
    "dup_of": pa.int64(), "appeal": pa.float32(),
}
USER_TYPES = {
    "user_id": pa.string(), "device_id": pa.string(), "city": pa.int16(),
    "district": pa.int16(), "lat": pa.float32(), "lon": pa.float32(), "age_band": pa.int8(),
    "gender": pa.int8(), "platform": pa.int8(), "pref_house_rent": pa.float32(),
    "pref_house_sale": pa.float32(), "pref_car": pa.float32(), "pref_job": pa.float32(),
    "pref_service": pa.float32(), "pref_goods": pa.float32(), "category_pref": pa.int16(),
    "price_band_pref": pa.int8(), "brand_pref": pa.int16(), "activity": pa.float32(),
    "click_propensity": pa.float32(),
}


def _read(out: Path) -> tuple[pa.Table, pa.Table, pa.Table]:
    return tuple(pq.read_table(out / f"{n}.parquet") for n in ("items", "users", "publishers"))


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> tuple[pa.Table, pa.Table, pa.Table]:
    out = tmp_path_factory.mktemp("market")
    summary = generate_marketplace(out, 20_000, 5_000, seed=11, now=NOW)
    assert (summary.n_items, summary.n_users) == (20_000, 5_000)
    items, users, publishers = _read(out)
    assert summary.n_publishers == len(publishers)
    assert summary.n_duplicates == int(pc.sum(pc.greater(items["dup_of"], 0)).as_py())
    return items, users, publishers


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        generate_marketplace(tmp_path / name, 3_000, 1_000, seed=seed, now=NOW)
    for table in ("items", "users", "publishers"):
        first = (tmp_path / "a" / f"{table}.parquet").read_bytes()
        assert first == (tmp_path / "b" / f"{table}.parquet").read_bytes(), table
    a, c = _read(tmp_path / "a"), _read(tmp_path / "c")
    for column in ("title", "price", "image_hashes"):
        assert not a[0][column].equals(c[0][column])
    assert not a[1]["device_id"].equals(c[1]["device_id"])


def test_column_names_and_types(market: tuple[pa.Table, pa.Table, pa.Table]) -> None:
    items, users, publishers = market
    assert dict(zip(items.schema.names, items.schema.types, strict=True)) == ITEM_TYPES
    assert dict(zip(users.schema.names, users.schema.types, strict=True)) == USER_TYPES
    assert publishers.schema.names == ["publisher_id", "quality_level", "name"]
    assert users["user_id"][:2].to_pylist() == ["u1", "u2"]
    assert pc.all(pc.equal(pc.utf8_length(users["device_id"]), 16)).as_py()


def test_codes_are_consistent_with_vocabularies(
    market: tuple[pa.Table, pa.Table, pa.Table],
) -> None:
    items, users, _ = market
    np.testing.assert_array_equal(np.array(CATEGORY_LINE)[items["category"].to_numpy()],
                                  items["line"].to_numpy())
    district_city = np.array([c for c, _ in DISTRICTS])
    for table in (items, users):
        np.testing.assert_array_equal(district_city[table["district"].to_numpy()],
                                      table["city"].to_numpy())
    series, brand = items["series"].to_numpy(), items["brand"].to_numpy()
    has = series >= 0
    np.testing.assert_array_equal(np.array(SERIES_BRAND)[series[has]], brand[has])
    assert (brand[~has] == -1).all()
    assert len(np.unique(items["city"].to_numpy())) >= 20
    ids = items["item_id"].to_numpy()
    np.testing.assert_array_equal(ids, np.arange(1, len(ids) + 1))
    assert (items["refreshed_ts"].to_numpy() >= items["created_ts"].to_numpy()).all()
    assert (items["refreshed_ts"].to_numpy() <= NOW).all()
    assert (items["created_ts"].to_numpy() >= NOW - 30 * 86_400).all()


def test_items_lie_near_their_city(market: tuple[pa.Table, pa.Table, pa.Table]) -> None:
    items, _, _ = market
    city = items["city"].to_numpy()
    lat = np.array([c[1] for c in CITIES])[city]
    lon = np.array([c[2] for c in CITIES])[city]
    distance = np.hypot(items["lat"].to_numpy() - lat, items["lon"].to_numpy() - lon)
    assert np.percentile(distance, 99) < 0.25


def test_duplicates_repost_an_earlier_original(
    market: tuple[pa.Table, pa.Table, pa.Table],
) -> None:
    items, _, _ = market
    dup_of = items["dup_of"].to_numpy()
    dups = np.flatnonzero(dup_of > 0)
    assert len(dups) >= 0.05 * len(dup_of)
    orig = dup_of[dups] - 1
    assert (orig < dups).all() and (dup_of[orig] == -1).all()
    for name in ("publisher_id", "line", "category", "city", "district", "brand", "rooms"):
        column = items[name].to_numpy()
        np.testing.assert_array_equal(column[dups], column[orig], err_msg=name)
    price = items["price"].to_numpy()
    assert (np.abs(price[dups] / price[orig] - 1) < 0.03).all()
    titles, hashes = items["title"].to_pylist(), items["image_hashes"].to_pylist()
    for d, o in zip(dups, orig, strict=True):
        assert set(hashes[d]) & set(hashes[o])
        assert difflib.SequenceMatcher(None, titles[d], titles[o]).ratio() > 0.8


def test_appeal_is_skewed_and_price_bands_balanced(
    market: tuple[pa.Table, pa.Table, pa.Table],
) -> None:
    items, _, _ = market
    appeal = np.sort(items["appeal"].to_numpy())[::-1]
    assert appeal[: len(appeal) // 100].sum() > 0.05 * appeal.sum()
    share = np.bincount(items["price_band"].to_numpy(), minlength=5) / len(appeal)
    assert np.allclose(share, 0.2, atol=0.03)


def test_users_prefer_one_or_two_lines(market: tuple[pa.Table, pa.Table, pa.Table]) -> None:
    _, users, _ = market
    pref = np.stack([users[n].to_numpy() for n in users.schema.names if n.startswith("pref_")], 1)
    np.testing.assert_allclose(pref.sum(axis=1), 1.0, atol=1e-5)
    top_two = np.sort(pref, axis=1)[:, -2:].sum(axis=1)
    assert np.median(top_two) > 0.8
