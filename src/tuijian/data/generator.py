"""A synthetic marketplace (items, users, publishers) for demos, benchmarks and tests.

Every column is drawn whole with numpy and every string is assembled with pyarrow.compute:
at a million rows any per-row Python work would dominate the run. Each table has its own
child seed, so the same seed gives byte-identical files. `appeal` is the simulator's hidden
ground truth; it sits beside the features only so offline evaluation can be scored against it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tuijian.data.vocab import (
    BRANDS,
    CAR_BRANDS,
    CATEGORIES,
    CATEGORIES_BY_LINE,
    CATEGORY_LINE,
    CITIES,
    DISTRICTS,
    LINES,
    SALARY_BANDS,
    SERIES,
    SERIES_BRAND,
)
from tuijian.domain import IntArray

Array = npt.NDArray[Any]
RENT, SALE, CAR, JOB, SERVICE, GOODS = range(len(LINES))
DUPLICATE_SHARE = 0.06
_ROW_GROUP = 1 << 18
_SPAN_S = 30 * 86_400

_LINE_SHARE = np.array([0.26, 0.08, 0.12, 0.18, 0.12, 0.24])
_CATEGORY_WEIGHT = {
    "house_rent": (6, 3, 1), "house_sale": (3, 6, 1), "car": (5, 4, 1, 0.5),
    "job": (3, 3, 2, 2, 2, 1), "service": (2, 3, 3, 1, 1), "goods": (4, 3, 2, 1, 1),
}
# Houses: a multiplier on area x price per m²; jobs, services, goods: the median price in yuan.
_CATEGORY_PRICE = {
    "shared_rent": 1.6, "short_rent": 1.3, "new_home": 1.1, "villa": 1.5, "sales": 7e3,
    "driver": 8e3, "cook": 6.5e3, "it": 15e3, "clerk": 5e3, "nanny": 6.5e3, "moving": 400,
    "cleaning": 150, "repair": 120, "renovation": 1500, "tutoring": 200, "phone": 2500,
    "furniture": 900, "appliance": 1800, "bicycle": 700, "baby": 350,
}
_LABEL = {"suv": "SUV", "mpv": "MPV", "it": "IT engineer", "sales": "Sales rep",
          "baby": "Baby gear"}
# Price factor per (line, city tier 1..3): per-m² prices for houses, plain multipliers otherwise.
_TIER_PRICE = np.array([[30, 45, 80], [12e3, 22e3, 60e3], [0.95, 1, 1.05], [0.85, 1, 1.25],
                        [0.8, 1, 1.3], [0.9, 1, 1.1]])
_PRICE_SIGMA = np.array([0.25, 0.3, 0.2, 0.3, 0.5, 0.7])
_PRICE_LO = np.array([800, 3e5, 2e4, 1500, 50, 50])
_PRICE_HI = np.array([2e4, 1.5e7, 6e5, 6e4, 2000, 15e3])
_PRICE_UNIT = np.array([50, 1e4, 1e3, 100, 10, 10])
_JOB_TYPE_PAY = np.array([1.0, 0.5, 0.4])
# (popularity, new-car price in yuan) per car brand.
_CAR_BRAND = {
    "Volkswagen": (3.0, 170e3), "Toyota": (2.5, 180e3), "Honda": (2.0, 170e3),
    "BYD": (3.0, 160e3), "Geely": (1.5, 110e3), "BMW": (1.0, 380e3), "Mercedes": (1.0, 400e3),
    "Audi": (1.0, 350e3), "Nissan": (1.5, 150e3), "Buick": (1.2, 170e3),
    "Changan": (1.2, 100e3), "Tesla": (1.0, 280e3),
}
_SUV = {"Tiguan", "RAV4", "CR-V", "Song", "Tang", "Boyue", "Xingyue", "X3", "GLC", "Q5L",
        "X-Trail", "CS75", "UNI-K", "Model Y"}
_GOODS_CATEGORY_BRANDS = {"phone": ("Apple", "Huawei", "Xiaomi"), "furniture": ("IKEA",),
                          "appliance": ("Midea", "Haier"), "bicycle": ("Giant",),
                          "baby": ("Goodbaby",)}
_LINE_TAGS = {
    "house_rent": ("near_subway", "pets_ok", "furnished", "urgent", "new", "negotiable"),
    "house_sale": ("near_subway", "school_district", "elevator", "negotiable", "new", "urgent"),
    "car": ("warranty", "one_owner", "no_accident", "negotiable", "urgent"),
    "job": ("urgent", "housing", "meals", "weekends_off", "new"),
    "service": ("same_day", "warranty", "licensed", "negotiable"),
    "goods": ("warranty", "negotiable", "urgent", "new", "free_delivery"),
}
_CONDITIONS = ("brand new", "like new", "90% new", "used")
_PUBLISHER_KIND = ("Rentals", "Realty", "Auto", "Staffing", "Services", "Trading")


def _cdf_rows(weights: list[tuple[float, ...]]) -> npt.NDArray[np.float64]:
    """Cumulative weights per group, padded with 2.0 so padding is never drawn."""
    table = np.full((len(weights), max(len(w) for w in weights)), 2.0)
    for i, w in enumerate(weights):
        table[i, : len(w)] = np.cumsum(w) / np.sum(w)
        table[i, len(w) - 1] = 1.0
    return table


def _pick(rng: np.random.Generator, group: Array, cdf: Array, start: Array) -> IntArray:
    """One weighted code per row from its group's slice of a flat vocabulary, in one pass."""
    u = rng.random(len(group))
    return (start[group] + (u[:, None] >= cdf[group]).sum(axis=1)).astype(np.int64)


