"""How simulated users react to a shown list: the ground truth behind demo traffic.

The click model multiplies independent factors (interest in the line, locality, price fit,
brand and category fit, position, quality, latent appeal) so each one can be reasoned about
and calibrated alone. Its constants are set so a sensible list (the user's city and top line)
draws a 3-10% CTR over ten slots and a random nationwide list under 1%, which is the gap a
recommender should be able to close.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from tuijian.data.vocab import CONVERT_SUBTYPES, LINES
from tuijian.domain import FloatArray, IntArray

BoolArray = npt.NDArray[np.bool_]

MAX_P_CLICK = 0.6
_BASE = 0.18
_OTHER_CITY = 0.03
_SAME_DISTRICT = 1.5
_PRICE_DECAY = 0.35
_BRAND_MATCH = 1.6
_CATEGORY_MATCH = 1.5
_POSITION_EXPONENT = 0.7
# Chance of each CONVERT_SUBTYPES entry per line: jobs and services are phoned about,
# goods are chatted over or saved for later.
_SUBTYPE_P = np.array([
    [0.45, 0.35, 0.15, 0.05],  # house_rent
    [0.35, 0.45, 0.15, 0.05],  # house_sale
    [0.40, 0.40, 0.15, 0.05],  # car
    [0.40, 0.55, 0.05, 0.00],  # job
    [0.35, 0.60, 0.05, 0.00],  # service
    [0.55, 0.05, 0.35, 0.05],  # goods
])
_SUBTYPE_CDF = np.cumsum(_SUBTYPE_P, axis=1)
_SUBTYPE_CDF[:, -1] = 1.0
_SUBTYPE_NAMES = np.array([*CONVERT_SUBTYPES, None], dtype=object)
_ITEM_CODES = ("line", "category", "city", "district", "price_band", "brand")
_MIX = (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB)
_MASK64 = (1 << 64) - 1


@dataclass(slots=True)
class Outcome:
    """What one user did with one shown list; every array is aligned with the shown items."""

    p_click: FloatArray
    p_convert: FloatArray  # P(convert | click)
    clicked: BoolArray
    converted: BoolArray
    subtype: list[str | None]  # set only where converted
    dwell_s: FloatArray  # 0 where not clicked


def _ints(table: pa.Table, name: str) -> IntArray:
    return np.asarray(table.column(name).to_numpy(), dtype=np.int64)


def _floats(table: pa.Table, name: str) -> FloatArray:
    return np.asarray(table.column(name).to_numpy(), dtype=np.float64)


class BehaviorModel:
    """Click, conversion and dwell probabilities for (user, shown items) pairs.

    Only the handful of numpy columns the model reads are kept, so a million-item marketplace
    costs tens of megabytes here rather than the whole Arrow table.
    """

    def __init__(self, items: pa.Table, users: pa.Table, seed: int) -> None:
        self._seed = seed & _MASK64
        self._items = {name: np.empty(0, np.int64) for name in _ITEM_CODES}
        self._quality = np.empty(0, np.float64)
        self._appeal = np.empty(0, np.float64)
        self._user_city = _ints(users, "city")
        self._user_district = _ints(users, "district")
        self._user_pref = np.stack([_floats(users, f"pref_{line}") for line in LINES], axis=1)
        self._user_category = _ints(users, "category_pref")
        self._user_price_band = _ints(users, "price_band_pref")
        self._user_brand = _ints(users, "brand_pref")
        self._user_propensity = _floats(users, "click_propensity")
        self.add_items(items)

    @property
    def n_items(self) -> int:
        return len(self._quality)

    def add_items(self, items: pa.Table) -> None:
        """Append newly published items; they get dense indexes after the current ones."""
        for name in _ITEM_CODES:
            self._items[name] = np.concatenate([self._items[name], _ints(items, name)])
        self._quality = np.concatenate([self._quality, _floats(items, "quality")])
        # A square root tames appeal's heavy tail so one viral item cannot saturate p_click.
        appeal = np.clip(np.sqrt(np.maximum(_floats(items, "appeal"), 0.0)), 0.1, 4.0)
        self._appeal = np.concatenate([self._appeal, appeal])

    def _taste(self, user_idx: int, item_idx: IntArray) -> FloatArray:
        """A stable per-(user, item) whim in [0.6, 1.4] that no feature can explain.

        Hashing instead of drawing keeps it identical every time the pair meets, so the best
        achievable ranking is well defined but not recoverable from features alone.
        """
        key = (self._seed ^ (user_idx * _MIX[0])) & _MASK64
        h = item_idx.astype(np.uint64) * np.uint64(_MIX[0]) ^ np.uint64(key)
        h = (h ^ (h >> np.uint64(30))) * np.uint64(_MIX[1])
        h = (h ^ (h >> np.uint64(27))) * np.uint64(_MIX[2])
        h ^= h >> np.uint64(31)
        return 0.6 + 0.8 * ((h >> np.uint64(11)).astype(np.float64) / float(1 << 53))

    def _match(self, user_idx: int, item_idx: IntArray) -> tuple[FloatArray, FloatArray]:
        """Position-free click factor and a [0, 1] fit score that also drives conversion."""
        it = self._items
        item_idx = np.asarray(item_idx, np.int64)
        line = it["line"][item_idx]
        same_city = it["city"][item_idx] == self._user_city[user_idx]
        same_district = same_city & (it["district"][item_idx] == self._user_district[user_idx])
        band_gap = np.abs(it["price_band"][item_idx] - self._user_price_band[user_idx])
        brand = self._user_brand[user_idx]
        brand_hit = (it["brand"][item_idx] == brand) & (brand >= 0)
        category_hit = it["category"][item_idx] == self._user_category[user_idx]
        line_pref = self._user_pref[user_idx, line]
        factor = (
            _BASE * self._user_propensity[user_idx]
            * (0.05 + 1.5 * line_pref)
            * np.where(same_city, 1.0, _OTHER_CITY)
            * np.where(same_district, _SAME_DISTRICT, 1.0)
            * np.exp(-_PRICE_DECAY * band_gap)
            * np.where(brand_hit, _BRAND_MATCH, 1.0)
            * np.where(category_hit, _CATEGORY_MATCH, 1.0)
            * (0.5 + self._quality[item_idx])
            * self._appeal[item_idx]
            * self._taste(user_idx, item_idx)
        )
        fit = (np.minimum(line_pref, 1.0) + same_district + (band_gap == 0) + category_hit) / 4
        return factor, fit.astype(np.float64)

    def click_probability(self, user_idx: int, item_idx: IntArray,
                          positions: IntArray) -> FloatArray:
        """True P(click) of each shown item at its (0-based) position."""
        factor, _ = self._match(user_idx, item_idx)
        return self._with_position(factor, positions)

    @staticmethod
    def _with_position(factor: FloatArray, positions: IntArray) -> FloatArray:
        bias = (1.0 + np.asarray(positions, np.float64)) ** -_POSITION_EXPONENT
        return np.clip(factor * bias, 0.0, MAX_P_CLICK)

    def simulate(self, user_idx: int, item_idx: IntArray, positions: IntArray,
                 rng: np.random.Generator) -> Outcome:
        """Draw one user's reaction to a list; the same rng state gives the same outcome.

        All random draws are made for every slot, clicked or not, so the rng advances by the
        same amount whatever happens and later draws stay comparable across strategies.
        """
        factor, fit = self._match(user_idx, item_idx)
        p_click = self._with_position(factor, positions)
        p_convert = np.clip(0.04 + 0.12 * self._quality[item_idx] + 0.10 * fit, 0.02, 0.3)
        n = len(item_idx)
        u_click, u_convert, u_subtype = rng.random(n), rng.random(n), rng.random(n)
        z_dwell = rng.standard_normal(n)
        clicked = u_click < p_click
        converted = clicked & (u_convert < p_convert)
        line = self._items["line"][item_idx]
        subtype = (u_subtype[:, None] >= _SUBTYPE_CDF[line]).sum(axis=1)
        subtype = np.where(converted, subtype, len(CONVERT_SUBTYPES))
        # Median dwell grows from 15 s for a poor fit to ~40 s for a perfect one.
        dwell = np.exp(np.log(15.0 * (1.0 + 1.7 * fit)) + 0.8 * z_dwell)
        dwell = np.where(converted, 1.5 * dwell, dwell)
        return Outcome(
            p_click=p_click,
            p_convert=p_convert,
            clicked=clicked,
            converted=converted,
            subtype=_SUBTYPE_NAMES[subtype].tolist(),
            dwell_s=np.where(clicked, dwell, 0.0),
        )
