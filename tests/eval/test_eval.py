"""Offline evaluation: metrics against hand computations, the split, the loaders, one run."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp

from tuijian.eval.datasets import load_interactions, resolve
from tuijian.eval.metrics import (
    catalog_coverage,
    map_at_k,
    ndcg_at_k,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
)
from tuijian.eval.runner import evaluate
from tuijian.eval.split import stratified_split

from ..conftest import DATASETS


def _relevant(rows: list[list[int]], n_items: int = 10) -> sp.csr_matrix:
    m = sp.lil_matrix((len(rows), n_items))
    for user, items in enumerate(rows):
        m[user, items] = 1.0
    return sp.csr_matrix(m)


# User 0 hits at ranks 2 and 4 out of 3 relevant; user 1 hits at rank 1 out of 1 relevant and
# has a padded list; user 2 has nothing relevant and is not averaged over.
RECS = np.array([[1, 2, 3, 4], [5, -1, -1, -1], [1, 2, 3, 4]])
RELEVANT = _relevant([[2, 4, 9], [5], []])


def test_precision_and_recall_by_hand() -> None:
    assert precision_at_k(RECS, RELEVANT, 4) == pytest.approx((2 / 4 + 1 / 4) / 2)
    assert recall_at_k(RECS, RELEVANT, 4) == pytest.approx((2 / 3 + 1) / 2)
    assert precision_at_k(RECS, RELEVANT, 2) == pytest.approx((1 / 2 + 1 / 2) / 2)


def test_ndcg_by_hand() -> None:
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)  # min(k=4, 3 relevant) ideal hits
    assert ndcg_at_k(RECS, RELEVANT, 4) == pytest.approx((dcg / idcg + 1.0) / 2)


def test_map_at_k_normalises_by_min_k_relevant() -> None:
    assert map_at_k(RECS, RELEVANT, 4) == pytest.approx(((1 / 2 + 2 / 4) / 3 + 1.0) / 2)
    # Six relevant, all four slots hit: map_at_k divides by min(4, 6), so a perfect list is 1.
    perfect = _relevant([[1, 2, 3, 4, 7, 8]])
    assert map_at_k(RECS[:1], perfect, 4) == pytest.approx(1.0)
    assert ndcg_at_k(RECS[:1], perfect, 4) == pytest.approx(1.0)


def test_metrics_with_no_hits_and_coverage() -> None:
    misses = np.array([[0, 1], [0, 1]])
    assert ranking_metrics(misses, _relevant([[5], [6]]), 2) == {
        "ndcg@2": 0.0,
        "precision@2": 0.0,
        "recall@2": 0.0,
        "map@2": 0.0,
    }
    assert catalog_coverage(np.array([[1, 2], [2, -1]]), 4) == 0.5
    with pytest.raises(ValueError, match="recommendation rows"):
        ndcg_at_k(RECS[:2], RELEVANT, 4)


def _reference_split(users: np.ndarray, ratio: float, seed: int) -> np.ndarray:
    """Microsoft Recommenders' recipe spelled out row by row, to check the vectorised one."""
    noise = np.random.RandomState(seed).rand(users.size)
    train = np.zeros(users.size, dtype=bool)
    for user in np.unique(users):
        rows = sorted(np.flatnonzero(users == user), key=lambda r: noise[r])
        for rank, row in enumerate(rows, start=1):
            train[row] = rank / len(rows) <= ratio
    return train


def test_split_is_stratified_per_user_and_deterministic() -> None:
    sizes = {10: 1, 11: 2, 12: 3, 13: 4, 14: 20, 15: 21}
    users = np.random.default_rng(0).permutation(np.repeat(list(sizes), list(sizes.values())))
    train = stratified_split(users, 0.75, seed=42)
    for user, size in sizes.items():
        assert train[users == user].sum() == math.floor(0.75 * size)
    np.testing.assert_array_equal(train, stratified_split(users, 0.75, seed=42))
    np.testing.assert_array_equal(train, _reference_split(users, 0.75, 42))
    assert not np.array_equal(train, stratified_split(users, 0.75, seed=7))
    with pytest.raises(ValueError, match="ratio"):
        stratified_split(users, 1.0)


