"""A replica's local copy of a shared feature center in Redis: numpy-speed reads, shared writes.

A request reads dozens of columns of hundreds of candidates (filters, rank features, rules,
display); at a Redis round trip each that alone would exceed the latency budget. So every
replica answers from an in-process columnar copy — the embedded store — of the shared truth in
Redis:

- upserts go to Redis first (its script allocates the dense index, so every replica agrees
  on it), are announced on a change feed (a Redis Stream of changed indexes), and every replica,
  the writer included, applies the feed; indexes allocated beyond the copy are pulled too, so a
  writer that died between the upsert and its announcement loses no new row;
- counters change with every event, written by whichever process folds it (the ingest worker,
  the replica that served an exposure), so they are read live from Redis for the rows a request
  asks about (one pipelined round trip, the 150-item read `tuijian bench features` measures) and
  refreshed whole before the hot lists are rebuilt;
- when Redis does not answer, the copy serves what it last saw (counters included): stale,
  never failing, and the breaker retries by itself, so service recovers when Redis returns.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import redis

from tuijian.data.columnar import ColumnStore
from tuijian.data.redis_backend import Breaker
from tuijian.data.redis_columns import CHUNK, RedisColumnStore
from tuijian.domain import IntArray

log = logging.getLogger(__name__)
FEED_MAXLEN = 1_000_000  # announcements kept; a replica further behind reloads every row


class Mirror:
    """A `ColumnStore`-shaped local copy of `remote` (items: an `ItemFeatureCenter`)."""

    def __init__(self, remote: RedisColumnStore, local: ColumnStore, breaker: Breaker,
                 position: tuple[str, int] = ("0-0", 0),
                 live: RedisColumnStore | None = None) -> None:
        self.remote, self.local, self.breaker = remote, local, breaker
        # the request path's connection (short timeouts); `remote` carries bulk transfers
        self.live = live or remote
        self.feed = remote.ns + "feed"
        # told every index a sync changed (the service adds them to its recall index)
        self.on_change: Callable[[IntArray], None] | None = None
        # the last announcement applied, and how many the feed had taken up to it
        self._last, self._added = position
        self._sync_lock = threading.Lock()

    @classmethod
    def attach(cls, remote: RedisColumnStore, local: ColumnStore, breaker: Breaker,
               live: RedisColumnStore | None = None) -> tuple[Mirror, bool]:
        """Join the shared store: seed it from `local` (this data directory's rows) when it is
        empty, else replace `local` by a copy of it. Returns the mirror and whether it seeded
        (the process that seeds also restores the derived state — counters, profiles — from
        its event log). Fails when Redis is down: a replica cannot start without its data."""
        position = _feed_position(remote.r, remote.ns + "feed")
        if len(remote) == 0 and len(local):
            idx = remote.upsert(local.to_table())
            if not np.array_equal(idx, np.arange(len(local))):
                raise RuntimeError(f"{remote.ns}: seeded concurrently in another order; restart")
            return cls(remote, local, breaker, position, live), True
        copy = type(local)(remote.rows(np.arange(len(remote))))
        return cls(remote, copy, breaker, position, live), False

    # -- reads: the local copy ----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.local)

    def keys(self) -> list[Any]:
        return self.local.keys()

    def position(self, key: Any) -> int:
        return self.local.position(key)

    def index_of(self, keys: Iterable[Any]) -> IntArray:
        return self.local.index_of(keys)

    def column(self, name: str) -> npt.NDArray[Any]:
        return self.local.column(name)

    def record(self, idx: int) -> dict[str, Any]:
        return self.local.record(idx)

    def to_table(self) -> pa.Table:
        return self.local.to_table()

    def gather(self, idx: IntArray, columns: Sequence[str]) -> dict[str, npt.NDArray[Any]]:
        """Local columns, with counters read live from Redis (and kept as the local values)."""
        live = [c for c in columns if c in self.remote.counters]
        out = self.local.gather(idx, [c for c in columns if c not in live])
        if live:
            fresh = self.breaker.call(lambda: self.live.gather(idx, live), lambda: None)
            if fresh is not None:
                for c in live:
                    self.local.column(c)[idx] = fresh[c]
            out.update(fresh if fresh is not None else self.local.gather(idx, live))
        return out

    # -- writes: Redis first, then the feed ---------------------------------------------------

    def upsert(self, table: pa.Table) -> IntArray:
        """Write to the shared store, announce, and apply (visible here on return). Raises
        when Redis is down: a write must not be acknowledged that other replicas never see."""
        idx = self.remote.upsert(table)
        self.remote.r.xadd(self.feed, {"idx": idx.astype("<i8").tobytes()},
                           maxlen=FEED_MAXLEN, approximate=True)
        self.sync()
        return idx

    def add_counts(self, idx: IntArray, counter: str,
                   amount: float | npt.NDArray[np.float64] = 1.0) -> None:
        """Counted here at once; in Redis unless it is down (then the event log, the source of
        truth, still has the event and the next restore counts it)."""
        self.breaker.call(lambda: self.live.add_counts(idx, counter, amount), lambda: None)
        np.add.at(self.local.column(counter), idx, amount)

    def set_counts(self, counter: str, values: npt.NDArray[np.float64]) -> None:
        self.remote.set_counts(counter, values)
        self.local.column(counter)[:] = values[: len(self.local)]

    # -- following the shared store -----------------------------------------------------------

    def sync(self) -> IntArray:
        """Apply every change announced since the last sync and every row allocated beyond
        the copy; returns the indexes that changed (empty while Redis is down)."""
        with self._sync_lock:
            idx = self.breaker.call(self._pull, lambda: np.empty(0, np.int64))
            if len(idx) and self.on_change is not None:
                self.on_change(idx)
            return idx

    def refresh_counts(self) -> None:
        """Every counter of every row from Redis (before the hot lists are rebuilt)."""
        counters = list(self.remote.counters)
        if not counters:
            return

        def pull() -> None:
            n = len(self.local)
            for s in range(0, n, CHUNK):
                part = np.arange(s, min(s + CHUNK, n))
                got = self.remote.gather(part, counters)
                for c in counters:
                    self.local.column(c)[part] = got[c]

        self.breaker.call(pull, lambda: None)

    def _pull(self) -> IntArray:
        # Trimming is detected by counting: the feed reports how many announcements it ever
        # took (`entries-added`, read atomically with its newest id); fewer read than that
        # means some were trimmed unread (Redis 7.0's XTRIM leaves no other trace).
        newest, added = _feed_position(self.remote.r, self.feed)
        changed: list[IntArray] = []
        before = after = 0
        while True:
            reply: Any = self.remote.r.xread({self.feed: self._last}, count=CHUNK)
            entries = reply[0][1] if reply else []
            if not entries:
                break
            for entry_id, fields in entries:
                changed.append(np.frombuffer(fields[b"idx"], "<i8").astype(np.int64))
                self._last = entry_id.decode()
                if _stream_id(self._last) <= _stream_id(newest):
                    before += 1
                else:
                    after += 1
        if added - self._added > before:
            log.warning("%s: the change feed was trimmed past this replica; reloading",
                        self.feed)
            changed.append(np.arange(len(self.local)))
        self._added = added + after
        n = len(self.remote)
        changed.append(np.arange(len(self.local), n))
        idx = np.unique(np.concatenate(changed))
        idx = idx[idx < n]
        if len(idx):
            got = self.local.upsert(self.remote.rows(idx))
            if not np.array_equal(got, idx):
                raise RuntimeError(f"{self.remote.ns}: the local copy's indexes diverged "
                                   f"({idx[:5].tolist()} upserted at {got[:5].tolist()})")
        return idx


def _feed_position(client: redis.Redis, feed: str) -> tuple[str, int]:
    """The feed's newest announcement id and how many it ever took ("0-0", 0: none yet)."""
    try:
        info: Any = client.xinfo_stream(feed)
    except redis.ResponseError:  # no feed yet: nothing was ever announced
        return "0-0", 0
    newest = info["last-generated-id"]
    return (newest.decode() if isinstance(newest, bytes) else str(newest),
            int(info["entries-added"]))


def _stream_id(entry_id: str | bytes) -> tuple[int, int]:
    if isinstance(entry_id, bytes):
        entry_id = entry_id.decode()
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
