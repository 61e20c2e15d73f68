"""Both ends of the event stream: API replicas publish, the ingest worker makes it durable.

A replica verifies each event's tracking param before publishing, so a client still learns at
once which events were quarantined and why; the verdict travels with the message and the
worker stores the quarantined ones with their reason. Duplicates are only known downstream:
the event log drops an event id it already holds, which is also what makes redelivery safe.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from tuijian.data.eventlog import EventLog
from tuijian.data.ingest import EventIngestor, IngestResult
from tuijian.data.stream import Delivery, EventStream, decode, encode
from tuijian.domain import Event, EventStatus

Ingest = Callable[[Sequence[Event]], Awaitable[list[IngestResult]]]


def publish_events(ingestor: EventIngestor, stream: EventStream, events: Sequence[Event]
                   ) -> list[IngestResult]:
    """Verify and publish; returns once the broker holds every event. `accepted` here means
    queued for the log: a redelivered or repeated event id is dropped by the worker."""
    good, bad = ingestor.classify(events)
    verdict: dict[int, tuple[str, str]] = {j: (code, reason) for j, code, reason in bad}
    stream.publish([encode(ev, verdict.get(j)) for j, ev in enumerate(events)])
    return [IngestResult(ev.event_id, EventStatus.QUARANTINED, verdict[j][1], verdict[j][0])
            if j in verdict else IngestResult(ev.event_id, EventStatus.ACCEPTED)
            for j, ev in enumerate(events)]


class StreamSink:
    """Served exposures published to the stream instead of written to a local log."""

    def __init__(self, stream: EventStream) -> None:
        self.stream = stream

    def append(self, events: Sequence[Event]) -> list[bool]:
        self.stream.publish([encode(ev) for ev in events])
        return [True] * len(events)


@dataclass(slots=True)
class StepResult:
    read: int = 0
    accepted: int = 0
    duplicates: int = 0
    quarantined: int = 0


class StreamWorker:
    """The consumer: read a batch, store it (fsynced, deduplicated), then acknowledge it.

    `ingest` stores and folds accepted events (the service's, so real-time state, metrics and
    online learning see streamed events as they see direct ones); it runs on the event loop,
    the broker calls in a thread. It verifies each tracking param again (one HMAC per event):
    whoever can write to the stream is not thereby trusted."""

    def __init__(self, stream: EventStream, log: EventLog, ingest: Ingest) -> None:
        self.stream, self.log, self.ingest = stream, log, ingest

    async def step(self, count: int = 500, block_s: float = 1.0) -> StepResult:
        deliveries = await asyncio.to_thread(self.stream.read, count, block_s)
        result = StepResult(read=len(deliveries))
        if not deliveries:
            return result
        events: list[Event] = []
        rejected: list[tuple[Event, str, str]] = []
        tokens: list[str | None] = []
        for d in deliveries:
            try:
                event, verdict = decode(d.payload)
            except ValueError as exc:
                rejected.append((_unreadable(d), "undecodable", str(exc)))
                tokens.append(d.token)
                continue
            if verdict is None:
                events.append(event)
            else:
                rejected.append((event, *verdict))
                tokens.append(d.token)
        if rejected:
            await asyncio.to_thread(self.log.quarantine, [e for e, _, _ in rejected],
                                    [r for _, _, r in rejected], [c for _, c, _ in rejected],
                                    tokens)
        for r in await self.ingest(events) if events else []:
            if r.status is EventStatus.ACCEPTED:
                result.accepted += 1
            elif r.status is EventStatus.DUPLICATE:
                result.duplicates += 1
            else:
                result.quarantined += 1
        result.quarantined += len(rejected)
        await asyncio.to_thread(self.stream.ack, deliveries)  # only now: all of it is on disk
        return result


def _unreadable(d: Delivery) -> Event:
    """A stand-in row for a message that is not an event, so the quarantine keeps it."""
    return Event(event_id=f"stream:{d.token}", type="unreadable", user_id="", item_id=-1,
                 ts=time.time(), tracking=d.payload[:512].decode("utf-8", "replace"))
