"""MovieLens 100K as a CTR task: labels, the time split, leak-free history, a learnable task."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from tuijian.rank.datasets import (
    CTR_DATASETS,
    GENRES,
    STRENGTH,
    CTRDataset,
    earlier_sums,
    load_ml100k_ctr,
)
from tuijian.rank.evaluate import auc
from tuijian.rank.features.featureset import FeatureSet
from tuijian.rank.models.base import TrainSet
from tuijian.rank.models.linear import LogisticRegressionModel

from ..conftest import DATASETS

ML100K = DATASETS / "ml-100k"  # real data, always there beside the repository: never skipped


@pytest.fixture(scope="module")
def ds() -> CTRDataset:
    return load_ml100k_ctr(DATASETS)


def _all(ds: CTRDataset, name: str) -> np.ndarray:
    return np.concatenate([ds.train_raw[name], ds.test_raw[name]])


def test_rows_labels_and_registry(ds: CTRDataset) -> None:
    ratings = np.loadtxt(ML100K / "u.data", dtype=np.int64)
    assert len(ds.train_y) == 80_000 and len(ds.test_y) == 20_000
    assert all(len(v) == 80_000 for v in ds.train_raw.values())
    assert all(len(v) == 20_000 for v in ds.test_raw.values())
    y = np.concatenate([ds.train_y, ds.test_y])
    assert y.dtype == np.float64
    assert y.mean() == pytest.approx((ratings[:, 2] >= 4).mean())
    assert 0.5 < y.mean() < 0.6
    assert CTR_DATASETS["ml-100k"] is load_ml100k_ctr
    assert not ds.config.fitted  # quantile buckets are left to be fitted on train rows
    assert load_ml100k_ctr(ML100K).test_y.sum() == ds.test_y.sum()  # the archive dir works too


def test_split_is_by_time_with_ties_in_file_order(ds: CTRDataset) -> None:
    ts = np.concatenate([ds.train_ts, ds.test_ts])
    assert ds.train_ts.max() <= ds.test_ts.min()
    assert np.all(np.diff(ts) >= 0)
    ratings = np.loadtxt(ML100K / "u.data", dtype=np.int64)
    order = np.argsort(ratings[:, 3], kind="stable")
    np.testing.assert_array_equal(_all(ds, "user_id"), ratings[order, 0])
    np.testing.assert_array_equal(_all(ds, "item_id"), ratings[order, 1])
    np.testing.assert_array_equal(ds.test_groups, ds.test_raw["user_id"])
    fit, valid = ds.valid_tail(0.1)
    assert len(valid) == 8_000 and fit[-1] + 1 == valid[0] == 72_000


def test_attributes_are_read(ds: CTRDataset) -> None:
    # user 1 is "1|24|M|technician|85711"; movie 1 is Toy Story (01-Jan-1995): Animation,
    # Children's, Comedy
    row = int(np.flatnonzero(_all(ds, "user_id") == 1)[0])
    assert _all(ds, "user_age")[row] == 24 and _all(ds, "user_age_band")[row] == 1
    assert _all(ds, "user_gender")[row] == 0 and _all(ds, "user_zip1")[row] == 8
    assert _all(ds, "user_occupation")[row] == 19  # technician, in u.occupation order
    row = int(np.flatnonzero(_all(ds, "item_id") == 1)[0])
    assert _all(ds, "item_year")[row] == 1995
    on = [g for g in GENRES if _all(ds, f"item_genre_{g}")[row] == 1]
    assert on == ["animation", "childrens", "comedy"]
    assert _all(ds, "item_first_genre")[row] == GENRES.index("animation")


def test_earlier_sums_never_sees_the_same_second() -> None:
    group = np.array([1, 1, 1, 2, 1, 2])
    ts = np.array([5, 3, 5, 1, 9, 1])
    v = np.array([1.0, 10.0, 100.0, 1000.0, 10000.0, 5.0])
    np.testing.assert_array_equal(earlier_sums(group, ts, v), [10, 0, 10, 0, 111, 0])


def test_history_has_no_leakage(ds: CTRDataset) -> None:
    user, item = _all(ds, "user_id"), _all(ds, "item_id")
    ts = np.concatenate([ds.train_ts, ds.test_ts])
    y = np.concatenate([ds.train_y, ds.test_y])
    user_n = _all(ds, "user_n_prev")
    _, first = np.unique(user, return_index=True)
    assert np.all(user_n[first] == 0)
    assert np.all(_all(ds, "item_n_prev")[np.unique(item, return_index=True)[1]] == 0)

    # a slow reference: every user's and movie's earlier ratings, scanned row by row
    genres = np.column_stack([_all(ds, f"item_genre_{g}") for g in GENRES])
    by_user: dict[int, list[int]] = defaultdict(list)
    by_item: dict[int, list[int]] = defaultdict(list)
    for i in range(len(y)):
        by_user[int(user[i])].append(i)
        by_item[int(item[i])].append(i)

    def rate(pos: float, n: float, prior: float) -> float:
        return (pos + STRENGTH * prior) / (n + STRENGTH)

    rows = np.random.default_rng(7).choice(len(y), 200, replace=False)
    for i in rows:
        earlier = [j for j in by_user[int(user[i])] if ts[j] < ts[i]]
        n, pos = len(earlier), sum(y[j] for j in earlier)
        assert user_n[i] == n
        u_rate = rate(pos, n, 0.5)
        assert _all(ds, "user_pos_rate")[i] == pytest.approx(u_rate)
        shared = [genres[j] @ genres[i] for j in earlier]
        g_pos = sum(s * y[j] for s, j in zip(shared, earlier, strict=True))
        assert _all(ds, "user_genre_rate")[i] == pytest.approx(rate(g_pos, sum(shared), u_rate))
        earlier = [j for j in by_item[int(item[i])] if ts[j] < ts[i]]
        assert _all(ds, "item_n_prev")[i] == len(earlier)
        assert _all(ds, "item_pos_rate")[i] == pytest.approx(
            rate(sum(y[j] for j in earlier), len(earlier), 0.5))


def test_logistic_regression_learns_the_task(ds: CTRDataset) -> None:
    features = FeatureSet.fit(ds.config, ds.train_raw)
    model = LogisticRegressionModel(features.layout, "binary", {"C": 0.1})
    model.fit(TrainSet(features.transform(ds.train_raw), ds.train_y))
    # measured 0.738 (C=0.1; 0.716 at C=1)
    assert auc(ds.test_y, model.predict(features.transform(ds.test_raw))) > 0.70


def test_loader_rejects_a_bad_fraction() -> None:
    with pytest.raises(ValueError, match="test_fraction"):
        load_ml100k_ctr(DATASETS, test_fraction=1.0)


def test_eval_rank_reports_models_and_fused_rank_ids_on_ml100k() -> None:
    from tuijian.rank.eval_runner import eval_dataset

    out = eval_dataset("ml-100k", ["ftrl", "gbdt"], DATASETS)
    models = out["models"]
    assert set(models) == {"ftrl", "gbdt", "gbdt+ftrl"}
    for m in models.values():
        assert 0.7 < m["auc"] < 0.8 and 0.5 < m["gauc"] < 0.8 and m["logloss"] < 0.69
    # averaging two comparable models does not rank worse than the weaker one
    assert models["gbdt+ftrl"]["auc"] >= min(models["ftrl"]["auc"], models["gbdt"]["auc"])
