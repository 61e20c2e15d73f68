"""The marketplace's raw inputs, built online (a request's candidates) and offline (logged
samples) by the same functions.

Inputs come in three kinds:
- static attributes of the user and the item, read from the feature centers on both paths;
- dynamic values (item counters, the listing's age, the user's interest in the item's line,
  category, ...), which change with every event: online they are read at request time, and the
  values of the shown items are logged in their exposure events (`Event.features`), so the
  offline path reads back exactly what the model saw instead of reconstructing it;
- context (scene, platform, hour, position, recall sources), from the request online and from
  the exposure event's own columns offline.
`derive` then computes the same cross inputs on both paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa

from tuijian.data.items import ItemFeatureCenter
from tuijian.data.users import INTEREST_FIELDS, TAG_FIELDS, StaticUsers, UserProfile
from tuijian.data.vocab import PLATFORMS
from tuijian.domain import Candidates, FloatArray, IntArray, Scene
from tuijian.rank.signals import smoothed_coec

ITEM_STATIC: tuple[str, ...] = ("item_id", "line", "category", "city", "district", "price_band",
                                "brand", "series", "publisher_id", "quality", "price")
USER_STATIC: tuple[str, ...] = ("age_band", "gender", "city", "district")
ITEM_DYNAMIC: tuple[str, ...] = ("item_exposures", "item_clicks", "item_converts",
                                  "item_expected_clicks", "item_age_h")
USER_DYNAMIC: tuple[str, ...] = ("user_clicks", "user_shown", "user_ctr",
                                  *(f"user_{f}_share" for f in INTEREST_FIELDS),
                                  *(f"user_{f}_ctr" for f in TAG_FIELDS))
# What an exposure event logs: every input that can change between serving and training.
LOGGED: tuple[str, ...] = (*ITEM_DYNAMIC, *USER_DYNAMIC)
CONTEXT: tuple[str, ...] = ("ctx_scene", "ctx_platform", "ctx_hour", "ctx_position",
                            "ctx_source", "ctx_sources")
DERIVED: tuple[str, ...] = ("item_ctr", "item_coec", "item_cvr", "same_city", "same_district",
                            "ctx_n_sources")
INPUTS: tuple[str, ...] = (*(f"item_{c}" for c in ITEM_STATIC if c != "item_id"), "item_id",
                           *(f"user_{c}" for c in USER_STATIC), *LOGGED, *CONTEXT, *DERIVED)

SCENES: tuple[str, ...] = tuple(s.value for s in Scene)
UTC_OFFSET_S = 8 * 3600  # the marketplace's local time, for the hour-of-day feature
# A fixed prior, not the live marketplace CTR: a derived input must not depend on state that
# differs between the serving process and the training job.
CTR_PRIOR, CTR_STRENGTH = 0.03, 50.0
CVR_PRIOR, CVR_STRENGTH = 0.1, 20.0
USER_CTR_STRENGTH = 20.0

Raw = dict[str, npt.NDArray[Any]]


@dataclass(slots=True)
class ServingContext:
    """What the online path needs to know about the request besides its candidates."""

    profile: UserProfile
    scene: str
    platform: str
    now: float


def online_inputs(store: ItemFeatureCenter, users: StaticUsers, ctx: ServingContext,
                  cands: Candidates, positions: IntArray | int = 0) -> Raw:
    """Raw inputs of a request's candidates. `positions` is where each will be shown: the
    real slots when logging, a fixed slot (0) when scoring, since the slot is not yet known."""
    n = len(cands)
    cols = store.gather(cands.idx, (*ITEM_STATIC, "exposures", "clicks", "converts",
                                    "expected_clicks", "refreshed_ts"))
    raw: Raw = {f"item_{c}" if c != "item_id" else c: cols[c] for c in ITEM_STATIC}
    raw.update(_user_static(users, [ctx.profile.user_id], np.zeros(n, np.int64)))
    raw["item_exposures"] = cols["exposures"].astype(np.float64)
    raw["item_clicks"] = cols["clicks"].astype(np.float64)
    raw["item_converts"] = cols["converts"].astype(np.float64)
    raw["item_expected_clicks"] = cols["expected_clicks"].astype(np.float64)
    raw["item_age_h"] = np.maximum(ctx.now - cols["refreshed_ts"].astype(np.float64), 0) / 3600
    prof = ctx.profile
    raw["user_clicks"] = np.full(n, float(len(prof.recent_clicks)))
    raw["user_shown"] = np.full(n, float(prof.n_shown))
    raw["user_ctr"] = np.full(n, _user_ctr(float(prof.n_clicked), float(prof.n_shown)))
    for f in INTEREST_FIELDS:
        raw[f"user_{f}_share"] = _interest_share(prof.interests.get(f), cols[f])
    for f in TAG_FIELDS:
        raw[f"user_{f}_ctr"] = _user_ctr(_lookup(prof.clicked_tags.get(f), cols[f]),
                                         _lookup(prof.shown_tags.get(f), cols[f]))
    raw["ctx_scene"] = np.full(n, _code(SCENES, ctx.scene))
    raw["ctx_platform"] = np.full(n, _code(PLATFORMS, ctx.platform))
    raw["ctx_hour"] = np.full(n, _hour(ctx.now))
    raw["ctx_position"] = np.broadcast_to(np.asarray(positions, np.int64), (n,)).copy()
    raw["ctx_source"] = cands.source.astype(np.int64)
    raw["ctx_sources"] = cands.sources.astype(np.int64)
    return derive(raw)


def offline_inputs(samples: pa.Table, store: ItemFeatureCenter, users: StaticUsers) -> Raw:
    """Raw inputs of joined samples (one row per exposed item, with the logged `features`).
    Rows whose exposure logged no snapshot get NaN dynamic values; `has_snapshot` marks them."""
    idx = store.index_of(samples.column("item_id").to_pylist())
    known = idx >= 0
    cols = store.gather(np.where(known, idx, 0), ITEM_STATIC)
    raw: Raw = {f"item_{c}" if c != "item_id" else c: cols[c] for c in ITEM_STATIC}
    raw["item_id"] = np.asarray(samples.column("item_id").to_numpy(), np.int64)
    user_ids = samples.column("user_id").dictionary_encode().combine_chunks()
    raw.update(_user_static(users, user_ids.dictionary.to_pylist(),
                            np.asarray(user_ids.indices.to_numpy(), np.int64)))
    logged = _logged(samples.column("features").to_pylist())
    raw.update(logged)
    raw["ctx_scene"] = _codes(samples, "scene", SCENES)
    raw["ctx_platform"] = _codes(samples, "platform", PLATFORMS)
    ts = np.asarray(samples.column("ts").to_numpy(), np.float64)
    raw["ctx_hour"] = ((ts + UTC_OFFSET_S) // 3600 % 24).astype(np.int64)
    raw["ctx_position"] = np.asarray(samples.column("position").fill_null(-1).to_numpy(),
                                     np.int64)
    from tuijian.recall.registry import SOURCE_CODE  # the registry imports the whole catalog

    names = samples.column("source").fill_null("").to_pylist()
    raw["ctx_source"] = np.array([SOURCE_CODE.get(s, -1) for s in names], np.int64)
    raw["ctx_sources"] = np.asarray(samples.column("sources").fill_null(0).to_numpy(), np.int64)
    raw["known_item"] = known
    raw["has_snapshot"] = np.isfinite(logged["item_exposures"])
    return derive(raw)


def derive(raw: Raw) -> Raw:
    """Inputs computed from other inputs, identically on both paths."""
    raw["item_ctr"] = (raw["item_clicks"] + CTR_PRIOR * CTR_STRENGTH) / (
        raw["item_exposures"] + CTR_STRENGTH)
    # clicks over the clicks its positions predict: the item's appeal without position bias
    raw["item_coec"] = smoothed_coec(raw["item_clicks"], raw["item_expected_clicks"])
    raw["item_cvr"] = (raw["item_converts"] + CVR_PRIOR * CVR_STRENGTH) / (
        raw["item_clicks"] + CVR_STRENGTH)
    raw["same_city"] = (raw["item_city"] == raw["user_city"]).astype(np.int64)
    raw["same_district"] = (raw["same_city"].astype(bool)
                            & (raw["item_district"] == raw["user_district"])).astype(np.int64)
    sources = raw["ctx_sources"].astype(np.uint64)
    raw["ctx_n_sources"] = np.bitwise_count(sources).astype(np.int64)
    return raw


def snapshot(raw: Raw, rows: Sequence[int]) -> list[dict[str, float]]:
    """The logged inputs of some rows, as exposure events carry them."""
    at = np.asarray(rows, np.int64)
    columns = [raw[name][at].astype(np.float64).tolist() for name in LOGGED]
    return [dict(zip(LOGGED, values, strict=True)) for values in zip(*columns, strict=True)]


def _interest_share(tags: dict[int, float] | None, values: npt.NDArray[Any]) -> FloatArray:
    """The share of the user's (decayed) interest mass on each item's value of one field."""
    if not tags:
        return np.zeros(len(values))
    return _lookup(tags, values) / sum(tags.values())


def _lookup(tags: dict[int, float] | dict[int, int] | None,
            values: npt.NDArray[Any]) -> FloatArray:
    """tags[value] for each value (0 where absent), vectorized over the candidates."""
    if not tags:
        return np.zeros(len(values))
    keys = np.fromiter(tags.keys(), np.int64, len(tags))
    weights = np.fromiter(tags.values(), np.float64, len(tags))
    order = np.argsort(keys)
    keys, weights = keys[order], weights[order]
    at = np.minimum(np.searchsorted(keys, values), len(keys) - 1)
    return np.where(keys[at] == values, weights[at], 0.0)


def _user_ctr(clicks: Any, shown: Any) -> Any:
    """A user's CTR (overall or on one tag value), smoothed toward the marketplace prior."""
    return (clicks + CTR_PRIOR * USER_CTR_STRENGTH) / (shown + USER_CTR_STRENGTH)


