"""The two-tower model on planted structure, and the ANN index it serves from.

Users fall in groups that each favour their own block of items, and everyone also holds a
couple of blockbusters. A tower that learned anything puts a user's block first; one whose user
side really reads the history does so for a history it never saw at fit time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from tuijian.domain import IntArray
from tuijian.recall.ann import ItemIndex
from tuijian.recall.models.ease import EASE
from tuijian.recall.models.two_tower import TwoTower

GROUPS, BLOCK, BLOCKBUSTERS, USERS = 3, 20, 4, 150
ITEMS = GROUPS * BLOCK + BLOCKBUSTERS
K = 5
PARAMS: dict[str, Any] = {
    "factors": 16,
    "hidden": 32,
    "epochs": 30,
    "batch_size": 128,
    "learning_rate": 0.01,
    "random_state": 3,
    "num_threads": 1,
}


def _planted() -> sp.csr_matrix:
    """Each user: 10 of their group's 20 block items and 2 of the blockbusters."""
    rng = np.random.default_rng(11)
    rows, cols = [], []
    for user in range(USERS):
        own = rng.choice(BLOCK, size=10, replace=False) + (user % GROUPS) * BLOCK
        hits = rng.choice(BLOCKBUSTERS, size=2, replace=False) + GROUPS * BLOCK
        cols += [*own, *hits]
        rows += [user] * 12
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(USERS, ITEMS))


TRAIN = _planted()
ALL_USERS = np.arange(USERS, dtype=np.int64)


def _block(items: IntArray) -> IntArray:
    """Block of each item; blockbusters are block GROUPS."""
    return np.minimum(items // BLOCK, GROUPS)


@pytest.fixture(scope="module")
def model() -> TwoTower:
    return TwoTower(**PARAMS).fit(TRAIN)


def test_fit_returns_self_and_learns_unit_item_vectors() -> None:
    fresh = TwoTower(**PARAMS)
    assert fresh.fit(TRAIN) is fresh
    assert fresh.get_params() | PARAMS == fresh.get_params()
    assert all(attr.endswith("_") for attr in fresh._state)
    assert fresh.item_vectors_.dtype == np.float32
    assert fresh.item_vectors_.shape == (ITEMS, PARAMS["factors"])
    np.testing.assert_allclose(np.linalg.norm(fresh.item_vectors_, axis=1), 1.0, atol=1e-5)


def test_recommendations_come_from_the_users_block_and_skip_seen(model: TwoTower) -> None:
    ids, scores = model.recommend(ALL_USERS, TRAIN, K)
    assert ids.shape == scores.shape == (USERS, K)
    assert ids.dtype == np.int64 and scores.dtype == np.float64
    assert np.all(np.diff(scores, axis=1) <= 1e-6)
    for user in range(USERS):
        assert not np.isin(ids[user], TRAIN[user].indices).any()
        assert np.unique(ids[user]).size == K
    own = _block(ids) == (ALL_USERS % GROUPS)[:, None]
    assert own.mean() >= 0.9
    seen, _ = model.recommend(ALL_USERS[:3], TRAIN[:3], K, exclude_seen=False)
    assert np.isin(seen[0], TRAIN[0].indices).any()


def test_short_lists_are_padded(model: TwoTower) -> None:
    history = sp.csr_matrix(np.r_[np.ones(ITEMS - 2), 0.0, 0.0][None, :])
    ids, scores = model.recommend(np.array([0]), history, K)
    assert sorted(ids[0, :2]) == [ITEMS - 2, ITEMS - 1]
    assert (ids[0, 2:] == -1).all() and np.isneginf(scores[0, 2:]).all()


def test_unseen_user_is_embedded_from_a_fresh_history(model: TwoTower) -> None:
    """A user index never fitted, holding five items of block 2, gets block 2.

    Blockbusters may come first: every training user held some, so the tower rightly expects
    them of a history without any; every other item must come from block 2.
    """
    history = np.arange(5, dtype=np.int64) + 2 * BLOCK
    vector = model.user_vector(history)
    assert vector.shape == (PARAMS["factors"],) and vector.dtype == np.float32
    row = sp.csr_matrix((np.ones(5), ([0] * 5, history)), shape=(1, ITEMS))
    np.testing.assert_allclose(vector, model.user_vectors(row)[0], atol=1e-6)
    ids, _ = model.recommend(np.array([10_000]), row, BLOCKBUSTERS + 3)
    assert not np.isin(ids[0], history).any()
    blocks = _block(ids[0])
    assert (blocks[blocks < GROUPS] == 2).all() and (blocks == 2).sum() >= 3
    weighted = model.user_vector(history, np.array([5.0, 5.0, 5.0, 5.0, 5.0]))
    np.testing.assert_allclose(weighted, vector, atol=1e-6)
    with pytest.raises(ValueError, match="weights"):
        model.user_vector(history, np.ones(2))


def test_similar_items_share_a_block(model: TwoTower) -> None:
    items = np.array([0, BLOCK, 2 * BLOCK])
    ids, scores = model.similar_items(items, K)
    assert ids.shape == scores.shape == (3, K)
    assert not (ids == items[:, None]).any()
    assert (_block(ids) == _block(items)[:, None]).mean() >= 0.8


def test_same_seed_same_model_and_callers_torch_state_untouched(model: TwoTower) -> None:
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    again = TwoTower(**PARAMS).fit(TRAIN)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads
    np.testing.assert_array_equal(again.item_vectors_, model.item_vectors_)
    other = TwoTower(**PARAMS | {"random_state": 4}).fit(TRAIN)
    assert not np.array_equal(other.item_vectors_, model.item_vectors_)


def test_save_load_round_trip(model: TwoTower, tmp_path: Path) -> None:
    model.save(tmp_path / "tt")
    loaded = TwoTower.load(tmp_path / "tt")
    assert loaded.get_params() == model.get_params()
    before, after = model.recommend(ALL_USERS, TRAIN, K), loaded.recommend(ALL_USERS, TRAIN, K)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])
    history = np.array([1, 2, 3], dtype=np.int64)
    np.testing.assert_array_equal(model.user_vector(history), loaded.user_vector(history))
    with pytest.raises(ValueError, match="holds a"):
        EASE.load(tmp_path / "tt")
    EASE(l2=10.0).fit(TRAIN).save(tmp_path / "ease")
    with pytest.raises(ValueError, match="holds a"):
        TwoTower.load(tmp_path / "ease")


