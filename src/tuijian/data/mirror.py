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
  the replica that served an exposure), so they are read from Redis for the rows a request asks
  about when this replica's copy of them is older than `max_age_s` (5 s unless
  TUIJIAN_COUNTS_MAX_AGE_S says otherwise: one pipelined round trip, the 150-item read
  `tuijian bench features` measures; a second's freshness cost a round trip on nearly every
  request for ranking features that barely move in five) and refreshed whole before the hot
  lists are rebuilt;
- when Redis does not answer, the copy serves what it last saw (counters included): stale,
  never failing, and the breaker retries by itself, so service recovers when Redis returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import redis

from tuijian.data.columnar import ColumnStore
from tuijian.data.redis_backend import Breaker, Submit, write_through
from tuijian.data.redis_columns import CHUNK, RedisColumnStore
from tuijian.domain import IntArray

log = logging.getLogger(__name__)
FEED_MAXLEN = 1_000_000  # announcements kept; a replica further behind reloads every row
COUNTS_MAX_AGE_S = 5.0  # the real-time counters a request reads are at most this old


class Mirror:
    """A `ColumnStore`-shaped local copy of `remote` (items: an `ItemFeatureCenter`)."""

    def __init__(self, remote: RedisColumnStore, local: ColumnStore, breaker: Breaker,
                 position: tuple[str, int] = ("0-0", 0),
                 live: RedisColumnStore | None = None, submit: Submit | None = None) -> None:
        self.remote, self.local, self.breaker = remote, local, breaker
        # how counter increments reach Redis (default: now; a WriteBehind: off the request path)
        self.submit = submit or write_through(breaker, (live or remote).r)
        # how stale a counter may be when read, and when each row's were last read from Redis
        self.max_age_s = COUNTS_MAX_AGE_S
        self._read_at = np.zeros(len(local))
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
               live: RedisColumnStore | None = None, submit: Submit | None = None
               ) -> tuple[Mirror, bool]:
        """Join the shared store: seed it from `local` (this data directory's rows) when it is
        empty, else replace `local` by a copy of it. Returns the mirror and whether it seeded
        (the process that seeds also restores the derived state — counters, profiles — from
        its event log). Fails when Redis is down: a replica cannot start without its data."""
        position = _feed_position(remote.r, remote.ns + "feed")
        if len(remote) == 0 and len(local):
            idx = remote.upsert(local.to_table())
            if not np.array_equal(idx, np.arange(len(local))):
                raise RuntimeError(f"{remote.ns}: seeded concurrently in another order; restart")
            return cls(remote, local, breaker, position, live, submit), True
        copy = type(local)(remote.rows(np.arange(len(remote))))
        return cls(remote, copy, breaker, position, live, submit), False

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
        """Local columns; counters no older than `max_age_s`: rows read from Redis longer ago
        than that are read again first (one round trip), so a hot item costs one read per
        replica per interval however many requests rank it."""
        if any(c in self.remote.counters for c in columns):
            self._refresh_rows(np.asarray(idx, np.int64))
        return self.local.gather(idx, columns)

    def _refresh_rows(self, idx: IntArray) -> None:
        now = time.monotonic()
        if self._read_at.shape[0] < len(self.local):
            self._read_at = np.concatenate(
                [self._read_at, np.zeros(len(self.local) - self._read_at.shape[0])])
        stale = np.unique(idx[now - self._read_at[idx] > self.max_age_s])
        if not len(stale):
            return
        counters = list(self.remote.counters)
        fresh = self.breaker.call(lambda: self.live.gather(stale, counters), lambda: None)
        if fresh is None:
            return  # Redis is down: the last values read serve
        for c in counters:
            self.local.column(c)[stale] = fresh[c]
        self._read_at[stale] = now

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
        """Counted here at once; in Redis through `submit`, unless it is down (then the event
        log, the source of truth, still has the event and the next restore counts it)."""
        idx = np.array(idx, np.int64)  # copies: a write-behind runs after the caller moved on
        amounts = np.array(amount, np.float64)
        self.submit(lambda pipe: self.live.add_counts(idx, counter, amounts, pipe))
        np.add.at(self.local.column(counter), idx, amounts)

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
