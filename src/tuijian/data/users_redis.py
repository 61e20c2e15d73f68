"""Users' behavior state in Redis: one profile per user, shared by every replica and the worker.

The embedded store keeps behavior in process memory, which is right for one process but not
for stateless API replicas: the replica that serves a list must know what the ingest worker
learnt from the user's last click. Layout under `PREFIX:profiles:`:

    s:USER   sorted set  shown item indexes, scored by when (the newest `shown_memory` kept)
    c:USER   list        recent clicked item indexes, oldest first (the last RECENT_CLICKS)
    h:USER   hash        n_shown, n_clicked, `st|TAG|VALUE` / `ct|TAG|VALUE` per-tag counts
    i:USER   hash        `TAG|VALUE` -> decayed interest weight
    active   sorted set  user id -> last write time (the most recent MAX_PROFILES kept)

Every change is one round trip (a pipeline, or one script for a click's interest decay, so
two processes folding the same user's events never lose an update); a read is one pipeline.
Keys expire after PROFILE_TTL_S without activity, as the embedded store forgets idle users.
Static attributes (city, location) come from the users' feature center, as in memory.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from typing import Any

import pyarrow as pa
import redis

from tuijian.data.redis_backend import (
    Breaker,
    RedisTarget,
    Submit,
    unlink_matching,
    write_through,
)
from tuijian.data.users import (
    INTEREST_DECAY,
    MAX_PROFILES,
    RECENT_CLICKS,
    TAG_FIELDS,
    StaticUsers,
    UserProfile,
    static_profile,
)
from tuijian.domain import IntArray

PROFILE_TTL_S = 30 * 86_400

# KEYS: clicks list, counts hash, interests hash. ARGV: item index, recent-clicks cap, decay,
# ttl, then the number of clicked-tag fields and those fields, then the number of interest
# (tag, field) pairs and those pairs. Decay multiplies each touched tag's weights in place.
_CLICK = """
local ttl = tonumber(ARGV[4])
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
redis.call('HINCRBY', KEYS[2], 'n_clicked', 1)
local i = 5
local n = tonumber(ARGV[i]); i = i + 1
for k = 1, n do redis.call('HINCRBY', KEYS[2], 'ct|' .. ARGV[i], 1); i = i + 1 end
n = tonumber(ARGV[i]); i = i + 1
if n > 0 then
  local decay = tonumber(ARGV[3])
  local all = redis.call('HGETALL', KEYS[3])
  for k = 1, n do
    local prefix = ARGV[i] .. '|'
    for j = 1, #all, 2 do
      if string.sub(all[j], 1, #prefix) == prefix then
        redis.call('HSET', KEYS[3], all[j], string.format('%.17g', tonumber(all[j + 1]) * decay))
      end
    end
    redis.call('HINCRBYFLOAT', KEYS[3], ARGV[i + 1], 1)
    i = i + 2
  end
end
for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, ttl) end
return 1
"""


class RedisProfileStore:
    """`UserProfileStore` over Redis; see the module docstring for the layout."""

    def __init__(self, url: str, table: StaticUsers, shown_memory: int, breaker: Breaker,
                 client: redis.Redis | None = None, submit: Submit | None = None) -> None:
        """`submit` runs each write (default: now, skipped while Redis is down; a
        `WriteBehind` takes them off the request path)."""
        target = RedisTarget.parse(url)
        self.r = client or target.connect()
        self.ns = f"{target.prefix}:profiles:"
        self._table = table
        self._shown_memory = shown_memory
        self.breaker = breaker
        self.submit = submit or write_through(breaker, self.r)
        self._click = self.r.register_script(_CLICK)

    @property
    def table(self) -> StaticUsers:
        return self._table

    @property
    def shown_memory(self) -> int:
        return self._shown_memory

    # -- reads --------------------------------------------------------------------------------

    def get(self, user_id: str) -> UserProfile:
        """The profile; static attributes only while Redis is down (degraded, not failing)."""
        prof = static_profile(self._table, user_id)
        return self.breaker.call(lambda: self._read(prof), lambda: prof)

    peek = get  # reading never creates state here

    def active_users(self) -> list[str]:
        got: list[bytes] = self.r.zrevrange(self.ns + "active", 0, -1)  # type: ignore[assignment]
        return [u.decode() for u in got]

    def _read(self, prof: UserProfile) -> UserProfile:
        u = prof.user_id
        pipe = self.r.pipeline(transaction=False)
        pipe.zrange(f"{self.ns}s:{u}", 0, -1)
        pipe.lrange(f"{self.ns}c:{u}", 0, -1)
        pipe.hgetall(f"{self.ns}h:{u}")
        pipe.hgetall(f"{self.ns}i:{u}")
        shown, clicks, counts, interests = pipe.execute()
        prof.shown = OrderedDict.fromkeys(map(int, shown))
        prof.recent_clicks.extend(map(int, clicks))
        for field, value in counts.items():
            kind, _, rest = field.decode().partition("|")
            if not rest:
                setattr(prof, kind, int(value))
                continue
            tag, _, v = rest.partition("|")
            bucket = prof.shown_tags if kind == "st" else prof.clicked_tags
            bucket.setdefault(tag, {})[int(v)] = int(value)
        for field, value in interests.items():
            tag, _, v = field.decode().partition("|")
            prof.interests.setdefault(tag, {})[int(v)] = float(value)
        return prof

    # -- writes (each one round trip, through `submit`; the event log keeps what is skipped) --

    def record_exposures(self, user_id: str, idx: IntArray) -> None:
        if self._shown_memory == 0 or not len(idx):
            return
        key = f"{self.ns}s:{user_id}"
        base = time.time() * 1e6  # microseconds: a later exposure always scores higher

        def write(pipe: redis.client.Pipeline) -> None:
            pipe.zadd(key, {str(i): base + j for j, i in enumerate(idx.tolist())})
            pipe.zremrangebyrank(key, 0, -self._shown_memory - 1)
            pipe.expire(key, PROFILE_TTL_S)
            self._touch(pipe, user_id)

        self.submit(write)

    def count_exposures(self, user_id: str, tags: dict[str, IntArray]) -> None:
        key = f"{self.ns}h:{user_id}"

        def write(pipe: redis.client.Pipeline) -> None:
            for name in TAG_FIELDS:
                for v, c in Counter(tags[name].tolist()).items():
                    pipe.hincrby(key, f"st|{name}|{v}", c)
            pipe.hincrby(key, "n_shown", len(tags[TAG_FIELDS[0]]))
            pipe.expire(key, PROFILE_TTL_S)

        self.submit(write)

    def record_click(self, user_id: str, idx: int, tags: dict[str, int]) -> None:
        clicked = [f"{n}|{tags[n]}" for n in TAG_FIELDS if n in tags]
        interest = [x for n, v in tags.items() if v >= 0 for x in (n, f"{n}|{v}")]

        def write(pipe: redis.client.Pipeline) -> None:
            self._click(keys=[f"{self.ns}c:{user_id}", f"{self.ns}h:{user_id}",
                              f"{self.ns}i:{user_id}"],
                        args=[idx, RECENT_CLICKS, INTEREST_DECAY, PROFILE_TTL_S,
                              len(clicked), *clicked, len(interest) // 2, *interest],
                        client=pipe)
            self._touch(pipe, user_id)

        self.submit(write)

    def upsert(self, table: pa.Table) -> IntArray:
        """Static attributes go to the users' feature center; behavior keys are untouched."""
        return self._table.upsert(table)

    def clear_behavior(self) -> None:
        """Forget every user's behavior (before a replay from the event log)."""
        unlink_matching(self.r, self.ns + "*")

    def _touch(self, pipe: Any, user_id: str) -> None:
        pipe.zadd(self.ns + "active", {user_id: time.time()})
        pipe.zremrangebyrank(self.ns + "active", 0, -MAX_PROFILES - 1)
