"""Event ingestion: verify, deduplicate, log durably, then fold into real-time state.

The order matters: an event is only acknowledged ("accepted") after the event log has fsynced
it; anything whose tracking param cannot be trusted is quarantined with the reason, never
dropped; real-time updates (item counters, user interests) happen after the write, so a crash
can only lose state the build job recomputes from the log.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from tuijian.data.eventlog import EventLog
from tuijian.data.items import ItemFeatureCenter
from tuijian.data.users import INTEREST_FIELDS, UserProfileStore
from tuijian.display.tracking import TrackingCodec, TrackingError
from tuijian.domain import Event, EventStatus, EventType

# Real-time counters count one click / conversion per (list, item): a replayed tracking param
# (fresh event ids, same list) is logged but cannot inflate an item's CTR. Bounded memory;
# the build job applies the same rule to the whole log.
COUNTED_MEMORY = 1_000_000


@dataclass(slots=True)
class IngestResult:
    event_id: str
    status: EventStatus
    reason: str | None = None
    code: str | None = None  # a fixed reason code, safe as a metrics label


Rejections = list[tuple[int, str, str]]  # (event position, code, reason)


class ClickProcessor(Protocol):
    """A real-time processor fed every counted click, live and on start-up replay."""

    def observe_click(self, user_id: str, idx: int, ts: float) -> None: ...


class EventIngestor:
    def __init__(
        self,
        log: EventLog,
        store: ItemFeatureCenter,
        profiles: UserProfileStore,
        codec: TrackingCodec,
    ) -> None:
        self.log, self.store, self.profiles, self.codec = log, store, profiles, codec
        # real-time processors beyond counters and profiles (e.g. real-time item-CF)
        self.click_processors: list[ClickProcessor] = []
        self._counted: OrderedDict[tuple[str | None, int, str], None] = OrderedDict()

    def ingest(self, events: Sequence[Event]) -> list[IngestResult]:
        """Verify, log (fsynced) and fold a batch; one result per event, in order."""
        good, bad = self.classify(events)
        fresh = self._write(events, good, bad)
        return self._finish(events, good, bad, fresh)

    async def ingest_async(self, events: Sequence[Event]) -> list[IngestResult]:
        """As `ingest`, with the disk write off the event loop. Verification and the
        real-time folds stay on the loop thread, the only thread that touches profiles."""
        good, bad = self.classify(events)
        fresh = await asyncio.to_thread(self._write, events, good, bad)
        return self._finish(events, good, bad, fresh)

    def classify(self, events: Sequence[Event]) -> tuple[list[int], Rejections]:
        """Verify each event's tracking param (filling its tracking columns): the positions
        of the trusted events, and (position, code, reason) of the others."""
        good: list[int] = []
        bad: Rejections = []
        for j, ev in enumerate(events):
            rejected = self._verify(ev)
            if rejected is None:
                good.append(j)
            else:
                bad.append((j, *rejected))
        return good, bad

    def _write(self, events: Sequence[Event], good: list[int], bad: Rejections) -> list[bool]:
        if bad:
            self.log.quarantine([events[j] for j, _, _ in bad], [r for _, _, r in bad],
                                [c for _, c, _ in bad])
        return self.log.append([events[j] for j in good]) if good else []

    def _finish(self, events: Sequence[Event], good: list[int], bad: Rejections,
                fresh: list[bool]) -> list[IngestResult]:
        results: list[IngestResult | None] = [None] * len(events)
        for j, code, r in bad:
            results[j] = IngestResult(events[j].event_id, EventStatus.QUARANTINED, r, code)
        accepted: list[Event] = []
        for j, is_new in zip(good, fresh, strict=True):
            status = EventStatus.ACCEPTED if is_new else EventStatus.DUPLICATE
            results[j] = IngestResult(events[j].event_id, status)
            if is_new:
                accepted.append(events[j])
        self._fold(accepted)
        return [r for r in results if r is not None]

    def _verify(self, ev: Event) -> tuple[str, str] | None:
        """Fill the event's tracking columns from its param, or say (code, reason) why it is
        untrusted."""
        try:
            p = self.codec.decode(ev.tracking)
        except TrackingError as exc:
            return exc.code, str(exc)
        if p.item_id is not None and p.item_id != ev.item_id:
            return "item_mismatch", "tracking: item_id does not match the event's item_id"
        if p.item_id is None and ev.item_id not in p.item_ids:
            return "item_not_listed", "tracking: item_id is not in the tracked list"
        if p.user_id != ev.user_id:
            return "user_mismatch", "tracking: user_id does not match the list's user"
        if self.store.position(ev.item_id) < 0:
            return "unknown_item", "item_id: unknown item"
        ev.exposure_id, ev.scene, ev.platform = p.exposure_id, p.scene, p.platform
        ev.recall_id, ev.rank_id, ev.rule_id, ev.display_id = (
            p.recall_id, p.rank_id, p.rule_id, p.display_id
        )
        ev.experiments = list(p.experiments) or None
        ev.slot = p.slot or p.scene
        if p.position is not None:
            ev.position, ev.source, ev.sources = p.position, p.source, p.sources
            ev.creative = p.creative
        return None

    def _fold(self, events: Sequence[Event]) -> None:
        """Real-time processors: item counters and user interests."""
        for ev in events:
            if ev.type not in (EventType.CLICK, EventType.CONVERT):
                continue
            key = (ev.exposure_id, ev.item_id, ev.type)
            if key in self._counted:
                continue
            self._counted[key] = None
            if len(self._counted) > COUNTED_MEMORY:
                self._counted.popitem(last=False)
            idx = self.store.position(ev.item_id)
            if ev.type == EventType.CLICK:
                self.store.add_counts(np.array([idx]), "clicks")
                tags = self.store.gather(np.array([idx]), INTEREST_FIELDS)
                self.profiles.record_click(
                    ev.user_id, idx, {k: int(v[0]) for k, v in tags.items()}
                )
                for processor in self.click_processors:
                    processor.observe_click(ev.user_id, idx, ev.ts)
            elif ev.type == EventType.CONVERT:
                self.store.add_counts(np.array([idx]), "converts")
