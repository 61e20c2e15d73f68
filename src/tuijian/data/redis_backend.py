"""Connections to the Redis server behind the scale-out backends, from one URL.

`redis://HOST:PORT/DB?prefix=NAME`: every key a backend writes starts with `NAME:` (default
`tj`), so several deployments (or test runs) can share one server without colliding.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit, urlunsplit

import redis

log = logging.getLogger(__name__)
T = TypeVar("T")
DEFAULT_PREFIX = "tj"
SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """A parsed backend URL: where the server is and the namespace of our keys."""

    url: str  # the server URL without our own query parameters
    prefix: str

    @classmethod
    def parse(cls, url: str) -> RedisTarget:
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES:
            raise ValueError(f"expected redis://HOST:PORT/DB, got {url!r}")
        query = parse_qs(parts.query)
        prefix = query.pop("prefix", [DEFAULT_PREFIX])[0]
        if not prefix or ":" in prefix:
            raise ValueError(f"prefix: expected a name without ':', got {prefix!r}")
        rest = "&".join(f"{k}={v}" for k, vs in query.items() for v in vs)
        return cls(urlunsplit(parts._replace(query=rest)), prefix)

    def connect(self, timeout_s: float = 1.0) -> redis.Redis:
        """A pooled client; socket timeouts bound how long a dead server can stall a caller
        (the request path degrades instead of hanging)."""
        return redis.Redis.from_url(self.url, socket_timeout=timeout_s,
                                    socket_connect_timeout=timeout_s,
                                    health_check_interval=30)

    def redacted(self) -> str:
        """The URL with any password masked, for logs and bench output."""
        parts = urlsplit(self.url)
        if parts.password:
            host = parts.hostname or ""
            netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port
                                                            else "")
            return urlunsplit(parts._replace(netloc=netloc))
        return self.url


# What a dead, unreachable, still-loading or demoted server raises through redis-py. Not every
# RedisError: a script or type error is a bug, and must fail loudly rather than pass for an
# outage the breaker quietly degrades around.
DOWN_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError, OSError)


class Breaker:
    """Stops calling a backend for `cooldown_s` after it failed, so a dead Redis costs the
    request path one socket timeout per cooldown instead of one per request, and calls resume
    by themselves once it answers again (recovery needs no restart)."""

    def __init__(self, name: str, cooldown_s: float = 1.0,
                 on_failure: Callable[[str], None] = lambda name: None) -> None:
        self.name = name
        self.cooldown_s = cooldown_s
        self.on_failure = on_failure
        self._until = 0.0
        self.failures = 0

    @property
    def open(self) -> bool:
        """True while calls are being skipped."""
        return time.monotonic() < self._until

    def call(self, fn: Callable[[], T], fallback: Callable[[], T]) -> T:
        """`fn()` unless the breaker is open or `fn` fails with a backend error; then
        `fallback()` (and the breaker opens for `cooldown_s`)."""
        if self.open:
            return fallback()
        try:
            out = fn()
        except DOWN_ERRORS as exc:
            log.warning("%s is unavailable (%s); degrading for %.1f s", self.name, exc,
                        self.cooldown_s)
            self.failures += 1
            self._until = time.monotonic() + self.cooldown_s
            self.on_failure(self.name)
            return fallback()
        self._until = 0.0
        return out


def unlink_matching(client: redis.Redis, pattern: str, batch: int = 10_000) -> int:
    """Delete every key matching `pattern` (SCAN, never KEYS: the server keeps serving);
    returns how many went."""
    removed = 0
    keys: list[Any] = []
    for key in client.scan_iter(match=pattern, count=batch):
        keys.append(key)
        if len(keys) >= batch:
            removed += int(client.unlink(*keys))
            keys = []
    if keys:
        removed += int(client.unlink(*keys))
    return removed


class WriteBehind:
    """Backend writes run in order on one background thread, so a request never waits on the
    bookkeeping it causes (counters, a user's shown set): only reads are on the request path.
    Every write adds its commands to a pipeline, and the writes queued meanwhile share one
    round trip (up to `batch`): under load a request's half dozen writes cost a fraction of
    one round trip instead of one each, and the thread's CPU time, which the request loop
    shares through the GIL, shrinks with them. Bounded: while the backend is down or slow,
    writes beyond `capacity` are dropped and counted (`dropped`): they are derived state the
    event log still holds and a restore rebuilds."""

    def __init__(self, breaker: Breaker, client: redis.Redis, capacity: int = 10_000,
                 batch: int = 512) -> None:
        self.breaker, self.client, self.batch = breaker, client, batch
        self.dropped = 0
        self._queue: queue.Queue[Write | None] = queue.Queue(capacity)
        self._thread = threading.Thread(target=self._run, name=f"write-behind {breaker.name}",
                                        daemon=True)
        self._thread.start()

    def submit(self, write: Write) -> None:
        try:
            self._queue.put_nowait(write)
        except queue.Full:
            self.dropped += 1

    def flush(self) -> None:
        """Wait until every write submitted so far has run (or was skipped)."""
        self._queue.join()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            writes, stop = self._take()
            try:
                if writes:
                    self.breaker.call(partial(execute, self.client, writes), lambda: None)
            except Exception:  # a bug in one write must not stop the ones after it
                log.exception("a write-behind write to %s failed", self.breaker.name)
            finally:
                for _ in range(len(writes) + stop):
                    self._queue.task_done()
            if stop:
                return

    def _take(self) -> tuple[list[Write], bool]:
        """The next writes in order (waiting for one, taking what else is queued, up to
        `batch`), and whether `close` came after them."""
        writes: list[Write] = []
        item = self._queue.get()
        while item is not None:
            writes.append(item)
            if len(writes) >= self.batch:
                return writes, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return writes, False
        return writes, True


# a write adds its commands to the pipeline it is given (scripts: `script(..., client=pipe)`)
Write = Callable[["redis.client.Pipeline"], None]
Submit = Callable[[Write], None]


def execute(client: redis.Redis, writes: Sequence[Write]) -> None:
    """`writes` in one pipelined round trip. A write that fails to add its commands, or a
    command the server refuses, is logged and skipped; the others still apply."""
    pipe = client.pipeline(transaction=False)
    for write in writes:
        try:
            write(pipe)
        except Exception:
            log.exception("a write to %s could not be queued", client)
    for reply in pipe.execute(raise_on_error=False):
        if isinstance(reply, redis.exceptions.ResponseError):
            log.error("Redis refused a write: %s", reply)


def write_through(breaker: Breaker, client: redis.Redis) -> Submit:
    """The synchronous counterpart of `WriteBehind.submit` (a write skipped while down)."""
    return lambda write: breaker.call(lambda: execute(client, [write]), lambda: None)
