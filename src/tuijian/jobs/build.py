"""Build job: recompute dynamic item features and user profiles from the event log.

The real-time processors keep these current while the service runs; this job is what makes
them correct after a restart (the event log is the source of truth) and what a scheduler runs
to repair any drift.
"""

from __future__ import annotations

import duckdb
import numpy as np

from tuijian.data.items import ItemFeatureCenter
from tuijian.data.users import INTEREST_FIELDS, MemoryProfileStore


def restore_counters(store: ItemFeatureCenter, events_sql: str) -> dict[str, int]:
    """Exposures, clicks and conversions per item, each counted once per list (exposure id),
    the same rule the real-time folds apply."""
    sql = f"""
        SELECT item_id,
               count(DISTINCT CASE WHEN type = 'exposure' THEN exposure_id END) AS exposures,
               count(DISTINCT CASE WHEN type = 'click' THEN exposure_id END) AS clicks,
               count(DISTINCT CASE WHEN type = 'convert' THEN exposure_id END) AS converts
        FROM {events_sql} GROUP BY item_id
    """
    cols = duckdb.connect().sql(sql).fetchnumpy()
    idx = store.index_of(cols["item_id"].tolist())
    ok = idx >= 0
    totals = {}
    for name in ("exposures", "clicks", "converts"):
        values = np.zeros(len(store), np.float64)
        values[idx[ok]] = np.asarray(cols[name], np.float64)[ok]
        store.set_counts(name, values)
        totals[name] = int(values.sum())
    return totals


def restore_profiles(
    store: ItemFeatureCenter, profiles: MemoryProfileStore, events_sql: str, since_ts: float
) -> int:
    """Replay recent clicks (interests, history) and exposures (the shown filter), in order."""
    profiles.clear_behavior()
    con = duckdb.connect()
    clicks = con.sql(
        f"SELECT user_id, item_id FROM {events_sql} "
        f"WHERE type = 'click' AND ts >= {since_ts} ORDER BY ts"
    ).fetchnumpy()
    idx = store.index_of(clicks["item_id"].tolist())
    tags = store.gather(np.maximum(idx, 0), INTEREST_FIELDS)
    users = clicks["user_id"].tolist()
    for j in np.flatnonzero(idx >= 0).tolist():
        profiles.record_click(users[j], int(idx[j]),
                              {k: int(v[j]) for k, v in tags.items()})
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
    return len(users)
