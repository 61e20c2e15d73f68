"""The pipeline over a real generated marketplace: scenes, filters and degradation."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from tuijian.config import load_strategies
from tuijian.domain import FloatArray, IntArray, RecommendRequest, Scene
from tuijian.recall.base import Catalog, RecallContext
from tuijian.recall.registry import register_source
from tuijian.serving.pipeline import Pipeline
from tuijian.serving.service import Service

from ..conftest import NOW


def _req(scene: Scene = Scene.GUESS_YOU_LIKE, user: str = "u1", n: int = 20, **kw: Any
         ) -> RecommendRequest:
    return RecommendRequest(scene=scene, user_id=user, n=n, now=NOW, **kw)


def _ids(rec: Any) -> list[int]:
    return [i["item_id"] for i in rec.items]


async def test_guess_you_like_serves_the_users_city_from_both_sources(service: Service) -> None:
    prof = service.profiles.get("u1")
    rec = await service.pipeline.recommend(_req(n=30))
    idx = service.store.index_of(_ids(rec))
    assert set(service.store.column("city")[idx].tolist()) == {prof.city}
    hits = service.metrics.render().decode()
    for source, k in (("hot", 100), ("region", 80)):
        assert f'tuijian_recall_source_hits_total{{source="{source}"}} {k}.0' in hits
    # nothing is deployed in a fresh data dir: the learned rank id serves the rule order
    assert rec.degraded == ["rank.model_missing"]
    assert len(set(_ids(rec))) == 30


async def test_items_shown_are_not_shown_again(service: Service) -> None:
    first = await service.pipeline.recommend(_req(n=20))
    second = await service.pipeline.recommend(_req(n=20))
    assert not set(_ids(first)) & set(_ids(second))


async def test_feed_pages_never_repeat_within_a_session(service: Service) -> None:
    service.strategies.filters.exclude_shown = False  # only the session may prevent repeats
    seen: list[int] = []
    token = None
    for _ in range(4):
        rec = await service.pipeline.recommend(_req(Scene.FEED, n=15, page_token=token))
        token = rec.next_page_token
        seen += _ids(rec)
    assert len(seen) == 60 and len(set(seen)) == 60
    # another user's token is not theirs to continue: it opens a new session
    other = await service.pipeline.recommend(_req(Scene.FEED, user="u2", n=15,
                                                  page_token=token))
    assert other.next_page_token != token


async def test_detail_related_matches_the_anchor_and_excludes_it(service: Service) -> None:
    anchor = int(service.store.column("item_id")[123])
    rec = await service.pipeline.recommend(_req(Scene.DETAIL_RELATED, n=10, item_id=anchor))
    assert anchor not in _ids(rec)
    a = service.store.gather(np.array([123]), ("city", "line", "category"))
    idx = service.store.index_of(_ids(rec))
    got = service.store.gather(idx, ("city", "line", "category"))
    assert (got["city"] == a["city"][0]).all()
    assert (got["line"] == a["line"][0]).mean() >= 0.8
    assert rec.items[0]["source"] == "related"


async def test_search_fallback_relaxes_and_keeps_exact_matches_first(service: Service) -> None:
    store = service.store
    beijing = 0
    line = 0  # house_rent
    rec = await service.pipeline.recommend(_req(
        Scene.SEARCH_FALLBACK, user="nobody", n=20, city="Beijing",
        filters={"line": line, "rooms": 3, "price_max": 2500.0, "district": 0}))
    idx = store.index_of(_ids(rec))
    cols = store.gather(idx, ("city", "line", "rooms", "price", "district"))
    exact = ((cols["line"] == line) & (cols["rooms"] == 3) & (cols["price"] <= 2500)
             & (cols["district"] == 0))
    assert (cols["city"] == beijing).all()
    assert exact.any() and rec.notes["relaxed"]
    # every exact match precedes every relaxed one
    assert not np.any(np.diff(exact.astype(int)) > 0)


async def test_push_landing_list_leads_with_the_notified_item(service: Service) -> None:
    note = await service.pipeline.recommend(_req(Scene.PUSH, n=1), log_exposures=False)
    param = note.items[0]["tracking"]
    landing = await service.pipeline.recommend(_req(Scene.PUSH, n=10, tracking=param))
    assert landing.items[0]["item_id"] == note.items[0]["item_id"]
    assert landing.items[0]["source"] == "pinned"
    assert note.items[0]["item_id"] not in _ids(landing)[1:]


class _Slow:
    name = "slow"

    def __init__(self, catalog: Catalog, params: dict[str, Any]) -> None:
        self.catalog = catalog

    async def recall(self, ctx: RecallContext, k: int) -> tuple[IntArray, FloatArray]:
        await asyncio.sleep(0.2)
        return self.catalog.index.global_hot[:k], np.ones(min(k, 1000))


class _Broken(_Slow):
    name = "broken"

    async def recall(self, ctx: RecallContext, k: int) -> tuple[IntArray, FloatArray]:
        raise RuntimeError("index server down")


class _BrokenRanker:
    name = "broken_ranker"

    def __init__(self, params: dict[str, Any]) -> None: ...

    def score(self, cands: Any, ctx: Any) -> FloatArray:
        raise RuntimeError("model file corrupt")

    def click_model(self, models: Any) -> None:
        return None


@pytest.fixture
def faulty_pipeline(service: Service, monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    from tuijian.rank.registry import RANKERS

    register_source("slow", _Slow, 50)
    register_source("broken", _Broken, 51)
    monkeypatch.setitem(RANKERS, "broken_ranker", _BrokenRanker)
    strategies = load_strategies()
    strategies.recall["r_default"].sources[0].name = "slow"
    strategies.recall["r_default"].sources[0].budget_ms = 30
    strategies.recall["r_related"].sources[0].name = "broken"
    strategies.rank["rk_ctr_cvr"].ranker = "broken_ranker"
    return Pipeline(service.catalog, service.profiles, strategies, service.codec, None,
                    service.metrics)


async def test_late_and_failing_sources_and_ranker_degrade_not_fail(
        faulty_pipeline: Pipeline, service: Service) -> None:
    rec = await faulty_pipeline.recommend(_req(n=10))
    assert len(rec.items) == 10
    assert "recall.slow" in rec.degraded and "rank" in rec.degraded
    assert {i["source"] for i in rec.items} == {"region"}
    anchor = int(service.store.column("item_id")[5])
    rel = await faulty_pipeline.recommend(_req(Scene.DETAIL_RELATED, n=10, item_id=anchor))
    assert len(rel.items) == 10 and "recall.broken" in rel.degraded
    text = service.metrics.render().decode()
    assert 'tuijian_degradations_total{reason="timeout",stage="recall.slow"}' in text


async def test_a_request_nothing_can_serve_gets_the_cached_hot_list(
        service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*a: Any, **k: Any) -> Any:
        raise RuntimeError("fusion bug")

    monkeypatch.setattr("tuijian.serving.pipeline.fuse", explode)
    rec = await service.pipeline.recommend(_req(n=10))
    assert len(rec.items) == 10 and rec.degraded == ["pipeline"]
    assert {i["source"] for i in rec.items} == {"fallback"}


def _every_default_source(service: Service, source: Any, budget_ms: float) -> Pipeline:
    """A pipeline whose guess_you_like recall runs only `source`, under `budget_ms`."""
    register_source(source.name, source, {"slow": 50, "busy": 52}[source.name])
    strategies = load_strategies()
    for spec in strategies.recall["r_default"].sources:
        spec.name, spec.budget_ms = source.name, budget_ms
    return Pipeline(service.catalog, service.profiles, strategies, service.codec, None,
                    service.metrics)


async def test_all_sources_late_falls_back_to_the_hot_list(service: Service) -> None:
    rec = await _every_default_source(service, _Slow, 10).recommend(_req(n=10))
    assert len(rec.items) == 10 and "recall.empty" in rec.degraded
    assert {i["source"] for i in rec.items} == {"fallback"}


async def test_a_user_who_has_seen_the_recalled_items_still_gets_a_full_list(
        service: Service) -> None:
    service.profiles.shown_memory = 5000
    seen: set[int] = set()
    for _ in range(25):  # 25 × 20 = 500 > what hot (150) and region (150) recall at once
        rec = await service.pipeline.recommend(_req(n=20))
        assert len(rec.items) == 20
        seen.update(_ids(rec))
    assert len(seen) == 500  # and never a repeat


class _Busy(_Slow):
    """CPU-bound for 12 ms: within a 20 ms budget on its own."""

    name = "busy"

    async def recall(self, ctx: RecallContext, k: int) -> tuple[IntArray, FloatArray]:
        import time

        end = time.perf_counter() + 0.012
        while time.perf_counter() < end:
            pass
        return self.catalog.index.city_list(ctx.city)[:k], np.ones(min(k, 1000))


async def test_sibling_sources_cpu_time_is_not_charged_to_each_other(
        service: Service) -> None:
    rec = await _every_default_source(service, _Busy, 20).recommend(_req(n=10))
    assert rec.degraded == ["rank.model_missing"] and len(rec.items) == 10


class _Waits(_Slow):
    """Waits 5 ms on I/O (a remote lookup), then answers the city's list, or fails."""

    name = "waits"
    fails = False

    async def recall(self, ctx: RecallContext, k: int) -> tuple[IntArray, FloatArray]:
        await asyncio.sleep(0.005)
        if self.fails:
            raise ConnectionError("lookup service reset the connection")
        return self.catalog.index.city_list(ctx.city)[:k], np.ones(min(k, 1000))


