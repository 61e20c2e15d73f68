"""Batch recall lists in Redis: what a job computed, read per request by every replica.

Neighbour tables (item-CF, association rules: an anchor item's index → its neighbours) and
user-CF lists (a user id → items) are keyed lists of (item index, score), best first. The
process that loads a new job version publishes it here; replicas follow the version pointer,
so a stateless replica recalls from the newest batch results without a copy of the job's
files. Layout under `PREFIX:rl:NAME:`:

    v              string the version serving
    VERSION:KEY    string the list: n little-endian int64 indexes, then n float64 scores

A version's keys are written in full before `v` moves, and the previous versions' keys are
deleted after, so a reader never sees a half-published version. Item indexes are the shared
feature center's, which every replica agrees on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import redis

from tuijian.data.redis_backend import Breaker, unlink_matching
from tuijian.domain import FloatArray, IntArray

CHUNK = 5_000  # lists per pipelined write
_EMPTY = (np.empty(0, np.int64), np.empty(0, np.float64))


@runtime_checkable
class Listed(Protocol):
    """A job's output that is a set of keyed lists (`NeighborTable`, `UserLists`)."""

    def items(self) -> Iterable[tuple[Any, IntArray, FloatArray]]: ...


def _pack(idx: IntArray, score: FloatArray) -> bytes:
    return idx.astype("<i8").tobytes() + score.astype("<f8").tobytes()


def _unpack(raw: bytes | None) -> tuple[IntArray, FloatArray]:
    if not raw:
        return _EMPTY
    n = len(raw) // 16
    return (np.frombuffer(raw, "<i8", n).astype(np.int64),
            np.frombuffer(raw, "<f8", n, offset=8 * n).astype(np.float64))


class RedisLists:
    """One published version of a named set of lists: `Neighbors` (by item index) and
    keyed lists (by user id). Reads degrade to an empty list while Redis is down."""

    def __init__(self, client: redis.Redis, prefix: str, name: str, version: str,
                 breaker: Breaker) -> None:
        self.r, self.breaker = client, breaker
        self.version = version
        self.base = f"{prefix}:rl:{name}:{version}:"

    def get(self, key: Any) -> tuple[IntArray, FloatArray]:
        raw: Any = self.breaker.call(lambda: self.r.get(f"{self.base}{key}"), lambda: None)
        return _unpack(raw)

    def neighbors(self, idx: int) -> tuple[IntArray, FloatArray]:
        return self.get(idx)

    def neighbors_many(self, anchors: Sequence[int]) -> list[tuple[IntArray, FloatArray]]:
        """Every anchor's list in one MGET."""
        if not anchors:
            return []
        raw: Any = self.breaker.call(
            lambda: self.r.mget([f"{self.base}{a}" for a in anchors]),
            lambda: [None] * len(anchors))
        return [_unpack(r) for r in raw]

    @staticmethod
    def current(client: redis.Redis, prefix: str, name: str) -> str | None:
        """The version serving now, if any was published."""
        v: Any = client.get(f"{prefix}:rl:{name}:v")
        return None if v is None else v.decode()

    @staticmethod
    def publish(client: redis.Redis, prefix: str, name: str, version: str,
                lists: Iterable[tuple[Any, IntArray, FloatArray]]) -> int:
        """Write every list of `version`, then point readers at it and delete the older
        versions; returns how many lists were written."""
        ns = f"{prefix}:rl:{name}:"
        written = 0
        pipe = client.pipeline(transaction=False)
        for key, idx, score in lists:
            pipe.set(f"{ns}{version}:{key}", _pack(idx, score))
            written += 1
            if written % CHUNK == 0:
                pipe.execute()
        pipe.execute()
        client.set(ns + "v", version)
        keep = f"{ns}{version}:".encode()
        stale: list[bytes] = []
        for key in client.scan_iter(match=ns + "*:*", count=10_000):
            if not key.startswith(keep):
                stale.append(key)
            if len(stale) >= 10_000:
                client.unlink(*stale)
                stale = []
        if stale:
            client.unlink(*stale)
        return written

    @staticmethod
    def drop(client: redis.Redis, prefix: str, name: str) -> int:
        return unlink_matching(client, f"{prefix}:rl:{name}:*")
