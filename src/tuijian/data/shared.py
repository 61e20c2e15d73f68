"""The shared feature centers a replica serves from when `features_url` names a Redis.

Items and users' static attributes are mirrored locally (`mirror.Mirror`); behavior profiles
(`users_redis.RedisProfileStore`) and real-time item-CF (`item_cf_realtime_redis`) are read
from Redis per request, as are batch recall lists (`lists_redis`); counters both ways (see
`mirror`). One breaker covers them all,
because they share one server: when it stops answering every request degrades at once (stale
counters, static-only profiles) and recovers at once when it returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import redis

from tuijian.data.items import ColumnarItemStore
from tuijian.data.mirror import Mirror
from tuijian.data.redis_backend import Breaker, RedisTarget, WriteBehind
from tuijian.data.redis_columns import RedisItemStore, RedisUserTable
from tuijian.data.users import UserTable
from tuijian.data.users_redis import RedisProfileStore
from tuijian.domain import IntArray
from tuijian.recall.item_cf_realtime_redis import RedisRealtimeItemCF
from tuijian.recall.lists_redis import Listed, RedisLists

# seeding, copying and following move up to CHUNK rows per call, off the request path
BULK_TIMEOUT_S = 30.0


@dataclass(slots=True)
class SharedFeatures:
    items: Mirror
    users: Mirror
    profiles: RedisProfileStore
    item_cf: RedisRealtimeItemCF
    breaker: Breaker
    # counter increments and profile updates, off the request path (see WriteBehind)
    writes: WriteBehind
    client: redis.Redis  # the request path's connection (short timeouts)
    bulk: redis.Redis  # seeding, following, publishing (long timeouts)
    prefix: str
    # whether this process found Redis empty and seeded it from its data directory: it then
    # also restores counters and profiles from its event log, as the embedded default does
    seeded: bool

    @classmethod
    def open(cls, url: str, items: ColumnarItemStore, users: UserTable, shown_memory: int,
             on_failure: Callable[[str], None] = lambda name: None,
             timeout_s: float = 0.25) -> SharedFeatures:
        """Attach to the feature centers at `url`; `items` / `users` are this data directory's
        rows, used only to seed an empty Redis. `timeout_s` bounds what a dead server costs a
        request (once per breaker cooldown)."""
        target = RedisTarget.parse(url)
        client, bulk = target.connect(timeout_s), target.connect(BULK_TIMEOUT_S)
        breaker = Breaker(f"features ({target.redacted()})", on_failure=on_failure)
        item_mirror, seeded = Mirror.attach(RedisItemStore(url, bulk), items, breaker,
                                            RedisItemStore(url, client))
        user_mirror, _ = Mirror.attach(RedisUserTable(url, bulk), users, breaker)
        profiles = RedisProfileStore(url, user_mirror, shown_memory, breaker, client)
        writes = WriteBehind(breaker, client)
        item_cf = RedisRealtimeItemCF(url, breaker, client=client)
        if seeded:
            item_cf.clear()  # left over from an earlier deployment: the replay rebuilds it
        return cls(item_mirror, user_mirror, profiles, item_cf, breaker, writes, client, bulk,
                   target.prefix, seeded)

    def sync(self) -> IntArray:
        """Follow changes made by any replica; returns the item indexes that changed."""
        self.users.sync()
        return self.items.sync()

    def publish_lists(self, name: str, version: str, lists: Listed) -> int:
        """Make a job's lists the ones every replica recalls from (once per version: every
        process that loads the job's files from a shared volume would otherwise rewrite
        them)."""
        if RedisLists.current(self.bulk, self.prefix, name) == version:
            return 0
        return RedisLists.publish(self.bulk, self.prefix, name, version, lists.items())

    def lists(self, name: str, serving: str | None) -> RedisLists | None:
        """The published version of `name` when it differs from `serving`, else None."""
        version = self.breaker.call(lambda: RedisLists.current(self.client, self.prefix, name),
                                    lambda: None)
        if version is None or version == serving:
            return None
        return RedisLists(self.client, self.prefix, name, version, self.breaker)

    def defer_writes(self) -> None:
        """From now on, counter and profile writes leave the caller's path (call once the
        start-up restore, which must not drop any, is done)."""
        self.items.submit = self.profiles.submit = self.writes.submit

    def flush(self) -> None:
        """Wait for the pending writes (before reading them elsewhere, or closing)."""
        self.writes.flush()

    def close(self) -> None:
        self.writes.close()

    def ping(self) -> None:
        self.items.remote.r.ping()
