"""The behavior matrix batch models learn from: users × items, actions weighted by intent.

A click says less than a favourite, a chat or a call (in that order), so each action adds its
weight (ACTION_WEIGHTS) to the (user, item) cell, decayed by age so last month's taste fades.
Ids become dense row/column indexes here; artifacts store the ids, never the indexes, so the
service maps them onto its own item indexes at load time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from tuijian.domain import IntArray
from tuijian.jobs.engine import Engine

ACTION_WEIGHTS: dict[str, float] = {"click": 1.0, "favorite": 2.0, "share": 2.0, "chat": 3.0,
                                    "call": 4.0}


@dataclass(slots=True)
class BehaviorMatrix:
    X: sp.csr_matrix  # users × items
    user_ids: list[str]
    item_ids: IntArray

    def user_row(self) -> dict[str, int]:
        return {u: i for i, u in enumerate(self.user_ids)}


def behavior_matrix(engine: Engine, now: float, window_days: float = 60.0,
                    half_life_days: float = 30.0) -> BehaviorMatrix:
    weights = " ".join(f"WHEN '{k}' THEN {v}" for k, v in ACTION_WEIGHTS.items())
    sql = f"""
        SELECT user_id, item_id,
               sum((CASE CASE WHEN type = 'convert' THEN subtype ELSE type END {weights}
                    ELSE 0 END) * pow(2.0, -({now} - ts) / {half_life_days * 86_400.0})) AS w
        FROM events
        WHERE type IN ('click', 'convert') AND ts >= {now - window_days * 86_400.0}
          AND ts <= {now}
        GROUP BY user_id, item_id
    """
    cols = engine.table(f"SELECT * FROM ({sql}) AS cells WHERE w > 0")
    users, rows = np.unique(np.asarray(cols.column("user_id").to_pylist(), dtype=object),
                            return_inverse=True)
    items, columns = np.unique(cols.column("item_id").to_numpy(), return_inverse=True)
    X = sp.csr_matrix((cols.column("w").to_numpy().astype(np.float64), (rows, columns)),
                      shape=(len(users), len(items)))
    return BehaviorMatrix(X, [str(u) for u in users], items.astype(np.int64))
