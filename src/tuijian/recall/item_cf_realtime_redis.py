"""Real-time item-CF in Redis: the co-click weights every replica reads and the worker writes.

The same algorithm as `item_cf_realtime.RealtimeItemCF` (read its docstring), for scale-out:
the ingest worker folds clicks, API replicas recall from the result. Each click is one script
(the decay and both bumps are read-modify-writes that must not interleave with another
worker's), each anchor's neighbours one script that also divides by the click masses.
Layout under `PREFIX:icf:`:

    row:IDX    hash   neighbour index -> decayed co-clicks; `@m` the item's decayed click mass,
                      `@t` when it was last decayed
    r:USER     list   the user's recent clicks as `IDX:TS`, oldest first

Keys expire after TTL_S untouched, which bounds memory as the in-process LRU does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import redis

from tuijian.data.redis_backend import Breaker, RedisTarget, unlink_matching
from tuijian.domain import FloatArray, IntArray

TTL_S = 30 * 86_400

# ARGV: namespace, item, ts, history, window_s, max_neighbors, half_life_s, ttl
_OBSERVE = """
local ns, idx, ts = ARGV[1], ARGV[2], tonumber(ARGV[3])
local history, window = tonumber(ARGV[4]), tonumber(ARGV[5])
local maxn, half_life, ttl = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local function fmt(x) return string.format('%.17g', x) end
local function decay(i)
  local key = ns .. 'row:' .. i
  local last = tonumber(redis.call('HGET', key, '@t'))
  if not last or ts > last then redis.call('HSET', key, '@t', fmt(ts)) end
  if last and ts > last then
    local f = 2 ^ (-(ts - last) / half_life)
    local all = redis.call('HGETALL', key)
    for j = 1, #all, 2 do
      if all[j] ~= '@t' then redis.call('HSET', key, all[j], fmt(tonumber(all[j + 1]) * f)) end
    end
  end
  redis.call('EXPIRE', key, ttl)
end
local function bump(i, j)
  local key = ns .. 'row:' .. i
  redis.call('HINCRBYFLOAT', key, j, 1)
  local all = redis.call('HGETALL', key)
  local row = {}
  for k = 1, #all, 2 do
    if string.sub(all[k], 1, 1) ~= '@' then row[#row + 1] = {all[k], tonumber(all[k + 1])} end
  end
  if #row > 2 * maxn then  -- keep memory bounded: drop the weakest half
    table.sort(row, function(a, b) return a[2] > b[2] end)
    for k = maxn + 1, #row do redis.call('HDEL', key, row[k][1]) end
  end
end
local recent = redis.call('LRANGE', KEYS[1], 0, -1)
decay(idx)
redis.call('HINCRBYFLOAT', ns .. 'row:' .. idx, '@m', 1)
for _, e in ipairs(recent) do
  local sep = string.find(e, ':', 1, true)
  local other, other_ts = string.sub(e, 1, sep - 1), tonumber(string.sub(e, sep + 1))
  if other ~= idx and math.abs(ts - other_ts) <= window then
    decay(other)
    bump(idx, other)
    bump(other, idx)
  end
end
redis.call('RPUSH', KEYS[1], idx .. ':' .. fmt(ts))
redis.call('LTRIM', KEYS[1], -history, -1)
redis.call('EXPIRE', KEYS[1], ttl)
return 1
"""
# ARGV: namespace, item. Returns neighbour, score, neighbour, score, ...
_NEIGHBORS = """
local ns, idx = ARGV[1], ARGV[2]
local all = redis.call('HGETALL', ns .. 'row:' .. idx)
local mass = 1
for k = 1, #all, 2 do if all[k] == '@m' then mass = tonumber(all[k + 1]) end end
local out = {}
for k = 1, #all, 2 do
  if string.sub(all[k], 1, 1) ~= '@' then
    local other = tonumber(redis.call('HGET', ns .. 'row:' .. all[k], '@m')) or 1
    out[#out + 1] = all[k]
    out[#out + 1] = string.format('%.17g', tonumber(all[k + 1]) / math.sqrt(other * mass))
  end
end
return out
"""


def _ranked(flat: list[Any]) -> tuple[IntArray, FloatArray]:
    ids = np.array(flat[0::2], np.int64)
    score = np.array(flat[1::2], np.float64)
    order = np.argsort(-score, kind="stable")
    return ids[order], score[order]


class RedisRealtimeItemCF:
    """`ClickProcessor` and `Neighbors` over Redis, with `RealtimeItemCF`'s parameters."""

    def __init__(self, url: str, breaker: Breaker, history: int = 20,
                 window_s: float = 86_400.0, max_neighbors: int = 200,
                 half_life_s: float = 7 * 86_400.0, client: redis.Redis | None = None) -> None:
        target = RedisTarget.parse(url)
        self.r = client or target.connect()
        self.ns = f"{target.prefix}:icf:"
        self.breaker = breaker
        self.args = [history, window_s, max_neighbors, half_life_s, TTL_S]
        self._observe = self.r.register_script(_OBSERVE)
        self._neighbors = self.r.register_script(_NEIGHBORS)

    def observe_click(self, user_id: str, idx: int, ts: float) -> None:
        """Folded in Redis; skipped while it is down (the event log keeps the click)."""
        self.breaker.call(
            lambda: self._observe(keys=[f"{self.ns}r:{user_id}"],
                                  args=[self.ns, idx, repr(float(ts)), *self.args]),
            lambda: None)

    def neighbors(self, idx: int) -> tuple[IntArray, FloatArray]:
        """Best first; none while Redis is down (the source then contributes nothing)."""
        return self.neighbors_many([idx])[0]

    def neighbors_many(self, anchors: Sequence[int]) -> list[tuple[IntArray, FloatArray]]:
        """Every anchor's neighbours in one pipelined round trip."""
        def pipelined() -> list[Any]:
            pipe = self.r.pipeline(transaction=False)
            for a in anchors:
                pipe.evalsha(self._neighbors.sha, 0, self.ns, a)
            return pipe.execute()

        def read() -> list[Any]:
            # EVALSHA by hand: redis-py's pipelined scripts cost a SCRIPT EXISTS round trip
            # per call; the script is loaded again only when Redis lost it (a restart)
            try:
                return pipelined()
            except redis.exceptions.NoScriptError:
                self.r.script_load(_NEIGHBORS)
                return pipelined()

        replies: list[Any] = self.breaker.call(read, lambda: [[] for _ in anchors])
        return [_ranked(flat) for flat in replies]

    def clear(self) -> None:
        """Forget every weight (before a replay from the event log)."""
        unlink_matching(self.r, self.ns + "*")