def _user_static(users: StaticUsers, user_ids: list[Any], rows: IntArray) -> Raw:
    """Static user attributes broadcast to `rows` (indexes into `user_ids`); -1 if unknown."""
    pos = users.index_of(user_ids)
    cols = users.gather(np.maximum(pos, 0), USER_STATIC)
    out: Raw = {}
    for c in USER_STATIC:
        values = np.where(pos >= 0, cols[c].astype(np.int64), -1)
        out[f"user_{c}"] = values[rows]
    return out


def _logged(features: list[Any]) -> Raw:
    """Columns of the logged snapshots; NaN where a row has none (or lacks a value)."""
    out = {name: np.full(len(features), np.nan) for name in LOGGED}
    for r, f in enumerate(features):
        if f is None:
            continue
        values = orjson.loads(f) if isinstance(f, str | bytes) else f
        for name in LOGGED:
            v = values.get(name)
            if v is not None:
                out[name][r] = v
    return out


def _code(vocab: Sequence[str], value: str | None) -> int:
    try:
        return vocab.index(value) if value is not None else -1
    except ValueError:
        return -1


def _codes(samples: pa.Table, column: str, vocab: Sequence[str]) -> IntArray:
    enc = samples.column(column).dictionary_encode().combine_chunks()
    lookup = np.array([_code(vocab, v) for v in enc.dictionary.to_pylist()] + [-1], np.int64)
    return lookup[np.asarray(enc.indices.fill_null(len(lookup) - 1).to_numpy(), np.int64)]


def _hour(now: float) -> int:
    return int((now + UTC_OFFSET_S) // 3600 % 24)
