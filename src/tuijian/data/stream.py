"""The event stream between stateless API replicas and the ingest worker (scale-out mode).

API replicas publish verified events; the ingest worker reads them in a consumer group,
writes them to the event log (fsynced) and only then acknowledges them to the broker. The
delivery is at-least-once: a worker that dies between the write and the acknowledgement gets
the batch again (or another worker claims it), and the event log drops what it already holds
by event id. Brokers: Redis Streams (here) and Kafka-compatible ones (`stream_kafka.py`).
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import redis

from tuijian.data.redis_backend import DOWN_ERRORS, RedisTarget
from tuijian.domain import Event

GROUP = "ingest"
# a delivery unacknowledged this long belongs to a consumer presumed dead; another claims it
CLAIM_IDLE_MS = 30_000
_FIELDS = {f.name for f in dataclasses.fields(Event)}


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message as read: `token` is the broker's position, what `ack` needs back."""

    token: str
    payload: bytes


class StreamUnavailable(RuntimeError):
    """The broker did not take a publish: nothing is acknowledged, the caller may retry."""


class EventStream(Protocol):
    """A durable, partitioned-or-not log of messages read by one consumer group."""

    def publish(self, payloads: Sequence[bytes]) -> list[str]:
        """Append; returns once the broker holds every payload (their tokens, in order).
        Raises StreamUnavailable when it does not."""
        ...

    def read(self, count: int, block_s: float) -> list[Delivery]:
        """Up to `count` messages for this consumer: its own unacknowledged ones first (after
        a restart), then ones abandoned by dead consumers, then new ones. Order holds within
        a partition (Redis: the whole stream)."""
        ...

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Mark processed; call only once their effects are durable."""
        ...

    def trim(self) -> int:
        """Free what every reader has acknowledged; returns how many messages went."""
        ...

    def ping(self) -> None:
        """Raise if the broker cannot be reached (readiness checks)."""
        ...

    def close(self) -> None: ...


def open_stream(url: str, consumer: str | None = None) -> EventStream:
    """The stream a settings URL names."""
    if url.startswith("kafka://"):
        from tuijian.data.stream_kafka import KafkaEventStream

        return KafkaEventStream(url, consumer=consumer)
    return RedisEventStream(url, consumer=consumer)


def encode(event: Event, quarantine: tuple[str, str] | None = None) -> bytes:
    """An event as a stream message; `quarantine` = (code, reason) when the publisher already
    rejected it (the worker stores it in the quarantine, with its reason)."""
    body: dict[str, Any] = {"event": event}  # orjson writes dataclasses 20x faster than asdict
    if quarantine is not None:
        body["quarantine"] = list(quarantine)
    return orjson.dumps(body)


def decode(payload: bytes) -> tuple[Event, tuple[str, str] | None]:
    """The inverse of `encode`; a ValueError says why a message is unusable."""
    try:
        body = orjson.loads(payload)
        fields = body["event"]
        unknown = set(fields) - _FIELDS
        if unknown:
            raise ValueError(f"unknown event field(s): {', '.join(sorted(unknown))}")
        event = Event(**fields)
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"undecodable stream message: {exc}") from None
    q = body.get("quarantine")
    return event, (str(q[0]), str(q[1])) if q else None


def consumer_name() -> str:
    """Unique per process and stable across its lifetime (host and pid)."""
    return f"{socket.gethostname()}-{os.getpid()}"


class RedisEventStream:
    """Redis Streams: XADD to publish, a consumer group to read, XACK after durability.

    Acknowledged entries are trimmed (XTRIM MINID) up to the oldest entry any group still needs,
    so the stream holds only what is in flight."""

    def __init__(self, url: str, name: str = "events", group: str = GROUP,
                 consumer: str | None = None, claim_idle_ms: int = CLAIM_IDLE_MS) -> None:
        target = RedisTarget.parse(url)
        self.r = target.connect(timeout_s=5.0)
        self.key = f"{target.prefix}:stream:{name}"
        self.group = group
        self.consumer = consumer or consumer_name()
        self.claim_idle_ms = claim_idle_ms
        self._own_pending = True  # after a (re)start, re-read our own unacknowledged entries
        try:
            self.r.xgroup_create(self.key, group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def publish(self, payloads: Sequence[bytes]) -> list[str]:
        pipe = self.r.pipeline(transaction=False)
        for p in payloads:
            pipe.xadd(self.key, {"e": p})
        try:
            return [_str(t) for t in pipe.execute()]
        except DOWN_ERRORS as exc:
            raise StreamUnavailable(f"publish failed: {exc}") from exc

    def read(self, count: int, block_s: float) -> list[Delivery]:
        if self._own_pending:
            got = self._group_read("0", count, None)
            if got:
                return got
            self._own_pending = False
        _, claimed, _ = self.r.xautoclaim(self.key, self.group, self.consumer,
                                          self.claim_idle_ms, "0-0", count=count)
        if claimed:
            return [_delivery(t, f) for t, f in claimed if f]
        return self._group_read(">", count, int(block_s * 1000) or None)

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            self.r.xack(self.key, self.group, *[d.token for d in deliveries])

    def trim(self) -> int:
        """Drop entries every group has acknowledged; returns how many went."""
        keep: str | None = None
        for g in self.r.xinfo_groups(self.key):
            pending = self.r.xpending(self.key, g["name"])
            oldest = (_str(pending["min"]) if pending["pending"]
                      else _next_id(_str(g["last-delivered-id"])))
            keep = oldest if keep is None or _id_key(oldest) < _id_key(keep) else keep
        if keep is None:
            return 0
        return int(self.r.xtrim(self.key, minid=keep, approximate=False))

    def lag(self) -> int:
        """Entries not yet acknowledged by this group (pending + never delivered)."""
        for g in self.r.xinfo_groups(self.key):
            if _str(g["name"]) == self.group:
                return int(g.get("pending", 0)) + int(g.get("lag") or 0)
        return 0

    def ping(self) -> None:
        self.r.ping()

    def close(self) -> None:
        self.r.close()

    def _group_read(self, start: str, count: int, block_ms: int | None) -> list[Delivery]:
        # the client's reply type is a union over RESP versions; RESP2 gives [[key, entries]]
        reply: Any = self.r.xreadgroup(self.group, self.consumer, {self.key: start},
                                       count=count, block=block_ms)
        if not reply:
            return []
        _, entries = reply[0]
        return [_delivery(t, f) for t, f in entries if f]


def _delivery(token: Any, fields: dict[bytes, bytes]) -> Delivery:
    return Delivery(_str(token), fields[b"e"])


def _str(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _next_id(entry_id: str) -> str:
    ms, seq = _id_key(entry_id)
    return f"{ms}-{seq + 1}"
