"""The UserProfileStore contract: the embedded store and Redis (real server) build the same
profile from the same operations, and a replica reading Redis sees what another process wrote."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from tuijian.data.redis_backend import Breaker
from tuijian.data.users import (
    TAG_FIELDS,
    MemoryProfileStore,
    UserProfile,
    UserProfileStore,
    UserTable,
)
from tuijian.data.users_redis import RedisProfileStore

USERS = pa.table({"user_id": ["u1", "u2"], "city": [3, 4], "district": [30, 40],
                  "lat": [31.2, None], "lon": [121.4, None]})


def _stores(url: str, shown_memory: int = 4) -> list[UserProfileStore]:
    return [MemoryProfileStore(UserTable(USERS), shown_memory),
            RedisProfileStore(url, UserTable(USERS), shown_memory, Breaker("test"))]


def _tags(values: list[int]) -> dict[str, np.ndarray]:
    return {name: np.array(values) for name in TAG_FIELDS}


def _apply(store: UserProfileStore) -> None:
    store.record_exposures("u1", np.array([1, 2, 3]))
    store.record_exposures("u1", np.array([4, 2, 5]))  # 2 again: moves to the newest end
    store.count_exposures("u1", _tags([7, 7, 8]))
    store.record_click("u1", 2, {"line": 1, "category": 7, "district": 30, "brand": -1,
                                 "series": -1, "price_band": 2})
    store.record_click("u1", 5, {"line": 1, "category": 8, "district": 30, "brand": -1,
                                 "series": -1, "price_band": 3})
    store.record_click("u2", 9, {"line": 0, "category": 7})


def _plain(p: UserProfile) -> dict[str, object]:
    return {"user_id": p.user_id, "known": p.known, "city": p.city, "district": p.district,
            "lat": None if p.lat is None else round(p.lat, 3), "lon": p.lon,
            "recent_clicks": list(p.recent_clicks), "shown": list(p.shown),
            "n_shown": p.n_shown, "n_clicked": p.n_clicked,
            "shown_tags": p.shown_tags, "clicked_tags": p.clicked_tags,
            "interests": {k: {v: round(w, 9) for v, w in d.items()}
                          for k, d in p.interests.items()}}


def test_both_backends_build_the_same_profiles(redis_url: str) -> None:
    memory, remote = _stores(redis_url)
    for store in (memory, remote):
        _apply(store)
    for user in ("u1", "u2", "nobody"):
        assert _plain(remote.get(user)) == _plain(memory.get(user))
    got = remote.get("u1")
    assert list(got.shown) == [3, 4, 2, 5]  # newest 4 kept, 2 moved to the end once
    assert got.recent_clicks[-1] == 5 and got.n_clicked == 2 and got.n_shown == 3
    # the older click's interest decayed once by the newer one's
    assert got.interests["category"] == pytest.approx({7: 0.95, 8: 1.0})
    assert sorted(remote.active_users()) == ["u1", "u2"]


def test_another_process_sees_the_writes_and_clear_forgets_them(redis_url: str) -> None:
    writer, reader = (RedisProfileStore(redis_url, UserTable(USERS), 10, Breaker(n))
                      for n in ("writer", "reader"))
    writer.record_click("u2", 11, {"line": 2})
    assert list(reader.get("u2").recent_clicks) == [11]
    assert reader.get("u2").city == 4 and reader.get("u2").lat is None
    reader.clear_behavior()
    assert list(writer.get("u2").recent_clicks) == [] and writer.active_users() == []


def test_a_dead_server_degrades_to_static_profiles_and_drops_writes() -> None:
    failures: list[str] = []
    dead = RedisProfileStore("redis://127.0.0.1:1/0", UserTable(USERS), 10,
                             Breaker("dead", on_failure=failures.append))
    dead.record_click("u1", 3, {"line": 1})  # no exception: the event log keeps the event
    prof = dead.get("u1")
    assert prof.known and prof.city == 3 and list(prof.recent_clicks) == []
    assert failures == ["dead"]  # the breaker opened once; the read was skipped, not retried
