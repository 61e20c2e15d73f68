"""Event-driven sources evaluated through the serving code, on planted co-click structure."""

import numpy as np
import pytest

from tuijian.eval.streams import recommend_streams

DAY = 86_400


@pytest.mark.parametrize("name", ["association", "item_cf_realtime"])
def test_users_get_what_others_clicked_next(name: str) -> None:
    # 30 users click item 0 then item 1 a minute later; 30 others click 2 then 3
    users, items, ts = [], [], []
    for u in range(60):
        first = 0 if u < 30 else 2
        users += [u, u]
        items += [first, first + 1]
        ts += [1_000_000 + u * DAY, 1_000_000 + u * DAY + 60]
    users += [60, 61]  # two newcomers, each with one click
    items += [0, 2]
    ts += [1_000_000 + 70 * DAY, 1_000_000 + 70 * DAY]
    recs, build_s = recommend_streams(name, np.array(users), np.array(items), np.array(ts),
                                      5, np.array([60, 61]), 3)
    assert recs[0, 0] == 1 and recs[1, 0] == 3
    assert 0 not in recs[0].tolist() and build_s >= 0
