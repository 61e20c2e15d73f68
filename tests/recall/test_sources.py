"""Each recall source over a real generated marketplace."""

from __future__ import annotations

import asyncio

import numpy as np
import pyarrow as pa

from tuijian.data.users import UserProfile
from tuijian.domain import RecommendRequest, Scene
from tuijian.recall.base import RecallContext
from tuijian.recall.hot import HotSource
from tuijian.recall.index import RecallIndex
from tuijian.recall.region import RegionSource
from tuijian.recall.related import RelatedSource
from tuijian.recall.search import SearchSource
from tuijian.retrieval.geo import distance_km
from tuijian.serving.service import Service

from ..conftest import NOW


def _ctx(city: int, profile: UserProfile | None = None, **kw: object) -> RecallContext:
    req = RecommendRequest(Scene.GUESS_YOU_LIKE, "t", 20, NOW)
    for k, v in kw.items():
        setattr(req, k, v)
    return RecallContext(req, profile or UserProfile("t"), city, None, None)


def test_index_lists_are_grouped_and_hot_ordered(service: Service) -> None:
    index, store = service.catalog.index, service.store
    members = index.group_list(0, 2)
    cols = store.gather(members, ("city", "line"))
    assert (cols["city"] == 0).all() and (cols["line"] == 2).all()
    assert np.all(np.diff(index.hot[members]) <= 0)
    assert sum(len(m) for m in index.lists["city"].values()) == len(store)


async def test_hot_follows_the_users_interests_at_every_granularity(service: Service
                                                                      ) -> None:
    source = HotSource(service.catalog, {})
    cold, _ = await source.recall(_ctx(0), 100)
    store = service.store
    series = int(store.column("series")[store.column("series") >= 0][0])
    prof = UserProfile("t", district=2, interests={"line": {3: 5.0}, "category": {10: 2.0},
                                                  "series": {series: 1.0}})
    warm, _ = await source.recall(_ctx(0, prof), 100)
    assert len(np.unique(warm)) == len(warm) == 100
    for column, value in (("line", 3), ("category", 10), ("district", 2)):
        col = store.column(column)
        assert (col[warm] == value).mean() >= (col[cold] == value).mean() + 0.1, column
    assert set(service.catalog.index.list_for("city_series", 0, series)[:5].tolist()) \
        <= set(warm.tolist()) | {-1}


async def test_region_prefers_what_is_near(service: Service) -> None:
    store = service.store
    ctx = _ctx(int(store.column("city")[0]))
    ctx.lat, ctx.lon = float(store.column("lat")[0]), float(store.column("lon")[0])
    idx, _ = await RegionSource(service.catalog, {}).recall(ctx, 50)
    city = service.catalog.index.lists["city"][int(store.column("city")[0])]
    d = lambda i: distance_km(ctx.lat, ctx.lon,  # noqa: E731
                              store.column("lat")[i].astype(float),
                              store.column("lon")[i].astype(float))
    assert np.median(d(idx)) < np.median(d(city)) / 2


async def test_related_and_search_respect_their_query(service: Service) -> None:
    store = service.store
    ctx = _ctx(-1)
    ctx.anchor = 77
    idx, _ = await RelatedSource(service.catalog, {}).recall(ctx, 30)
    assert 77 not in idx.tolist()
    a = store.gather(np.array([77]), ("category", "city"))
    cols = store.gather(idx, ("category", "city"))
    assert (cols["city"] == a["city"][0]).all()
    same = cols["category"] == a["category"][0]
    assert same[0] and not np.any(np.diff(same.astype(int)) > 0)  # same category leads
    sctx = _ctx(1, filters={"line": 5, "price_max": 500.0})
    found, tiers = await SearchSource(service.catalog, {"enough": 10}).recall(sctx, 100)
    exact = found[tiers == tiers.max()]
    got = store.gather(exact, ("line", "price", "city"))
    assert (got["line"] == 5).all() and (got["price"] <= 500).all() and (got["city"] == 1).all()
    assert sctx.notes["exact_matches"] == len(exact)


