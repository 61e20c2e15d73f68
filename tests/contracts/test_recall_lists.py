"""Batch recall lists, in memory and published to Redis (real server): the same neighbours and
user lists come back, one walk is one round trip, and a new version replaces the old whole."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import redis

from tuijian.data.items import ColumnarItemStore
from tuijian.data.redis_backend import Breaker, RedisTarget
from tuijian.recall.cf import UserLists
from tuijian.recall.lists_redis import RedisLists
from tuijian.recall.neighbors import NeighborTable, walk

ITEMS = ColumnarItemStore(pa.table({
    "item_id": list(range(100, 110)), "line": [0] * 10, "category": [1] * 10, "city": [1] * 10,
    "district": [2] * 10, "title": [f"t{i}" for i in range(10)]}))


def _client(url: str) -> tuple[redis.Redis, str]:
    target = RedisTarget.parse(url)
    return target.connect(), target.prefix


def test_neighbour_tables_read_the_same_from_redis(redis_url: str) -> None:
    table = NeighborTable.from_table(pa.table({
        "item_id": [100, 100, 101, 105, 105, 105], "neighbor_id": [101, 102, 100, 109, 100, 103],
        "score": [0.9, 0.4, 0.8, 0.3, 0.7, 0.5]}), ITEMS)
    client, prefix = _client(redis_url)
    assert RedisLists.publish(client, prefix, "item_cf", "v1", table.items()) == 3
    remote = RedisLists(client, prefix, "item_cf", "v1", Breaker("test"))
    for i in range(10):
        want, got = table.neighbors(i), remote.neighbors(i)
        assert got[0].tolist() == want[0].tolist() and got[1].tolist() == want[1].tolist()
    anchors = [5, 0, 1, 7]
    assert [w[0].tolist() for w in remote.neighbors_many(anchors)] == \
        [w[0].tolist() for w in table.neighbors_many(anchors)]
    assert [x.tolist() for x in walk(remote, anchors, 0.8, 5)] == \
        [x.tolist() for x in walk(table, anchors, 0.8, 5)]


def test_user_lists_and_a_version_switch(redis_url: str) -> None:
    lists = UserLists.from_table(pa.table({
        "user_id": ["a", "a", "b"], "item_id": [103, 104, 100], "score": [0.2, 0.6, 1.0]}),
        ITEMS)
    client, prefix = _client(redis_url)
    RedisLists.publish(client, prefix, "user_cf", "v1", lists.items())
    assert RedisLists.current(client, prefix, "user_cf") == "v1"
    v1 = RedisLists(client, prefix, "user_cf", "v1", Breaker("test"))
    for user in ("a", "b", "nobody"):
        want, got = lists.get(user), v1.get(user)
        assert got[0].tolist() == want[0].tolist() and got[1].tolist() == want[1].tolist()
    newer = UserLists({"b": (np.array([7]), np.array([0.5]))})
    RedisLists.publish(client, prefix, "user_cf", "v2", newer.items())
    assert RedisLists.current(client, prefix, "user_cf") == "v2"
    assert v1.get("a")[0].size == 0  # the old version's keys are gone, not mixed in
    v2 = RedisLists(client, prefix, "user_cf", "v2", Breaker("test"))
    assert v2.get("b")[0].tolist() == [7] and v2.get("a")[0].size == 0


def test_a_dead_server_gives_empty_lists() -> None:
    dead = RedisLists(redis.Redis(port=1), "tj", "item_cf", "v1", Breaker("dead"))
    assert dead.neighbors(3)[0].size == 0
    assert [n.size for n, _ in dead.neighbors_many([1, 2])] == [0, 0]