_CAT_START = np.array([CATEGORY_LINE.index(i) for i in range(len(LINES))])
_CAT_CDF = _cdf_rows([_CATEGORY_WEIGHT[line] for line in LINES])
_CAT_PRICE = np.array([_CATEGORY_PRICE.get(c, 1.0) for c in CATEGORIES])
_DISTRICT_CITY = np.array([ci for ci, _ in DISTRICTS])
_DIST_START = np.array([list(_DISTRICT_CITY).index(ci) for ci in range(len(CITIES))])
_DIST_CDF = _cdf_rows([tuple(1 / np.sqrt(np.arange(1, len(c[5]) + 1))) for c in CITIES])
_CITY_CDF = _cdf_rows([tuple(c[3] for c in CITIES)])
_CITY_TIER = np.array([c[4] for c in CITIES])
# District centres sit on a golden-angle spiral around the city centre: fixed, seed-independent
# and at most 0.15° out, so items and users of different runs share a geography.
_local = np.arange(len(DISTRICTS)) - _DIST_START[_DISTRICT_CITY]
_radius = 0.15 * np.sqrt((_local + 0.5) / np.bincount(_DISTRICT_CITY)[_DISTRICT_CITY])
_D_LAT = np.array([c[1] for c in CITIES])[_DISTRICT_CITY] + _radius * np.sin(_local * 2.39996)
_D_LON = np.array([c[2] for c in CITIES])[_DISTRICT_CITY] + _radius * np.cos(_local * 2.39996)
_N_CAR_SERIES = sum(len(s) for s in CAR_BRANDS.values())
_CAR_SERIES_P = np.array([_CAR_BRAND[BRANDS[b]][0] / len(CAR_BRANDS[BRANDS[b]])
                          for b in SERIES_BRAND[:_N_CAR_SERIES]])
_CAR_SERIES_P /= _CAR_SERIES_P.sum()
_CAR_SERIES_CATEGORY = np.array([CATEGORIES.index("suv" if s in _SUV else "mpv" if s == "GL8"
                                                  else "sedan") for s in SERIES[:_N_CAR_SERIES]])
_BRAND_PRICE = np.array([_CAR_BRAND.get(b, (0.0, 0.0))[1] for b in BRANDS])
_SERIES_BRAND = np.array(SERIES_BRAND)
_goods_series = [[s for s, b in enumerate(SERIES_BRAND) if BRANDS[b] in _GOODS_CATEGORY_BRANDS[c]]
                 for c in CATEGORIES_BY_LINE["goods"]]
