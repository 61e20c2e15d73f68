"""Batch CF jobs over simulated traffic → artifacts → reload → recall from each."""

from __future__ import annotations

import asyncio

import numpy as np

from tuijian.domain import RecommendRequest, Scene
from tuijian.jobs.base import JobContext
from tuijian.jobs.engine import DuckDBEngine
from tuijian.jobs.registry import JOBS
from tuijian.jobs.simulate import simulate
from tuijian.recall.base import RecallContext
from tuijian.recall.registry import SOURCES
from tuijian.serving.service import Service

from ..conftest import NOW


def test_cf_jobs_publish_and_their_sources_recall(service: Service) -> None:
    data = service.settings.data_dir
    simulate(service, data / "generated", NOW - 86400, 1.0, 600, seed=4)
    ctx = JobContext(data, DuckDBEngine.over_log(data / "events"), NOW)
    for name in ("item_cf", "user_cf", "mf", "two_tower"):
        ctx.params = {"epochs": 2} if name == "two_tower" else {}
        meta = JOBS[name].run(ctx).meta()
        assert meta["rows"] > 0 and meta["interactions"] > 0, name
    assert sorted(service.reload_models()) == ["item_cf", "mf", "two_tower", "user_cf"]
    # a user with clicks gets candidates from each source, none of them already clicked
    active = [u for u in service.profiles.active_users()
              if len(service.profiles.get(u).recent_clicks) >= 2]
    assert active
    user = active[0]
    prof = service.profiles.get(user)
    req = RecommendRequest(Scene.GUESS_YOU_LIKE, user, 20, NOW)
    for name in ("item_cf", "user_cf", "mf", "two_tower"):
        source = SOURCES[name](service.catalog, {})
        idx, scores = asyncio.run(
            source.recall(RecallContext(req, prof, prof.city, None, None), 20))
        assert idx.size > 0, name
        assert np.all(np.diff(scores) <= 1e-9), name
        if name != "user_cf":  # user-CF lists come from the batch fit, not today's clicks
            assert not set(idx.tolist()) & set(prof.recent_clicks), name
        if name in ("mf", "two_tower"):  # embeddings know taste; the source keeps the city
            assert (service.store.column("city")[idx] == prof.city).all(), name
    # MF folds a brand-new visitor's clicks in at request time
    newcomer = service.profiles.get("newcomer")
    newcomer.recent_clicks.extend(list(prof.recent_clicks)[:3])
    idx, _ = asyncio.run(SOURCES["mf"](service.catalog, {}).recall(
        RecallContext(RecommendRequest(Scene.FEED, "newcomer", 10, NOW), newcomer, -1, None,
                      None), 10))
    assert idx.size == 10
