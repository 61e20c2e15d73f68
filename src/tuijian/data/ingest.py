"""Event ingestion: verify, deduplicate, log durably, then fold into real-time state.

The order matters: an event is only acknowledged ("accepted") after the event log has fsynced
it; anything whose tracking param cannot be trusted is quarantined with the reason, never
dropped; real-time updates (item counters, user interests) happen after the write, so a crash
can only lose state the build job recomputes from the log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tuijian.data.eventlog import EventLog
from tuijian.data.items import ItemFeatureCenter
from tuijian.data.users import INTEREST_FIELDS, MemoryProfileStore
from tuijian.display.tracking import TrackingCodec, TrackingError
from tuijian.domain import Event, EventStatus, EventType


@dataclass(slots=True)
class IngestResult:
    event_id: str
    status: EventStatus
    reason: str | None = None


class EventIngestor:
    def __init__(
        self,
        log: EventLog,
        store: ItemFeatureCenter,
        profiles: MemoryProfileStore,
        codec: TrackingCodec,
    ) -> None:
        self.log, self.store, self.profiles, self.codec = log, store, profiles, codec

    def ingest(self, events: Sequence[Event]) -> list[IngestResult]:
        """Verify, log (fsynced) and fold a batch; one result per event, in order."""
        good, bad = self._classify(events)
        fresh = self._write(events, good, bad)
        return self._finish(events, good, bad, fresh)

    async def ingest_async(self, events: Sequence[Event]) -> list[IngestResult]:
        """As `ingest`, with the disk write off the event loop. Verification and the
        real-time folds stay on the loop thread, the only thread that touches profiles."""
        good, bad = self._classify(events)
        fresh = await asyncio.to_thread(self._write, events, good, bad)
        return self._finish(events, good, bad, fresh)

    def _classify(self, events: Sequence[Event]) -> tuple[list[int], list[tuple[int, str]]]:
        good: list[int] = []
        bad: list[tuple[int, str]] = []
        for j, ev in enumerate(events):
            reason = self._verify(ev)
            if reason is None:
                good.append(j)
            else:
                bad.append((j, reason))
        return good, bad

    def _write(self, events: Sequence[Event], good: list[int], bad: list[tuple[int, str]]
               ) -> list[bool]:
        if bad:
            self.log.quarantine([events[j] for j, _ in bad], [r for _, r in bad])
        return self.log.append([events[j] for j in good]) if good else []

    def _finish(self, events: Sequence[Event], good: list[int], bad: list[tuple[int, str]],
                fresh: list[bool]) -> list[IngestResult]:
        results: list[IngestResult | None] = [None] * len(events)
        for j, r in bad:
            results[j] = IngestResult(events[j].event_id, EventStatus.QUARANTINED, r)
        accepted: list[Event] = []
        for j, is_new in zip(good, fresh, strict=True):
            status = EventStatus.ACCEPTED if is_new else EventStatus.DUPLICATE
            results[j] = IngestResult(events[j].event_id, status)
            if is_new:
                accepted.append(events[j])
        self._fold(accepted)
        return [r for r in results if r is not None]

    def _verify(self, ev: Event) -> str | None:
        """Fill the event's tracking columns from its param, or say why it is untrusted."""
        try:
            p = self.codec.decode(ev.tracking)
        except TrackingError as exc:
            return str(exc)
        if p.item_id is not None and p.item_id != ev.item_id:
            return "tracking: item_id does not match the event's item_id"
        if p.item_id is None and ev.item_id not in p.item_ids:
            return "tracking: item_id is not in the tracked list"
        if self.store.position(ev.item_id) < 0:
            return "item_id: unknown item"
        ev.exposure_id, ev.scene, ev.platform = p.exposure_id, p.scene, p.platform
        ev.recall_id, ev.rank_id, ev.rule_id, ev.display_id = (
            p.recall_id, p.rank_id, p.rule_id, p.display_id
        )
        if p.position is not None:
            ev.position, ev.source = p.position, p.source
        return None

    def _fold(self, events: Sequence[Event]) -> None:
        """Real-time processors: item counters and user interests."""
        for ev in events:
            idx = self.store.position(ev.item_id)
            if ev.type == EventType.CLICK:
                self.store.add_counts(np.array([idx]), "clicks")
                tags = self.store.gather(np.array([idx]), INTEREST_FIELDS)
                self.profiles.record_click(
                    ev.user_id, idx, {k: int(v[0]) for k, v in tags.items()}
                )
            elif ev.type == EventType.CONVERT:
                self.store.add_counts(np.array([idx]), "converts")
