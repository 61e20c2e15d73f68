"""The alarms on the real-time stream, and the board that shows what is firing.

`StreamMonitor` is fed every stored batch (an EventLog listener, like the minute buckets) and
every ingest result (for what was quarantined, which is never stored in the log). It keeps
what the minute buckets cannot answer: which lists were logged as shown (to find clicks on
lists never shown) and the quarantined and stored client events per minute. The CTR, source
and model checks read the minute buckets (`MinuteCube`).

`AlarmBoard` holds the alarms of the last stream check and the last daily check, keeps when
each was first raised, and mirrors them into Prometheus gauges.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client import Counter as PromCounter

from tuijian.analytics.alarms import (
    ALARMS,
    Alarm,
    Thresholds,
    invalid_tracking,
    model_drift,
    orphan_clicks,
    platform_ctr,
    silent_sources,
)
from tuijian.analytics.funnel import FunnelQuery
from tuijian.analytics.stream import MinuteCube
from tuijian.data.ingest import IngestResult
from tuijian.domain import Event, EventStatus, EventType

# lists remembered as shown: a click on an older list is not checked (bounded memory)
LISTS_KEPT = 2_000_000
LIST_RETENTION_S = 6 * 3600
# queued events are settled at each check; a process with no checks (a simulation, a batch
# job) settles them here instead of holding them all
SETTLE_AT = 50_000


class StreamMonitor:
    def __init__(self, cube: MinuteCube, thresholds: Thresholds | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.cube, self.t, self.clock = cube, thresholds or Thresholds(), clock
        self._queue: list[tuple[float, Event]] = []
        self._lock = threading.Lock()
        self._shown: OrderedDict[str, float] = OrderedDict()  # exposure_id → arrival
        self._pending: deque[tuple[float, str | None, str | None]] = deque()
        self._minutes: Counter[tuple[int, str, str]] = Counter()  # (minute, kind, key)

    def enqueue(self, events: list[Event]) -> None:
        """Queue a stored batch (an EventLog listener: a list extend)."""
        now = self.clock()
        with self._lock:
            self._queue.extend((now, ev) for ev in events)
            full = len(self._queue) >= SETTLE_AT
        if full:
            self._settle(now)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def observe_ingest(self, events: Sequence[Event], results: Sequence[IngestResult]) -> None:
        """Count quarantined events by reason code, by minute of arrival."""
        minute = int(self.clock() // 60)
        with self._lock:
            for r in results:
                if r.status == EventStatus.QUARANTINED:
                    self._minutes[(minute, "quarantined", r.code or "unknown")] += 1

    def check(self, now: float | None = None) -> list[Alarm]:
        """Every check over the stream's windows (see Thresholds)."""
        now = self.clock() if now is None else now
        t = self.t
        self._settle(now)
        since = now - t.window_s
        with self._lock:
            recent = [(k, n) for k, n in self._minutes.items() if k[0] * 60 >= since]
        clicks: Counter[str] = Counter()
        orphans: Counter[str] = Counter()
        quarantined: Counter[str] = Counter()
        accepted = 0
        for (_, kind, key), n in recent:
            if kind == "clicks":
                clicks[key] += n
            elif kind == "orphans":
                orphans[key] += n
            elif kind == "quarantined":
                quarantined[key] += n
            else:
                accepted += n
        alarms = orphan_clicks([(p or None, clicks[p], orphans[p]) for p in sorted(clicks)], t)
        alarms += invalid_tracking(quarantined, accepted, t)
        end = now - t.lag_s
        start = end - t.window_s
        alarms += platform_ctr(self.cube.funnel(FunnelQuery(["slot", "platform"], start=start,
                                                            end=end)), t)
        alarms += model_drift(self.cube.funnel(FunnelQuery(["rank_id"], start=start, end=end)),
                              t)
        quiet = end - t.silence_s
        alarms += silent_sources(
            self.cube.funnel(FunnelQuery(["scene", "source"], start=end - t.baseline_s,
                                         end=quiet)),
            self.cube.funnel(FunnelQuery(["scene", "source"], start=quiet, end=end)), t,
            since=quiet)
        return [replace(a, scope="stream", since=a.since or since) for a in alarms]

    def _settle(self, now: float) -> None:
        """Fold queued events: remember shown lists, count client events (every type but
        exposures, as the daily check does), hold clicks until their grace period has passed,
        then count each as matched or orphan; forget old minutes and lists."""
        with self._lock:
            queue, self._queue = self._queue, []
            for arrival, ev in queue:
                if ev.type == EventType.EXPOSURE:
                    if ev.exposure_id is not None:
                        self._shown[ev.exposure_id] = arrival
                        self._shown.move_to_end(ev.exposure_id)
                    continue
                self._minutes[(int(arrival // 60), "accepted", "")] += 1
                if ev.type == EventType.CLICK:
                    self._pending.append((arrival, ev.exposure_id, ev.platform))
            while self._pending and self._pending[0][0] <= now - self.t.grace_s:
                arrival, exposure_id, platform = self._pending.popleft()
                minute = int(arrival // 60)
                self._minutes[(minute, "clicks", platform or "")] += 1
                if exposure_id not in self._shown:
                    self._minutes[(minute, "orphans", platform or "")] += 1
            while self._shown and (len(self._shown) > LISTS_KEPT or
                                   next(iter(self._shown.values())) < now - LIST_RETENTION_S):
                self._shown.popitem(last=False)
            cutoff = (now - max(self.t.window_s, self.t.baseline_s)) // 60
            for k in [k for k in self._minutes if k[0] < cutoff]:
                del self._minutes[k]


class AlarmBoard:
    """What is firing, per scope, mirrored into `tuijian_alarm_firing{scope,alarm,key}` (1
    while firing, removed when it clears) and `tuijian_alarms_firing{alarm}` (a count per
    check, 0 included, so a dashboard can tell "no alarm" from "no data")."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.firing = Gauge("tuijian_alarm_firing", "A tracking alarm that is firing",
                            ["scope", "alarm", "key"], registry=registry)
        self.counts = Gauge("tuijian_alarms_firing", "Tracking alarms firing, per check",
                            ["alarm"], registry=registry)
        self.raised = PromCounter("tuijian_alarms_raised", "Tracking alarms raised",
                                  ["scope", "alarm"], registry=registry)
        for name in ALARMS:
            self.counts.labels(name).set(0)
        self._by_scope: dict[str, dict[tuple[str, str], Alarm]] = {}
        self._lock = threading.Lock()

    def update(self, scope: str, alarms: list[Alarm]) -> None:
        """Replace a scope's alarms; one still firing keeps the time it was first raised."""
        with self._lock:
            before = self._by_scope.get(scope, {})
            now: dict[tuple[str, str], Alarm] = {}
            for a in alarms:
                key = (a.alarm, a.key)
                old = before.get(key)
                now[key] = replace(a, since=old.since) if old is not None else a
                if old is None:
                    self.raised.labels(scope, a.alarm).inc()
            for name, what in before.keys() - now.keys():
                self.firing.remove(scope, name, what)
            for name, what in now:
                self.firing.labels(scope, name, what).set(1)
            self._by_scope[scope] = now
            totals = Counter(a.alarm for s in self._by_scope.values() for a in s.values())
            for name in ALARMS:
                self.counts.labels(name).set(totals[name])

    def current(self) -> list[dict[str, Any]]:
        with self._lock:
            return [a.to_dict() for s in sorted(self._by_scope)
                    for a in sorted(self._by_scope[s].values(), key=lambda a: (a.alarm, a.key))]
