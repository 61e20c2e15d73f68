"""A replica's mirror of the shared item store (real Redis): it follows every writer, and
the races between allocation, write and announcement never make its indexes diverge."""

from __future__ import annotations

import math
import threading

import numpy as np
import pyarrow as pa
import pytest
import redis

from tuijian.data.items import ColumnarItemStore
from tuijian.data.mirror import Mirror
from tuijian.data.redis_backend import Breaker, RedisTarget, WriteBehind
from tuijian.data.redis_columns import RedisItemStore


def _items(ids: list[int], city: int = 1) -> pa.Table:
    n = len(ids)
    return pa.table({"item_id": ids, "line": [0] * n, "category": [2] * n, "city": [city] * n,
                     "district": [5] * n, "title": [f"t{i}" for i in ids]})


def _pair(url: str) -> tuple[Mirror, Mirror]:
    first, seeded = Mirror.attach(RedisItemStore(url), ColumnarItemStore(_items([1, 2, 3])),
                                  Breaker("a"))
    second, again = Mirror.attach(RedisItemStore(url), ColumnarItemStore(_items([9])),
                                  Breaker("b"))
    assert seeded and not again
    return first, second


def test_a_row_read_between_allocation_and_write_is_copied_inactive(redis_url: str) -> None:
    a, b = _pair(redis_url)
    remote = a.remote
    (idx,) = remote._alloc(keys=[remote.ns + "ids", remote.ns + "keys", remote.ns + "n"],
                           args=["77"])  # a writer that allocated and has not written yet
    changed = b.sync()
    assert changed.tolist() == [idx] and b.position(77) == idx
    assert b.gather(np.array([idx]), ("active",))["active"][0] == 0  # never recalled half-made
    a.upsert(_items([77], city=4))  # the write and its announcement
    b.sync()
    assert b.position(77) == idx and len(b) == len(a) == 4
    got = b.gather(np.array([idx]), ("active", "city"))
    assert got["active"][0] == 1 and got["city"][0] == 4


def test_a_replica_behind_a_trimmed_feed_reloads_every_row(redis_url: str) -> None:
    a, b = _pair(redis_url)
    a.upsert(_items([2], city=8))
    a.remote.r.xtrim(a.feed, maxlen=0)  # the announcement is gone before b read it
    changed = b.sync()
    assert changed.tolist() == [0, 1, 2]  # b cannot know what changed: it reloads all
    assert b.gather(np.array([1]), ("city",))["city"][0] == 8
    assert b.sync().tolist() == []  # caught up: no reload on every later sync
    a.upsert(_items([3], city=9))
    assert b.sync().tolist() == [2]


def test_counters_follow_their_announcements_and_are_kept_when_redis_dies(
        redis_url: str) -> None:
    a, b = _pair(redis_url)
    a.add_counts(np.array([0, 0, 2]), "clicks")
    assert b.gather(np.array([0, 2]), ("clicks",))["clicks"].tolist() == [0.0, 0.0]  # local
    assert b.sync().tolist() == []  # no row changed, only counters
    assert b.gather(np.array([0, 2]), ("clicks",))["clicks"].tolist() == [2.0, 1.0]
    a.add_counts(np.array([1]), "clicks")
    a.remote.r.xtrim(a.remote.counts_feed, maxlen=0)  # announced, then trimmed unread
    b.sync()
    assert b.gather(np.array([0, 1, 2]), ("clicks",))["clicks"].tolist() == [2.0, 1.0, 1.0]
    a.set_counts("clicks", np.array([5.0, 6.0, 7.0]))  # a whole column rewritten
    b.sync()
    assert b.gather(np.array([0, 1, 2]), ("clicks",))["clicks"].tolist() == [5.0, 6.0, 7.0]
    a.add_counts(np.array([0]), "clicks")
    b.remote = RedisItemStore("redis://127.0.0.1:1/0")  # its server is gone
    assert b.sync().tolist() == [] and b.breaker.open
    assert b.gather(np.array([0, 2]), ("clicks",))["clicks"].tolist() == [5.0, 7.0]


def test_the_breaker_degrades_around_outages_not_bugs() -> None:
    breaker = Breaker("test")

    def bug() -> int:
        raise redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind")

    def down() -> int:
        raise redis.ConnectionError("refused")

    with pytest.raises(redis.ResponseError):
        breaker.call(bug, lambda: 0)
    assert not breaker.open
    assert breaker.call(down, lambda: 7) == 7 and breaker.open


def test_write_behind_keeps_order_batches_and_survives_bad_writes(redis_url: str,
                                                                  caplog: pytest.LogCaptureFixture
                                                                  ) -> None:
    """Queued writes share round trips but apply in submission order; a write that fails to
    queue its commands, or that the server refuses, costs only itself."""
    target = RedisTarget.parse(redis_url)
    client = target.connect()
    key, wrong = f"{target.prefix}:order", f"{target.prefix}:string"
    client.set(wrong, "not a list")
    writes = WriteBehind(Breaker("test"), client, batch=7)
    trips: list[int] = []
    pipeline = client.pipeline
    client.pipeline = lambda **kw: trips.append(1) or pipeline(**kw)  # type: ignore[method-assign]
    gate = threading.Event()
    writes.submit(lambda pipe: gate.wait(5))  # holds the thread so the rest queue up
    for i in range(40):
        writes.submit(lambda pipe, i=i: pipe.rpush(key, i))
        if i == 10:
            writes.submit(lambda pipe: 1 / 0)
        if i == 20:
            writes.submit(lambda pipe: pipe.rpush(wrong, "x"))
    before = client.info("commandstats").get("cmdstat_rpush", {}).get("calls", 0)
    gate.set()
    writes.flush()
    assert [int(v) for v in client.lrange(key, 0, -1)] == list(range(40))
    assert client.info("commandstats")["cmdstat_rpush"]["calls"] - before == 41
    assert len(trips) == 1 + math.ceil(42 / 7)  # the gate alone, then full batches
    assert "could not be queued" in caplog.text and "WRONGTYPE" in caplog.text
    assert not writes.breaker.open
    writes.close()