_GOODS_SERIES_N = np.array([len(s) for s in _goods_series])
_GOODS_SERIES = np.array([s + [s[0]] * (_GOODS_SERIES_N.max() - len(s)) for s in _goods_series])
_TAGS = tuple(sorted({t for tags in _LINE_TAGS.values() for t in tags}))
_LINE_TAG_N = np.array([len(_LINE_TAGS[line]) for line in LINES])
_LINE_TAG_CODE = np.array([[_TAGS.index(t) for t in _LINE_TAGS[line]]
                           + [0] * (_LINE_TAG_N.max() - len(_LINE_TAGS[line])) for line in LINES])
_TAGS_PA = pa.array(_TAGS)
_CITY_PA = pa.array([c[0] for c in CITIES])
_DISTRICT_PA = pa.array([d for _, d in DISTRICTS])
_BRAND_PA, _SERIES_PA = pa.array(BRANDS), pa.array(SERIES)
_LABEL_PA = pa.array([_LABEL.get(c, c.replace("_", " ") if CATEGORY_LINE[i] <= SALE
                                 else c.capitalize()) for i, c in enumerate(CATEGORIES)])


@dataclass(slots=True)
class MarketplaceSummary:
    n_items: int
    n_users: int
    n_publishers: int
    n_duplicates: int
    seconds: float


def _str(values: Array) -> pa.Array:
    return pc.cast(pa.array(values), pa.string())


def _take(vocab: pa.Array, codes: Array) -> pa.Array:
    return vocab.take(pa.array(np.maximum(codes, 0)))


def _join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _list_column(matrix: Array, counts: Array, values: Callable[[Array], pa.Array]) -> pa.Array:
    """A list column from a row-padded matrix: the first counts[i] entries of row i."""
    offsets = np.zeros(len(counts) + 1, np.int32)
    np.cumsum(counts, out=offsets[1:])
    flat = matrix[np.arange(matrix.shape[1]) < counts[:, None]]
    return pa.ListArray.from_arrays(pa.array(offsets), values(flat))


def _quintile(values: Array, group: Array) -> npt.NDArray[np.int8]:
    """Quintile of each value within its group, so a band means "cheap for what it is"."""
    order = np.lexsort((values, group))
    counts = np.bincount(group)
    g = group[order]
    rank = np.arange(len(values)) - (np.cumsum(counts) - counts)[g]
    band = np.empty(len(values), np.int8)
    band[order] = 5 * rank // counts[g]
    return band


def _publishers(rng: np.random.Generator, n: int) -> dict[str, Array]:
    line = rng.choice(len(LINES), n, p=_LINE_SHARE)
    city = _pick(rng, np.zeros(n, np.int64), _CITY_CDF, np.zeros(1, np.int64))
    weight = rng.lognormal(0.0, 1.2, n)
    return {"publisher_id": np.arange(1, n + 1, dtype=np.int32), "line": line, "city": city,
            "quality_level": (rng.choice(5, n, p=(0.1, 0.2, 0.35, 0.25, 0.1)) + 1).astype(np.int8),
            "weight": weight / weight.sum()}


