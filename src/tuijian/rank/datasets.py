"""Public datasets as CTR tasks: raw feature columns, binary labels and a split by time.

The marketplace's own logs are the ranking models' real training data; a public dataset gives
them a fixed, reproducible benchmark that `tuijian eval rank` runs every model kind on. Each
loader returns an *unfitted* feature config with its rows, so the evaluation fits the config on
the training rows only, exactly as the training job does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tuijian.domain import FloatArray, IntArray
from tuijian.eval.datasets import load_interactions, resolve
from tuijian.rank.features.spec import FeatureConfig, load_features

Raw = dict[str, npt.NDArray[Any]]

ML100K_FEATURES = Path(__file__).parent / "features" / "ml100k.yaml"
# u.item's 19 genre flags, in file order (u.genre), as input-name suffixes
GENRES: tuple[str, ...] = (
    "unknown", "action", "adventure", "animation", "childrens", "comedy", "crime",
    "documentary", "drama", "fantasy", "film_noir", "horror", "musical", "mystery", "romance",
    "sci_fi", "thriller", "war", "western")
AGE_BANDS: tuple[float, ...] = (18, 25, 35, 45, 50, 56)  # MovieLens 1M's age groups
# History rates are shrunk towards an uninformative prior, a constant rather than a rate
# measured on the data, so no feature depends on rows later than its own.
PRIOR, STRENGTH = 0.5, 10.0


@dataclass(slots=True)
class CTRDataset:
    """Rows in time order, split into train (earlier) and test (later). `*_groups` are user
    ids, for GAUC."""

    name: str
    config: FeatureConfig
    train_raw: Raw
    test_raw: Raw
    train_y: FloatArray
    test_y: FloatArray
    train_groups: IntArray
    test_groups: IntArray
    train_ts: IntArray
    test_ts: IntArray

    def valid_tail(self, fraction: float = 0.1) -> tuple[IntArray, IntArray]:
        """Train row indices split into (fit, valid), valid being the latest `fraction` of
        train: an early-stopping set that, like the test set, lies after what is fitted."""
        n = len(self.train_y)
        cut = n - max(1, round(n * fraction))
        return np.arange(cut, dtype=np.int64), np.arange(cut, n, dtype=np.int64)


def earlier_sums(group: IntArray, ts: IntArray, values: FloatArray) -> FloatArray:
    """For every row, the sum of `values` (shape (n,) or (n, k)) over the rows of its group
    with a strictly smaller timestamp: a point-in-time aggregate with no leakage.

    One stable sort by (group, ts) and one cumulative sum: a row reads the running total at
    the start of its run of equal (group, ts), so rows of the same second never see each other,
    minus the total at the start of its group. Exact for integer-valued `values` (counts)."""
    order = np.lexsort((ts, group))
    g, t, v = group[order], ts[order], np.asarray(values, np.float64)[order]
    before = np.cumsum(v, axis=0) - v
    new_group = np.ones(len(g), bool)
    new_group[1:] = g[1:] != g[:-1]
    new_run = new_group.copy()
    new_run[1:] |= t[1:] != t[:-1]
    group_start = np.flatnonzero(new_group)[np.cumsum(new_group) - 1]
    run_start = np.flatnonzero(new_run)[np.cumsum(new_run) - 1]
    out = np.empty_like(before)
    out[order] = before[run_start] - before[group_start]
    return out


def smoothed(positives: FloatArray, count: FloatArray,
             prior: float | FloatArray = PRIOR) -> FloatArray:
    return np.asarray((positives + STRENGTH * prior) / (count + STRENGTH), np.float64)


def _read_users(path: Path) -> Raw:
    """u.user as columns indexed by user id: age, gender (M 0, F 1), occupation code, and the
    zip code's first digit (-1 for the few non-US codes)."""
    occupations = (path.parent / "u.occupation").read_text().split()
    rows = [line.split("|") for line in path.read_text().splitlines() if line]
    n = max(int(r[0]) for r in rows) + 1
    cols: Raw = {"user_age": np.full(n, np.nan), "user_gender": np.full(n, -1),
                 "user_occupation": np.full(n, -1), "user_zip1": np.full(n, -1)}
    for uid, age, gender, occupation, zipcode in rows:
        u = int(uid)
        cols["user_age"][u] = float(age)
        cols["user_gender"][u] = {"M": 0, "F": 1}.get(gender, -1)
        cols["user_occupation"][u] = occupations.index(occupation)
        cols["user_zip1"][u] = int(zipcode[0]) if zipcode[:1].isdigit() else -1
    cols["user_age_band"] = np.searchsorted(AGE_BANDS, cols["user_age"], side="right")
    return cols


