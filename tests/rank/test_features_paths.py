"""The online and offline paths build identical feature rows for a logged request."""

import asyncio
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from tuijian.domain import RecommendRequest, Scene
from tuijian.jobs.engine import DuckDBEngine
from tuijian.jobs.join import join
from tuijian.jobs.simulate import simulate
from tuijian.rank.features.featureset import FeatureSet
from tuijian.rank.features.marketplace import (
    INPUTS,
    ServingContext,
    offline_inputs,
    online_inputs,
)
from tuijian.rank.features.spec import load_features
from tuijian.serving.service import Service

from ..conftest import NOW

CONFIG = Path(__file__).parents[2] / "src/tuijian/rank/features/marketplace.yaml"


def test_one_logged_request_gives_identical_rows_online_and_offline(
        service: Service) -> None:
    data = service.settings.data_dir
    # some history, so counters and interests are non-trivial
    simulate(service, data / "generated", NOW - 86400, 0.5, 300, seed=11)
    user = max(service.profiles.active_users(),
               key=lambda u: len(service.profiles.get(u).recent_clicks))
    assert service.profiles.get(user).interests, "the user should have clicked something"
    req = RecommendRequest(Scene.GUESS_YOU_LIKE, user, 10, NOW, platform="ios")
    rec = asyncio.run(service.pipeline.recommend(req, log_exposures=False))
    shown = np.arange(len(rec.cands))
    ctx = ServingContext(service.profiles.get(user), "guess_you_like", "ios", rec.ts)
    online = online_inputs(service.store, service.profiles.table, ctx, rec.cands, shown)
    service.pipeline.log_exposures(rec, range(len(rec.cands)))
    service.exposures.flush()

    out = join(DuckDBEngine.over_log(service.log.root), data / "samples")
    samples = pq.read_table(out["path"])
    mine = samples.filter(np.asarray(samples.column("exposure_id").to_numpy(zero_copy_only=False)
                                     == rec.exposure_id))
    mine = mine.take(np.argsort(mine.column("position").to_numpy()))
    offline = offline_inputs(mine, service.store, service.profiles.table)
    assert offline["has_snapshot"].all()

    config = load_features(CONFIG)
    config.check_inputs(INPUTS)
    features = FeatureSet.fit(config, offline)
    a, b = features.transform(online), features.transform(offline)
    assert a.dense.shape == (len(rec.cands), features.layout.n_dense)
    np.testing.assert_array_equal(a.dense, b.dense)
    np.testing.assert_array_equal(a.cat, b.cat)
    # and the raw inputs behind them, one by one
    for name in INPUTS:
        np.testing.assert_array_equal(np.asarray(online[name], np.float64),
                                      np.asarray(offline[name], np.float64), err_msg=name)
    # the interest inputs carry signal: some shown item matches the user's interests
    assert online["user_line_share"].max() > 0
