"""Admission control in front of every route: load shedding, then a rate limit per client key.

Shedding answers 503 with Retry-After the moment more than `max_inflight` requests are in the
process, instead of queueing them into timeouts: under overload the requests admitted still
meet their latency, and clients back off. The rate limit is a token bucket per client (its
API key, else its address) in this replica; written by hand because it is a few lines on the
request path, where a library's per-request overhead or a Redis round trip would cost more than
the check. Probes and /metrics are never limited: a shedding replica must still say it is alive.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict

from starlette.types import ASGIApp, Receive, Scope, Send

from tuijian.config import Settings
from tuijian.serving.errors import error_body
from tuijian.serving.metrics import Metrics

EXEMPT = frozenset({"/healthz", "/readyz", "/metrics"})
MAX_CLIENTS = 100_000  # buckets kept, least recently seen dropped first
BURST_S = 2.0


class TokenBuckets:
    """`rate` tokens per second per key, holding at most `rate * burst_s`."""

    def __init__(self, rate: float, burst_s: float = BURST_S, max_keys: int = MAX_CLIENTS
                 ) -> None:
        self.rate, self.cap, self.max_keys = rate, max(1.0, rate * burst_s), max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, now: float) -> float:
        """0 if a token was taken, else the seconds until one is available."""
        tokens, last = self._buckets.pop(key, (self.cap, now))
        tokens = min(self.cap, tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait


class Protection:
    """ASGI middleware; one per app, single event loop (no locking needed)."""

    def __init__(self, app: ASGIApp, settings: Settings, metrics: Metrics) -> None:
        self.app = app
        self.max_inflight = settings.max_inflight
        self.buckets = (TokenBuckets(settings.rate_limit_rps) if settings.rate_limit_rps
                        else None)
        self.inflight = 0
        self.refused = metrics.requests_refused
        metrics.requests_inflight.set_function(lambda: self.inflight)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT:
            await self.app(scope, receive, send)
            return
        if self.inflight >= self.max_inflight:
            self.refused.labels("shed").inc()
            await _refuse(send, 503, 1, "overloaded: retry shortly")
            return
        if self.buckets is not None:
            wait = self.buckets.take(_client(scope), time.monotonic())
            if wait > 0:
                self.refused.labels("rate_limited").inc()
                await _refuse(send, 429, math.ceil(wait), "rate limit exceeded for this key")
                return
        self.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1


def _client(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-api-key":
            return "k:" + value.decode("latin-1")
    client = scope.get("client")
    return f"a:{client[0]}" if client else "a:?"


async def _refuse(send: Send, status: int, retry_after: int, message: str) -> None:
    data = error_body(message, [("request", message)])
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
        (b"retry-after", str(retry_after).encode())]})
    await send({"type": "http.response.body", "body": data})
