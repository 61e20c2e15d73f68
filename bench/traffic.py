"""Light recorded traffic for the fault benches: every answer kept with its time and outcome.

Unlike wrk (bench_load), a fault bench needs each request's story (when, which status, which
parts of the answer were degraded, which events were acknowledged), not throughput, so this
is a few Python threads at a modest paced rate; the server keeps most of the machine.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx


@dataclass(slots=True)
class Sample:
    t: float  # monotonic seconds
    kind: str  # "recommend" | "events" | "readyz"
    outcome: str  # the HTTP status, or the exception's class name
    degraded: tuple[str, ...] = ()


@dataclass
class Traffic:
    """Recommendations (and, with `events`, clicks on what was served) against `url` until
    `stop`, `rate` requests per second per thread."""

    url: str
    users: int
    threads: int = 2
    rate: float = 20.0
    events: bool = False
    samples: list[Sample] = field(default_factory=list)
    served: list[tuple[str, int, str]] = field(default_factory=list)  # user, item, tracking
    acked: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)
    _seq: int = 0

    def start(self) -> Traffic:
        targets = [self._recommend] * self.threads + [self._readyz]
        if self.events:
            targets.append(self._post_events)
        self._workers = [threading.Thread(target=t, daemon=True) for t in targets]
        for w in self._workers:
            w.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for w in self._workers:
            w.join()

    def _record(self, kind: str, outcome: str, degraded: tuple[str, ...] = ()) -> None:
        with self._lock:
            self.samples.append(Sample(time.monotonic(), kind, outcome, degraded))

    def _paced(self, kind: str, send: Callable[[httpx.Client], None]) -> None:
        with httpx.Client(base_url=self.url, timeout=10.0) as client:
            while not self._stop.is_set():
                t0 = time.monotonic()
                try:
                    send(client)
                except httpx.HTTPError as exc:
                    self._record(kind, type(exc).__name__)
                self._stop.wait(max(0.0, 1.0 / self.rate - (time.monotonic() - t0)))

    def _recommend(self) -> None:
        rng = random.Random()

        def send(client: httpx.Client) -> None:
            user = f"u{int((self.users + 1) ** rng.random())}"  # zipf-like, as the wrk mix
            r = client.post("/v1/recommend", json={"scene": "guess_you_like",
                                                   "user_id": user, "n": 10})
            degraded: tuple[str, ...] = ()
            if r.status_code == 200:
                body = r.json()
                degraded = tuple(sorted(body["degraded"]))
                with self._lock:
                    self.served.extend((user, i["item_id"], i["tracking"])
                                       for i in body["items"][:2])
                    del self.served[:-500]
            self._record("recommend", str(r.status_code), degraded)

        self._paced("recommend", send)

    def _readyz(self) -> None:
        def send(client: httpx.Client) -> None:
            r = client.get("/readyz")  # 200 while serving; `down` names backends not answering
            down = tuple(sorted(r.json().get("down", []))) if r.status_code == 200 else ()
            self._record("readyz", str(r.status_code), down)

        self._paced("readyz", send)

    def _post_events(self) -> None:
        def send(client: httpx.Client) -> None:
            with self._lock:
                if not self.served:
                    return
                user, item, tracking = random.choice(self.served)
                self._seq += 1
                event_id = f"f{time.time_ns()}-{self._seq}"
            r = client.post("/v1/events", json={"events": [{
                "event_id": event_id, "type": "click", "user_id": user, "item_id": item,
                "tracking": tracking}]})
            if r.status_code == 200 and r.json()["results"][0]["status"] == "accepted":
                with self._lock:
                    self.acked.append(event_id)
            self._record("events", str(r.status_code))

        self._paced("events", send)


def counts(samples: list[Sample], kind: str, t0: float = float("-inf"),
           t1: float = float("inf")) -> dict[str, int]:
    """Outcomes of one kind of request sent in [t0, t1)."""
    return dict(Counter(s.outcome for s in samples if s.kind == kind and t0 <= s.t < t1))


def first_after(samples: list[Sample], t0: float, good: Callable[[Sample], bool]
                ) -> float | None:
    """Seconds from t0 to the first sample after which every sample of its kind is good."""
    after = [s for s in samples if s.t >= t0]
    for j, s in enumerate(after):
        if good(s) and all(good(x) for x in after[j:] if x.kind == s.kind):
            return round(s.t - t0, 2)
    return None