def _draw_items(rng: np.random.Generator, n: int, pub: dict[str, Array],
                year_now: int) -> dict[str, Array]:
    """Per-row attributes, as arrays; every publisher gets at least one item."""
    n_pub = len(pub["line"])
    publisher = rng.permutation(np.concatenate(
        [np.arange(n_pub), rng.choice(n_pub, n - n_pub, p=pub["weight"])]))
    line = np.where(rng.random(n) < 0.85, pub["line"][publisher],
                    rng.choice(len(LINES), n, p=_LINE_SHARE))
    city = pub["city"][publisher]
    district = _pick(rng, city, _DIST_CDF, _DIST_START)
    category = _pick(rng, line, _CAT_CDF, _CAT_START)
    house, car, job, goods = line <= SALE, line == CAR, line == JOB, line == GOODS
    villa = category == CATEGORIES.index("villa")
    rooms = rng.choice(5, n, p=(0.25, 0.4, 0.25, 0.08, 0.02)) + 1 + 2 * villa
    area = (18 + 28 * rooms * rng.lognormal(0, 0.15, n)) * np.where(villa, 1.6, 1.0)
    area = np.where(category == CATEGORIES.index("shared_rent"), 8 + 14 * rng.random(n), area)
    floor = np.where(villa, rng.integers(1, 4, n), rng.integers(1, 34, n))
    truck = car & (rng.random(n) < 0.06)
    car_series = rng.choice(_N_CAR_SERIES, n, p=_CAR_SERIES_P)
    gi = np.clip(category - _CAT_START[GOODS], 0, len(_GOODS_SERIES_N) - 1)
    goods_series = _GOODS_SERIES[gi, (rng.random(n) * _GOODS_SERIES_N[gi]).astype(np.int64)]
    branded_goods = goods & (rng.random(n) < 0.7)
    series = np.select([car & ~truck, branded_goods], [car_series, goods_series], -1)
    brand = np.where(series >= 0, _SERIES_BRAND[series], -1)
    category = np.where(car & ~truck, _CAR_SERIES_CATEGORY[car_series], category)
    category = np.where(truck, CATEGORIES.index("truck"), category)
    age = np.minimum(rng.geometric(0.2, n) - 1, 14)
    mileage = np.clip(age * 12e3 * rng.lognormal(0, 0.35, n) + rng.uniform(500, 3e3, n), 1e3, 6e5)
    job_type = rng.choice(3, n, p=(0.75, 0.2, 0.05))
    base = _TIER_PRICE[line, _CITY_TIER[city] - 1] * _CAT_PRICE[category]
    base *= np.where(house, area, 1.0) * np.where(job, _JOB_TYPE_PAY[job_type], 1.0)
    base *= np.where(car, np.where(truck, 150e3, _BRAND_PRICE[brand]) * 0.86**age, 1.0)
    quality = 0.1 + 0.2 * (pub["quality_level"][publisher] - 1) + rng.normal(0, 0.08, n)
    quality = np.clip(quality, 0, 1)
    return {
        "publisher_id": (publisher + 1).astype(np.int32), "line": line, "category": category,
        "city": city, "district": district,
        "lat": _D_LAT[district] + rng.normal(0, 0.02, n),
        "lon": _D_LON[district] + rng.normal(0, 0.02, n),
        "price": base * rng.lognormal(0, _PRICE_SIGMA[line]),
        "rooms": np.where(house, rooms, -1), "area": np.where(house, np.round(area), np.nan),
        "floor": np.where(house, floor, -1), "brand": brand, "series": series,
        "year": np.where(car, year_now - age, -1), "mileage_km": np.where(car, mileage, np.nan),
        "job_type": np.where(job, job_type, -1), "condition": rng.integers(0, 4, n),
        "quality": quality, "appeal": rng.lognormal(0, 1.1, n) * (0.6 + 0.8 * quality),
        "tags": _tag_codes(rng, line), "tag_n": np.minimum(
            rng.choice(4, n, p=(0.25, 0.35, 0.25, 0.15)), _LINE_TAG_N[line]),
        "hashes": rng.integers(-(2**63), 2**63, (n, 3), dtype=np.int64, endpoint=False),
        "hash_n": rng.choice(3, n, p=(0.4, 0.35, 0.25)) + 1,
    }


def _tag_codes(rng: np.random.Generator, line: Array) -> Array:
    """Three distinct tag codes per row from its line's vocabulary (a random permutation)."""
    keys = rng.random((len(line), _LINE_TAG_CODE.shape[1]))
    keys[np.arange(keys.shape[1]) >= _LINE_TAG_N[line][:, None]] = 2.0
    return _LINE_TAG_CODE[line[:, None], np.argsort(keys, axis=1)[:, :3]]