def test_item_features_feed_the_item_tower(tmp_path: Path) -> None:
    features = np.eye(GROUPS + 1, dtype=np.float32)[_block(np.arange(ITEMS))]
    fitted = TwoTower(**PARAMS | {"epochs": 10}).fit(TRAIN, item_features=features)
    assert fitted.towers_.item_features is not None
    # the features change what the tower computes: other features, other item vectors
    shuffled = features[np.random.default_rng(1).permutation(ITEMS)]
    other = TwoTower(**PARAMS | {"epochs": 10}).fit(TRAIN, item_features=shuffled)
    assert not np.allclose(other.item_vectors_, fitted.item_vectors_, atol=1e-3)
    fitted.save(tmp_path / "tt")
    loaded = TwoTower.load(tmp_path / "tt")
    np.testing.assert_array_equal(loaded.item_vectors_, fitted.item_vectors_)
    with pytest.raises(ValueError, match="item_features"):
        TwoTower(**PARAMS).fit(TRAIN, item_features=features[:-1])


def test_ann_exact_and_hnsw_agree_and_pad_short_lists(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(2000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[:25]
    exact = ItemIndex.build(vectors)
    hnsw = ItemIndex.build(vectors, exact_below=100)
    assert exact.exact and not hnsw.exact
    itself = sp.csr_matrix((np.ones(25), (np.arange(25), np.arange(25))), shape=(25, 2000))
    e_ids, _ = exact.search(queries, 10, itself)
    h_ids, _ = hnsw.search(queries, 10, itself)
    assert not (e_ids == np.arange(25)[:, None]).any()
    assert (e_ids[:, :3] == h_ids[:, :3]).mean() >= 0.95
    hnsw.save(tmp_path / "h.faiss")
    np.testing.assert_array_equal(ItemIndex.load(tmp_path / "h.faiss").search(queries, 10)[0],
                                  hnsw.search(queries, 10)[0])
    small = ItemIndex.build(vectors[:4])
    ids, scores = small.search(vectors[:1], 5, sp.csr_matrix(np.array([[1.0, 0, 0, 0]])))
    assert sorted(ids[0, :3]) == [1, 2, 3]
    assert (ids[0, 3:] == -1).all() and np.isneginf(scores[0, 3:]).all()