async def test_related_answers_are_kept_for_cache_s(service: Service) -> None:
    """A listing's related candidates are reused (read-only: no caller can change the kept
    copy) until `cache_s` has passed; then a listing that appeared meanwhile is found."""
    ctx = _ctx(-1)
    ctx.anchor = 77
    source = RelatedSource(service.catalog, {"cache_s": 0.3})
    first, _ = await source.recall(ctx, 30)
    assert not first.flags.writeable
    twin = {k: v for k, v in service.store.record(77).items()
            if k in ("line", "category", "city", "district", "price", "series", "rooms",
                     "lat", "lon", "title", "refreshed_ts")}
    service.upsert_items([{**twin, "item_id": 9_999_077, "title": "the same flat again"}])
    new = service.store.position(9_999_077)
    kept, _ = await source.recall(ctx, 30)
    assert kept is first and new not in kept.tolist()
    await asyncio.sleep(0.35)
    fresh, _ = await source.recall(ctx, 30)
    assert new in fresh.tolist()


def test_index_add_makes_new_items_recallable(service: Service) -> None:
    store = service.store
    idx = store.upsert(pa.table({"item_id": [9_999_001], "line": [1], "category": [3],
                                 "city": [2], "district": [14], "title": ["new"],
                                 "refreshed_ts": [int(NOW)]}))
    index: RecallIndex = service.catalog.index
    index.add(store, idx)
    assert idx[0] in index.group_list(2, 1) and index.fresh_by_city[2][0] == idx[0]
    assert index.hot[idx[0]] > 0


async def test_interest_queries_follow_the_profile(service: Service) -> None:
    from tuijian.recall.interest import InterestSource

    store = service.store
    prof = UserProfile("t", interests={"line": {0: 3.0}, "category": {1: 2.0, 7: 1.0},
                                       "district": {2: 2.0}, "price_band": {2: 1.0}})
    got, _ = await InterestSource(service.catalog, {}).recall(_ctx(0, prof), 60)
    assert len(got) == 60 and len(np.unique(got)) == 60
    cols = store.gather(got, ("line", "category", "district", "price_band", "city"))
    assert (cols["city"] == 0).all() and (cols["line"] == 0).all()
    assert (cols["category"] == 1).all()  # category 7 is not a house_rent category
    # the tightest query (district and price band) leads; the category-only one follows
    lead = (cols["district"] == 2) & np.isin(cols["price_band"], [1, 2, 3])
    assert lead[0] and not np.any(np.diff(lead.astype(int)) > 0)
    cold, _ = await InterestSource(service.catalog, {}).recall(_ctx(0), 60)
    assert cold.size == 0


def test_editing_an_item_keeps_its_place_and_moving_it_changes_its_groups(
        service: Service) -> None:
    index, store = service.catalog.index, service.store
    top = int(index.city_list(0)[0])
    row = store.record(top)
    edit = {k: row[k] for k in ("item_id", "line", "category", "city", "district", "title",
                                "refreshed_ts", "quality", "publisher_id")}
    service.upsert_items([{**edit, "price": (row["price"] or 100) * 1.01}])
    assert int(service.catalog.index.city_list(0)[0]) == top
    other = next(d for d in range(len(index.lists["district"]) + 50)
                 if d != row["district"] and d in index.lists["district"])
    service.upsert_items([{**edit, "district": other}])
    index = service.catalog.index
    assert top not in index.list_for("district", row["district"]).tolist()
    assert top in index.list_for("district", other).tolist()


async def test_region_finds_the_nearest_listing_even_if_old_and_cold(service: Service) -> None:
    store, index = service.store, service.catalog.index
    city = 0
    # a big city's pools hold a small share of its listings; shrink this small one's to match
    index.fresh_by_city[city] = index.fresh_by_city[city][:50]
    pool = set(index.fresh_by_city[city].tolist()) | set(index.city_list(city)[:50].tolist())
    outsider = next(i for i in index.city_list(city)[::-1].tolist() if i not in pool)
    ctx = _ctx(city)
    ctx.lat, ctx.lon = float(store.column("lat")[outsider]), float(store.column("lon")[outsider])
    got, _ = await RegionSource(service.catalog, {"hot_pool": 50}).recall(ctx, 50)
    assert outsider in got.tolist()