def _make_duplicates(rng: np.random.Generator,
                     cols: dict[str, Array]) -> tuple[IntArray, IntArray, Array]:
    """Turn ~6% of rows into re-posts of an earlier original, in place.

    Rows are in creation order, so an original drawn from the earlier non-duplicates is always
    older. Copying every attribute, then nudging either the price (a changed title token) or
    the wording (returned as a mask), and re-encoding one photo gives what a de-duplicator
    meets in practice. Returns (duplicate rows, their originals, which need a retitle).
    """
    n = len(cols["line"])
    dup = np.sort(rng.choice(np.arange(1, n), min(n - 1, round(DUPLICATE_SHARE * n)), False))
    originals = np.setdiff1d(np.arange(n), dup)
    k = np.searchsorted(originals, dup)
    orig = originals[(rng.random(len(dup)) * k).astype(np.int64)]
    for column in cols.values():
        column[dup] = column[orig]
    retitle = rng.random(len(dup)) < 0.6
    cols["price"][dup] *= np.where(retitle, 1.0, 1 + rng.uniform(-0.01, 0.01, len(dup)))
    flip = dup[(cols["hash_n"][dup] >= 2) & (rng.random(len(dup)) < 0.5)]
    bits = np.zeros(len(flip), np.uint64)
    n_bits = rng.integers(1, 4, len(flip))
    for j in range(3):
        bit = np.left_shift(np.uint64(1), rng.integers(0, 64, len(flip)).astype(np.uint64))
        bits |= np.where(j < n_bits, bit, np.uint64(0))
    cols["hashes"][flip, cols["hash_n"][flip] - 1] ^= bits.view(np.int64)
    return dup, orig, retitle