def _read_items(path: Path) -> tuple[Raw, FloatArray]:
    """u.item (latin-1) as columns indexed by movie id: release year (NaN when the date is
    missing), first genre code, and the (n, 19) genre flags."""
    rows = [line.split("|") for line in path.read_text(encoding="latin-1").splitlines() if line]
    n = max(int(r[0]) for r in rows) + 1
    year = np.full(n, np.nan)
    flags = np.zeros((n, len(GENRES)))
    for r in rows:
        i = int(r[0])
        if r[2]:
            year[i] = float(r[2][-4:])  # "01-Jan-1995"
        flags[i] = [float(f) for f in r[5:5 + len(GENRES)]]
    first = np.where(flags.any(axis=1), flags.argmax(axis=1), -1)
    return {"item_year": year, "item_first_genre": first}, flags


def _history(user: IntArray, item: IntArray, ts: IntArray, y: FloatArray,
             genres: FloatArray) -> Raw:
    """Point-in-time history inputs of every row, from strictly earlier ratings only."""
    ones = np.ones(len(y))
    user_n, user_pos = earlier_sums(user, ts, np.column_stack([ones, y])).T
    item_n, item_pos = earlier_sums(item, ts, np.column_stack([ones, y])).T
    user_rate = smoothed(user_pos, user_n)
    # the user's positive rate over earlier movies sharing a genre with this one (each earlier
    # movie counted once per shared genre), shrunk towards the user's overall rate
    per_genre = earlier_sums(user, ts, np.hstack([genres, genres * y[:, None]]))
    k = genres.shape[1]
    genre_n = (per_genre[:, :k] * genres).sum(axis=1)
    genre_pos = (per_genre[:, k:] * genres).sum(axis=1)
    return {"user_n_prev": user_n, "user_pos_rate": user_rate,
            "item_n_prev": item_n, "item_pos_rate": smoothed(item_pos, item_n),
            "user_genre_rate": smoothed(genre_pos, genre_n, user_rate)}


def load_ml100k_ctr(data_dir: Path, test_fraction: float = 0.2) -> CTRDataset:
    """MovieLens 100K as CTR: label rating >= 4, user and movie attributes and point-in-time
    history as features, and a global time split (the latest `test_fraction` of ratings, ties
    in time kept in file order, are the test set).

    `data_dir` is the unpacked ml-100k directory or its parent. History inputs of test rows
    include earlier test rows, as a serving system would know them."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    base = resolve("ml-100k", data_dir).parent
    table = load_interactions("ml-100k", base)
    order = np.argsort(table["timestamp"].to_numpy(), kind="stable")
    user = table["user"].to_numpy()[order].astype(np.int64)
    item = table["item"].to_numpy()[order].astype(np.int64)
    ts = table["timestamp"].to_numpy()[order].astype(np.int64)
    y = (table["rating"].to_numpy()[order] >= 4).astype(np.float64)

    users = _read_users(base / "u.user")
    item_cols, flags = _read_items(base / "u.item")
    genres = flags[item]
    raw: Raw = {"user_id": user, "item_id": item}
    raw |= {name: col[user] for name, col in users.items()}
    raw |= {name: col[item] for name, col in item_cols.items()}
    raw |= {f"item_genre_{g}": genres[:, j] for j, g in enumerate(GENRES)}
    raw |= _history(user, item, ts, y, genres)

    config = load_features(ML100K_FEATURES)
    config.check_inputs(raw.keys())
    n = len(y)
    cut = n - round(n * test_fraction)
    if not 0 < cut < n:
        raise ValueError(f"test_fraction {test_fraction} leaves an empty train or test set")
    return CTRDataset(
        name="ml-100k", config=config,
        train_raw={k: v[:cut] for k, v in raw.items()},
        test_raw={k: v[cut:] for k, v in raw.items()},
        train_y=y[:cut], test_y=y[cut:], train_groups=user[:cut], test_groups=user[cut:],
        train_ts=ts[:cut], test_ts=ts[cut:])


# Dataset name → loader(data_dir); `tuijian eval rank` runs every model kind on each.
CTR_DATASETS: dict[str, Callable[[Path], CTRDataset]] = {"ml-100k": load_ml100k_ctr}
