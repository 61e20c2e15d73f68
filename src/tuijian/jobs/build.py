"""Build job: recompute dynamic item features and user profiles from the event log.

The real-time processors keep these current while the service runs; this job is what makes
them correct after a restart (the event log is the source of truth) and what a scheduler runs
to repair any drift.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import numpy as np

from tuijian.data.ingest import ClickProcessor
from tuijian.data.items import ItemFeatureCenter
from tuijian.data.users import INTEREST_FIELDS, TAG_FIELDS, UserProfileStore
from tuijian.display.creatives import CreativeChooser
from tuijian.domain import FloatArray
from tuijian.rank.signals import (
    DEFAULT_PRIOR_CTR,
    MAX_POSITION,
    default_position_ctr,
    position_ctr,
)


def restore_counters(store: ItemFeatureCenter, events_sql: str) -> FloatArray:
    """Recompute every item counter from the log; returns the position-CTR curve it used.

    Exposures, clicks and conversions count once per list (exposure id), the rule the
    real-time folds apply; expected clicks sum the position curve over each item's exposures.
    """
    con = duckdb.connect()
    rows = con.sql(f"""
        SELECT item_id, coalesce(position, 0) AS position,
               count(DISTINCT CASE WHEN type = 'exposure' THEN exposure_id END) AS exposures,
               count(DISTINCT CASE WHEN type = 'click' THEN exposure_id END) AS clicks,
               count(DISTINCT CASE WHEN type = 'convert' THEN exposure_id END) AS converts
        FROM {events_sql} GROUP BY item_id, coalesce(position, 0)""").fetchnumpy()
    pos = np.minimum(np.asarray(rows["position"], np.int64), MAX_POSITION - 1)
    counts = {n: np.asarray(rows[n], np.float64) for n in ("exposures", "clicks", "converts")}
    by_pos = {n: np.bincount(pos, counts[n], MAX_POSITION).astype(np.float64)
              for n in ("exposures", "clicks")}
    total_exp = by_pos["exposures"].sum()
    prior = by_pos["clicks"].sum() / total_exp if total_exp >= 1000 else DEFAULT_PRIOR_CTR
    curve = position_ctr(by_pos["clicks"], by_pos["exposures"], default_position_ctr(prior))
    counts["expected_clicks"] = counts["exposures"] * curve[pos]
    idx = store.index_of(rows["item_id"].tolist())
    ok = idx >= 0
    for name, values in counts.items():
        column = np.zeros(len(store), np.float64)
        np.add.at(column, idx[ok], values[ok])
        store.set_counts(name, column)
    return curve


def restore_creatives(chooser: CreativeChooser, events_sql: str, curve: FloatArray) -> int:
    """Replay the log's per-creative exposures (position-weighted, as served) and clicks
    into the creative chooser; returns the creatives restored."""
    con = duckdb.connect()
    rows = con.sql(f"""
        SELECT item_id, creative,
               list(coalesce(position, 0)) FILTER (type = 'exposure') AS positions,
               count(*) FILTER (type = 'click') AS clicks
        FROM {events_sql} WHERE creative IS NOT NULL GROUP BY item_id, creative""").fetchall()
    top = float(curve[0]) if len(curve) and curve[0] > 0 else 1.0
    for item_id, creative, positions, clicks in rows:
        pos = np.minimum(np.asarray(positions or [], np.int64), len(curve) - 1)
        if len(pos):
            chooser.record_exposure(int(item_id), creative, float(curve[pos].sum()) / top)
        for _ in range(int(clicks)):
            chooser.record_click(int(item_id), creative)
    return len(rows)


def restore_profiles(
    store: ItemFeatureCenter, profiles: UserProfileStore, events_sql: str, since_ts: float,
    processors: Sequence[ClickProcessor] = (),
) -> int:
    """Replay recent clicks (interests, history, real-time processors) and exposures (the
    shown filter), in order; each click once per (list, item), as ingestion counts them."""
    profiles.clear_behavior()
    con = duckdb.connect()
    clicks = con.sql(
        f"SELECT user_id, item_id, min(ts) AS ts FROM {events_sql} "
        f"WHERE type = 'click' AND ts >= {since_ts} "
        f"GROUP BY user_id, item_id, exposure_id ORDER BY ts"
    ).fetchnumpy()
    idx = store.index_of(clicks["item_id"].tolist())
    tags = store.gather(np.maximum(idx, 0), INTEREST_FIELDS)
    users = clicks["user_id"].tolist()
    times = clicks["ts"].tolist()
    for j in np.flatnonzero(idx >= 0).tolist():
        profiles.record_click(users[j], int(idx[j]),
                              {k: int(v[j]) for k, v in tags.items()})
        for processor in processors:
            processor.observe_click(users[j], int(idx[j]), times[j])
    limit = profiles.shown_memory
    shown = con.sql(
        f"""SELECT user_id, list(item_id ORDER BY ts) AS items FROM (
              SELECT user_id, item_id, ts, row_number() OVER (
                PARTITION BY user_id ORDER BY ts DESC) AS r
              FROM {events_sql} WHERE type = 'exposure' AND ts >= {since_ts})
            WHERE r <= {limit} GROUP BY user_id"""
    ).fetchall()
    for user_id, items in shown:
        pos = store.index_of(items)
        profiles.record_exposures(user_id, pos[pos >= 0])
    counted = con.sql(
        f"""SELECT user_id, list(item_id) AS items FROM {events_sql}
            WHERE type = 'exposure' AND ts >= {since_ts} GROUP BY user_id""").fetchall()
    for user_id, items in counted:
        pos = store.index_of(items)
        profiles.count_exposures(user_id, store.gather(pos[pos >= 0], TAG_FIELDS))
    return len(users)