@pytest.mark.parametrize("fails", [False, True])
async def test_a_source_waiting_on_io_finishes_alongside_the_in_process_ones(
        service: Service, monkeypatch: pytest.MonkeyPatch, fails: bool) -> None:
    register_source("waits", _Waits, 53)
    monkeypatch.setattr(_Waits, "fails", fails)
    strategies = load_strategies()
    strategies.recall["r_default"].sources[0].name = "waits"
    pipeline = Pipeline(service.catalog, service.profiles, strategies, service.codec, None,
                        service.metrics)
    rec = await pipeline.recommend(_req(n=10))
    assert len(rec.items) == 10 and "source.region" in rec.timings
    if fails:
        assert rec.degraded == ["recall.waits", "rank.model_missing"]
    else:
        assert rec.degraded == ["rank.model_missing"] and rec.timings["source.waits"] >= 0.005


def test_an_item_upserted_during_a_rebuild_survives_the_swap(
        service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    from tuijian.recall import index as index_module

    real_build = index_module.RecallIndex.build
    row = {"item_id": 8_000_001, "line": 1, "category": 3, "city": 4, "district": 30,
           "title": "mid-build listing", "refreshed_ts": int(NOW)}

    def build_then_upsert(store: Any, now: float, curve: Any = None, recent: Any = None
                          ) -> Any:
        built = real_build(store, now, curve, recent)
        service.upsert_items([row])  # lands in the old index while the new one is built
        return built

    monkeypatch.setattr(index_module.RecallIndex, "build", build_then_upsert)
    service.rebuild_index(NOW)
    pos = service.store.position(8_000_001)
    assert pos in service.catalog.index.group_list(4, 1)
    assert service.catalog.index.fresh_by_city[4][0] == pos


async def test_the_rrf_strategy_serves_a_full_list(service: Service) -> None:
    from tuijian.domain import StageIds

    class RRF:
        def assign(self, request: RecommendRequest) -> StageIds:
            return StageIds("r_rrf", "rk_rule", "ru_default", "d_card")

    pipe = Pipeline(service.catalog, service.profiles, service.strategies, service.codec, None,
                    service.metrics, assigner=RRF())
    rec = await pipe.recommend(_req(n=20))
    assert len(rec.items) == 20 and rec.stage_ids.recall == "r_rrf" and not rec.degraded