def test_loaders_parse_movielens_layouts(tmp_path: Path) -> None:
    (tmp_path / "ml-1m").mkdir()
    (tmp_path / "ml-1m" / "ratings.dat").write_text("1::1193::5::978300760\n2::661::3::978302109\n")
    for name in ("ml-latest", "ml-latest-small"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "ratings.csv").write_text(
            "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n7,1029,3.0,1260759179\n"
        )
    ml1m = load_interactions("ml-1m", tmp_path)
    assert ml1m.column_names == ["user", "item", "rating", "timestamp"]
    assert ml1m.to_pylist()[0] == {"user": 1, "item": 1193, "rating": 5.0, "timestamp": 978300760}
    latest = load_interactions("ml-latest-small", tmp_path)
    assert latest["item"].to_pylist() == [31, 1029] and latest["rating"].to_pylist() == [2.5, 3.0]
    assert load_interactions("ml-latest", tmp_path).num_rows == 2
    # data_dir may also be the unpacked archive itself.
    assert load_interactions("ml-1m", tmp_path / "ml-1m").num_rows == 2


def test_loaders_parse_generic_files(tmp_path: Path) -> None:
    (tmp_path / "clicks.csv").write_text("user,item,extra\nu1,a,x\nu2,b,y\n")
    clicks = load_interactions("clicks.csv", tmp_path)
    assert clicks["user"].to_pylist() == ["u1", "u2"]
    assert clicks["rating"].to_pylist() == [1.0, 1.0]
    assert clicks["timestamp"].to_pylist() == [0, 0]
    table = pa.table({"item": [3, 4], "user": [1, 2], "rating": [4, 5], "timestamp": [9, 8]})
    pq.write_table(table, tmp_path / "events.parquet")
    events = load_interactions(str(tmp_path / "events.parquet"))
    assert events.to_pylist()[1] == {"user": 2, "item": 4, "rating": 5.0, "timestamp": 8}


def test_loader_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"ml-1m: no ratings\.dat"):
        load_interactions("ml-1m", tmp_path)
    with pytest.raises(ValueError, match="unknown dataset 'ml-99k'"):
        resolve("ml-99k", tmp_path)
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        resolve("missing.csv", tmp_path)
    (tmp_path / "bad.csv").write_text("who,what\n1,2\n")
    with pytest.raises(ValueError, match=r"no column\(s\) \['item', 'user'\]"):
        load_interactions("bad.csv", tmp_path)


def test_ml100k_loads() -> None:
    table = load_interactions("ml-100k", DATASETS)
    assert table.num_rows == 100_000
    assert len(set(table["user"].to_pylist())) == 943
    assert len(set(table["item"].to_pylist())) == 1682
    assert table.slice(0, 1).to_pylist()[0] == {
        "user": 196,
        "item": 242,
        "rating": 3.0,
        "timestamp": 881250949,
    }


def test_evaluate_end_to_end_on_ml100k() -> None:
    seen: list[tuple[str, float]] = []
    started = time.perf_counter()
    report = evaluate(
        "ml-100k",
        DATASETS,
        k=10,
        models=["popularity", "item_cf"],
        seed=42,
        progress=lambda message, done: seen.append((message, done)),
    )
    assert time.perf_counter() - started < 15
    protocol = report["protocol"]
    assert (protocol["users"], protocol["items"], protocol["test_users"]) == (943, 1682, 943)
    assert protocol["train_interactions"] + protocol["test_interactions"] == 100_000
    popularity, item_cf = report["models"]["popularity"], report["models"]["item_cf"]
    assert 0.2 < popularity["ndcg@10"] < 0.3
    assert 0.38 < item_cf["ndcg@10"] < 0.5
    assert item_cf["precision@10"] > popularity["precision@10"]
    assert 0 < popularity["coverage"] < item_cf["coverage"] <= 1
    assert set(item_cf["params"]) >= {"similarity", "n_neighbors"}
    fractions = [done for _, done in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    with pytest.raises(KeyError, match="unknown model"):
        evaluate("ml-100k", DATASETS, models=["nope"])