def _texts(line: int, c: dict[str, Array]) -> tuple[pa.Array, pa.Array]:
    """Title and body for rows of one line, built from that line's attributes."""
    district, label = _take(_DISTRICT_PA, c["district"]), _take(_LABEL_PA, c["category"])
    price = _str(c["price"].astype(np.int64))
    if line in (RENT, SALE):
        rooms, area = _str(c["rooms"]), _str(c["area"].astype(np.int64))
        head = _join(district, " ", rooms, "BR ", area, "m² ", label, " ¥")
        tenths = np.round(c["price"] / 1e5).astype(np.int64)
        title = (_join(head, price, "/mo") if line == RENT
                 else _join(head, _str(tenths // 10), ".", _str(tenths % 10), "M"))
        detail = _join(rooms, " rooms, ", area, " m², floor ", _str(c["floor"]), ".")
    elif line == CAR:
        name = pc.if_else(pa.array(c["brand"] >= 0), _join(
            _take(_BRAND_PA, c["brand"]), " ", _take(_SERIES_PA, c["series"])), "truck")
        km = _join(_str(np.round(c["mileage_km"] / 1e3).astype(np.int64)), ",000 km")
        year = _str(c["year"])
        thousands = _str(c["price"].astype(np.int64) // 1000)
        title = _join(year, " ", name, " ", km, " ¥", thousands, "k")
        detail = _join(label, ", ", year, ", ", km, ".")
    elif line == JOB:
        band = _take(pa.array(SALARY_BANDS), c["salary_band"])
        kind = _take(pa.array(["full time", "part time", "internship"]), c["job_type"])
        title = _join(label, " wanted, ", district, ", ", band, "/month, ", kind)
        detail = _join(pc.utf8_capitalize(kind), ", ¥", price, " a month.")
    elif line == SERVICE:
        title = _join(label, " service, ", district, ", ¥", price, " per job")
        detail = _join(label, " by a local team, ¥", price, " per job.")
    else:
        name = pc.if_else(pa.array(c["brand"] >= 0), _join(
            _take(_BRAND_PA, c["brand"]), " ", _take(_SERIES_PA, c["series"])), label)
        condition = _take(pa.array(_CONDITIONS), c["condition"])
        title = _join(name, ", ", condition, ", ¥", price)
        detail = _join(pc.utf8_capitalize(condition), ", ¥", price, ".")
    body = _join(detail, " In ", district, ", ", _take(_CITY_PA, c["city"]), ".")
    return title, body


def _items_table(rng: np.random.Generator, n: int, pub: dict[str, Array],
                 now: int) -> tuple[pa.Table, int]:
    c = _draw_items(rng, n, pub, time.gmtime(now).tm_year)
    dup, orig, retitle = _make_duplicates(rng, c)
    line = c["line"]
    price = np.round(np.clip(c["price"], _PRICE_LO[line], _PRICE_HI[line])
                     / _PRICE_UNIT[line]) * _PRICE_UNIT[line]
    # Rounding must not push a re-post's price more than 1% off; those keep the original's.
    drift = np.abs(price[dup] / price[orig] - 1) > 0.01
    price[dup[drift]] = price[orig[drift]]
    c["price"] = price
    band = np.digitize(price, [3e3, 5e3, 8e3, 12e3, 20e3])  # the SALARY_BANDS edges
    c["salary_band"] = np.where(line == JOB, band, -1)
    rows = [np.flatnonzero(line == i) for i in range(len(LINES))]
    texts = [_texts(i, {k: v[r] for k, v in c.items()}) for i, r in enumerate(rows)]
    back = pa.array(np.argsort(np.concatenate(rows)))
    title = pa.concat_arrays([t for t, _ in texts]).take(back)
    body = pa.concat_arrays([b for _, b in texts]).take(back)
    # A re-post's title gains a suffix (a short one on short titles, so it stays near-identical)
    # or, for houses, whose titles lead with two plain words, swaps those words.
    old = title.take(pa.array(dup))
    long = pc.greater_equal(pc.utf8_length(old), 30)
    urgent = pc.and_(long, pa.array(rng.random(len(dup)) < 0.5))
    swapped = pc.replace_substring_regex(old, pattern=r"^(\S+) (\S+)", replacement=r"\2 \1")
    new = pc.if_else(pa.array((line[dup] <= SALE) & (rng.random(len(dup)) < 0.5)), swapped,
                     _join(old, pc.if_else(urgent, " (urgent)", " !")))
    new = pc.if_else(pa.array(retitle), new, old)
    at = np.arange(n)
    at[dup] = n + np.arange(len(dup))
    title = pa.concat_arrays([title, new]).take(pa.array(at))
    dup_of = np.full(n, -1, np.int64)
    dup_of[dup] = orig + 1
    created = np.sort(now - rng.integers(0, _SPAN_S, n))
    refreshed = created + np.where(rng.random(n) < 0.4, rng.random(n) * (now - created), 0)
    table = pa.table({
        "item_id": np.arange(1, n + 1, dtype=np.int64), "line": line.astype(np.int8),
        "category": c["category"].astype(np.int16), "city": c["city"].astype(np.int16),
        "district": c["district"].astype(np.int16), "lat": c["lat"].astype(np.float32),
        "lon": c["lon"].astype(np.float32), "title": title, "body": body,
        "tags": _list_column(c["tags"], c["tag_n"], lambda f: _TAGS_PA.take(pa.array(f))),
        "price": c["price"].astype(np.float32),
        "price_band": _quintile(c["price"], line * 4 + _CITY_TIER[c["city"]]),
        "rooms": c["rooms"].astype(np.int8), "area": c["area"].astype(np.float32),
        "floor": c["floor"].astype(np.int16), "brand": c["brand"].astype(np.int16),
        "series": c["series"].astype(np.int16), "year": c["year"].astype(np.int16),
        "mileage_km": c["mileage_km"].astype(np.float32),
        "salary_band": c["salary_band"].astype(np.int8), "job_type": c["job_type"].astype(np.int8),
        "publisher_id": c["publisher_id"], "quality": c["quality"].astype(np.float32),
        "image_hashes": _list_column(c["hashes"], c["hash_n"], pa.array),
        # creative ids: "<item>-<k>", the k-th photo of the listing (the cover first)
        "images": _list_column(np.arange(1, n + 1)[:, None] * 10 + np.arange(3), c["hash_n"],
                               lambda f: _join(_str(f // 10), "-", _str(f % 10))),
        "created_ts": created, "refreshed_ts": refreshed.astype(np.int64), "dup_of": dup_of,
        "appeal": c["appeal"].astype(np.float32),
    })
    return table, len(dup)


def _hex_ids(rng: np.random.Generator, n: int) -> pa.Array:
    """16 hex digits per row, formatted with numpy nibble lookups instead of n f-strings."""
    raw = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    nibbles = (raw[:, None] >> np.arange(60, -4, -4, dtype=np.uint64)) & np.uint64(15)
    chars = np.frombuffer(b"0123456789abcdef", np.uint8)[nibbles]
    offsets = np.arange(0, 16 * (n + 1), 16, dtype=np.int32)
    return pa.Array.from_buffers(
        pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(chars.tobytes())])


def _users_table(rng: np.random.Generator, m: int) -> pa.Table:
    city = _pick(rng, np.zeros(m, np.int64), _CITY_CDF, np.zeros(1, np.int64))
    district = _pick(rng, city, _DIST_CDF, _DIST_START)
    # A low Dirichlet concentration puts most of a user's interest on one or two lines.
    pref = rng.dirichlet(_LINE_SHARE * 1.5, m).astype(np.float32)
    top = pref.argmax(axis=1)
    category = _pick(rng, top, _CAT_CDF, _CAT_START)
    gi = np.clip(category - _CAT_START[GOODS], 0, len(_GOODS_SERIES_N) - 1)
    goods_series = _GOODS_SERIES[gi, (rng.random(m) * _GOODS_SERIES_N[gi]).astype(np.int64)]
    car_series = rng.choice(_N_CAR_SERIES, m, p=_CAR_SERIES_P)
    loyal = rng.random(m)
    brand = np.select([(top == CAR) & (loyal < 0.6), (top == GOODS) & (loyal < 0.5)],
                      [_SERIES_BRAND[car_series], _SERIES_BRAND[goods_series]], -1)
    columns: dict[str, Array | pa.Array] = {
        "user_id": _join("u", _str(np.arange(1, m + 1))), "device_id": _hex_ids(rng, m),
        "city": city.astype(np.int16), "district": district.astype(np.int16),
        "lat": (_D_LAT[district] + rng.normal(0, 0.03, m)).astype(np.float32),
        "lon": (_D_LON[district] + rng.normal(0, 0.03, m)).astype(np.float32),
        "age_band": rng.choice(4, m, p=(0.2, 0.4, 0.25, 0.15)).astype(np.int8),
        "gender": rng.choice(3, m, p=(0.48, 0.48, 0.04)).astype(np.int8),
        "platform": rng.choice(4, m, p=(0.55, 0.3, 0.05, 0.1)).astype(np.int8),
    }
    columns.update({f"pref_{line}": pref[:, i] for i, line in enumerate(LINES)})
    columns.update({
        "category_pref": category.astype(np.int16),
        "price_band_pref": rng.choice(5, m, p=(0.15, 0.25, 0.25, 0.2, 0.15)).astype(np.int8),
        "brand_pref": brand.astype(np.int16),
        "activity": rng.lognormal(-0.5, 1.0, m).astype(np.float32),
        "click_propensity": rng.lognormal(-0.045, 0.3, m).astype(np.float32),
    })
    return pa.table(columns)


def generate_marketplace(out: Path, n_items: int, n_users: int, seed: int, now: float,
                         progress: Callable[[str, float], None] | None = None
                         ) -> MarketplaceSummary:
    """Write items.parquet, users.parquet and publishers.parquet into `out`.

    `now` anchors the timestamps (items are created in the 30 days before it) so a fixed
    `now` keeps the files reproducible; `progress(stage, fraction)` reports coarse steps.
    """
    if n_items < 1 or n_users < 1:
        raise ValueError("generate_marketplace needs at least one item and one user")
    started = time.perf_counter()
    report = progress or (lambda stage, fraction: None)
    pub_rng, item_rng, user_rng = (np.random.default_rng(s)
                                   for s in np.random.SeedSequence(seed).spawn(3))
    out.mkdir(parents=True, exist_ok=True)
    pub = _publishers(pub_rng, max(1, n_items // 8))
    ids = pub["publisher_id"]
    pq.write_table(pa.table({
        "publisher_id": ids, "quality_level": pub["quality_level"],
        "name": _join(_take(_CITY_PA, pub["city"]), " ",
                      _take(pa.array(_PUBLISHER_KIND), pub["line"]), " #", _str(ids)),
    }), out / "publishers.parquet")
    report("items", 0.05)
    items, n_dup = _items_table(item_rng, n_items, pub, int(now))
    report("writing items", 0.5)
    pq.write_table(items, out / "items.parquet", row_group_size=_ROW_GROUP)
    del items
    report("users", 0.7)
    users = _users_table(user_rng, n_users)
    pq.write_table(users, out / "users.parquet", row_group_size=_ROW_GROUP)
    report("done", 1.0)
    return MarketplaceSummary(n_items, n_users, len(ids), n_dup, time.perf_counter() - started)
