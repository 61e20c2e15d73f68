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
  the replica that served an exposure); the script that increments a counter also announces
  its index on a second feed, and each sync re-reads just the announced rows' counters (one
  MGET, off the request path), so a request reads counters locally, about a sync interval
  old. Reading them per request instead cost a blocking round trip on nearly every request
  (the candidates of a 1M catalog rarely repeat within seconds);
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
from tuijian.data.redis_backend import Breaker, Submit, write_through
from tuijian.data.redis_columns import CHUNK, RedisColumnStore
from tuijian.domain import IntArray

log = logging.getLogger(__name__)
FEED_MAXLEN = 1_000_000  # announcements kept; a replica further behind reloads every row
Position = tuple[str, int]  # a feed's newest entry id and how many entries it ever took


class Mirror:
    """A `ColumnStore`-shaped local copy of `remote` (items: an `ItemFeatureCenter`)."""

    def __init__(self, remote: RedisColumnStore, local: ColumnStore, breaker: Breaker,
                 positions: tuple[Position, Position] = (("0-0", 0), ("0-0", 0)),
                 live: RedisColumnStore | None = None, submit: Submit | None = None) -> None:
        """`positions`: where the copy stands in the change feed and the counts feed."""
        self.remote, self.local, self.breaker = remote, local, breaker
        # how counter increments reach Redis (default: now; a WriteBehind: off the request path)
        self.submit = submit or write_through(breaker, (live or remote).r)
        # the request path's connection (short timeouts); `remote` carries bulk transfers
        self.live = live or remote
        self.feed = remote.ns + "feed"
        self._changes = _Follower(self.feed, positions[0])
        self._counts = _Follower(remote.counts_feed, positions[1])
        # told every index a sync changed (the service adds them to its recall index)
        self.on_change: Callable[[IntArray], None] | None = None
        self._sync_lock = threading.Lock()

    @classmethod
    def attach(cls, remote: RedisColumnStore, local: ColumnStore, breaker: Breaker,
               live: RedisColumnStore | None = None, submit: Submit | None = None
               ) -> tuple[Mirror, bool]:
        """Join the shared store: seed it from `local` (this data directory's rows) when it is
        empty, else replace `local` by a copy of it. Returns the mirror and whether it seeded
        (the process that seeds also restores the derived state — counters, profiles — from
        its event log). Fails when Redis is down: a replica cannot start without its data."""
        # read before the copy: whatever changes after it is announced after these positions
        positions = (_feed_position(remote.r, remote.ns + "feed"),
                     _feed_position(remote.r, remote.counts_feed))
        if len(remote) == 0 and len(local):
            idx = remote.upsert(local.to_table())
            if not np.array_equal(idx, np.arange(len(local))):
                raise RuntimeError(f"{remote.ns}: seeded concurrently in another order; restart")
            return cls(remote, local, breaker, positions, live, submit), True
        copy = type(local)(remote.rows(np.arange(len(remote))))
        return cls(remote, copy, breaker, positions, live, submit), False

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
        return self.local.gather(idx, columns)

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
        the copy, then the counters announced since; returns the indexes whose rows changed
        (empty while Redis is down)."""
        with self._sync_lock:
            idx = self.breaker.call(self._pull, lambda: np.empty(0, np.int64))
            if self.remote.counters:
                self.breaker.call(self._pull_counts, lambda: None)
            if len(idx) and self.on_change is not None:
                self.on_change(idx)
            return idx

    def refresh_counts(self) -> None:
        """Every counter of every row from Redis (before the hot lists are rebuilt)."""
        counters = list(self.remote.counters)
        if not counters:
            return

        self.breaker.call(lambda: self._read_counts(np.arange(len(self.local))), lambda: None)

    def _read_counts(self, idx: IntArray) -> None:
        counters = list(self.remote.counters)
        for s in range(0, len(idx), CHUNK):
            part = idx[s:s + CHUNK]
            got = self.remote.gather(part, counters)
            for c in counters:
                self.local.column(c)[part] = got[c]

    def _pull_counts(self) -> None:
        announced, whole = self._counts.read(self.remote.r)
        if whole:
            log.warning("%s: counters were rewritten, or their feed trimmed past this "
                        "replica; re-reading every counter", self._counts.name)
            self._read_counts(np.arange(len(self.local)))
        elif announced:
            idx = np.unique(np.concatenate(announced))
            self._read_counts(idx[idx < len(self.local)])

    def _pull(self) -> IntArray:
        changed, trimmed = self._changes.read(self.remote.r)
        if trimmed:
            log.warning("%s: the change feed was trimmed past this replica; reloading",
                        self.feed)
            changed.append(np.arange(len(self.local)))
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


class _Follower:
    """One reader's place in a feed of announced indexes (a Redis Stream of packed int64s).

    Trimming is detected by counting: the feed reports how many announcements it ever took
    (`entries-added`, read atomically with its newest id); fewer read than that means some
    were trimmed unread (Redis 7.0's XTRIM leaves no other trace)."""

    def __init__(self, name: str, position: Position) -> None:
        self.name = name
        # the last announcement read, and how many the feed had taken up to it
        self._last, self._added = position

    def read(self, client: redis.Redis) -> tuple[list[IntArray], bool]:
        """The indexes announced since the last read, and whether some announcements were
        lost to trimming (or one said "all"): the reader must then re-read everything."""
        newest, added = _feed_position(client, self.name)
        announced: list[IntArray] = []
        before = after = 0
        everything = False
        while True:
            reply: Any = client.xread({self.name: self._last}, count=CHUNK)
            entries = reply[0][1] if reply else []
            if not entries:
                break
            for entry_id, fields in entries:
                if b"idx" in fields:
                    announced.append(np.frombuffer(fields[b"idx"], "<i8").astype(np.int64))
                else:
                    everything = True
                self._last = entry_id.decode()
                if _stream_id(self._last) <= _stream_id(newest):
                    before += 1
                else:
                    after += 1
        trimmed = added - self._added > before
        self._added = added + after
        return announced, trimmed or everything


def _feed_position(client: redis.Redis, feed: str) -> Position:
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
