from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tuijian.data.generator import generate_marketplace
from tuijian.data.simulator import BehaviorModel
from tuijian.data.vocab import CONVERT_SUBTYPES, LINES

POSITIONS = np.arange(10)


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> tuple[pa.Table, pa.Table]:
    out: Path = tmp_path_factory.mktemp("market")
    generate_marketplace(out, 10_000, 1_000, seed=5, now=1_700_000_000.0)
    return pq.read_table(out / "items.parquet"), pq.read_table(out / "users.parquet")


@pytest.fixture(scope="module")
def model(tables: tuple[pa.Table, pa.Table]) -> BehaviorModel:
    return BehaviorModel(*tables, seed=1)


def _good_items(tables: tuple[pa.Table, pa.Table], user: int) -> np.ndarray:
    """Items in the user's city and favourite line: what a sensible recommender would show."""
    items, users = tables
    pref = [users[f"pref_{line}"][user].as_py() for line in LINES]
    same_city = items["city"].to_numpy() == users["city"][user].as_py()
    return np.flatnonzero(same_city & (items["line"].to_numpy() == int(np.argmax(pref))))


def _users_with_choice(tables: tuple[pa.Table, pa.Table], k: int = 10) -> list[int]:
    return [u for u in range(len(tables[1])) if len(_good_items(tables, u)) >= k]


def test_local_preferred_items_beat_other_cities(
    tables: tuple[pa.Table, pa.Table], model: BehaviorModel,
) -> None:
    city = tables[0]["city"].to_numpy()
    good, far = [], []
    for user in _users_with_choice(tables)[:200]:
        idx = _good_items(tables, user)
        other = np.flatnonzero(city != tables[1]["city"][user].as_py())[:50]
        good.append(model.click_probability(user, idx, np.zeros(len(idx), np.int64)).mean())
        far.append(model.click_probability(user, other, np.zeros(len(other), np.int64)).mean())
    assert np.mean(good) > 10 * np.mean(far)


def test_list_ctr_is_calibrated(tables: tuple[pa.Table, pa.Table], model: BehaviorModel) -> None:
    rng = np.random.default_rng(0)
    sensible, random = [], []
    for user in _users_with_choice(tables)[:300]:
        shown = rng.choice(_good_items(tables, user), 10, replace=False)
        sensible.append(model.click_probability(user, shown, POSITIONS).mean())
        anything = rng.choice(model.n_items, 10, replace=False)
        random.append(model.click_probability(user, anything, POSITIONS).mean())
    assert 0.03 <= np.mean(sensible) <= 0.10
    assert np.mean(random) < 0.01


def test_click_probability_falls_with_position(
    tables: tuple[pa.Table, pa.Table], model: BehaviorModel,
) -> None:
    user = _users_with_choice(tables)[0]
    item = _good_items(tables, user)[:1]
    p = model.click_probability(user, np.repeat(item, 20), np.arange(20))
    assert (np.diff(p) <= 0).all() and p[-1] < p[0]


def test_simulate_is_deterministic_and_consistent(
    tables: tuple[pa.Table, pa.Table], model: BehaviorModel,
) -> None:
    rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)
    clicks = converts = 0
    for user in _users_with_choice(tables)[:100]:
        shown = _good_items(tables, user)[:10]
        a = model.simulate(user, shown, POSITIONS, rng_a)
        b = model.simulate(user, shown, POSITIONS, rng_b)
        np.testing.assert_array_equal(a.clicked, b.clicked)
        np.testing.assert_array_equal(a.dwell_s, b.dwell_s)
        assert a.subtype == b.subtype
        np.testing.assert_array_equal(a.p_click, model.click_probability(user, shown, POSITIONS))
        assert (a.dwell_s[a.clicked] > 0).all() and (a.dwell_s[~a.clicked] == 0).all()
        assert not (a.converted & ~a.clicked).any()
        assert [s is not None for s in a.subtype] == a.converted.tolist()
        assert {s for s in a.subtype if s is not None} <= set(CONVERT_SUBTYPES)
        assert ((a.p_convert >= 0.02) & (a.p_convert <= 0.3)).all()
        clicks += int(a.clicked.sum())
        converts += int(a.converted.sum())
    assert clicks > 0 and converts > 0


def test_empirical_click_rate_matches_p_click(
    tables: tuple[pa.Table, pa.Table], model: BehaviorModel,
) -> None:
    user = _users_with_choice(tables)[0]
    shown = _good_items(tables, user)[:10]
    rng = np.random.default_rng(3)
    runs = 4_000
    clicked = np.zeros(len(shown))
    for _ in range(runs):
        outcome = model.simulate(user, shown, POSITIONS, rng)
        clicked += outcome.clicked
    p = outcome.p_click
    sd = np.sqrt(p * (1 - p) / runs)
    assert (np.abs(clicked / runs - p) < 4 * sd + 1e-3).all()


def test_added_items_continue_dense_indexes(tables: tuple[pa.Table, pa.Table]) -> None:
    items, users = tables
    grown = BehaviorModel(items.slice(0, 6_000), users, seed=1)
    grown.add_items(items.slice(6_000))
    whole = BehaviorModel(items, users, seed=1)
    assert grown.n_items == whole.n_items == len(items)
    shown = np.arange(5_990, 6_010)
    positions = np.arange(20)
    for user in range(20):
        np.testing.assert_array_equal(grown.click_probability(user, shown, positions),
                                      whole.click_probability(user, shown, positions))
