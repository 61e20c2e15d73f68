"""Connections to the Redis server behind the scale-out backends, from one URL.

`redis://HOST:PORT/DB?prefix=NAME`: every key a backend writes starts with `NAME:` (default
`tj`), so several deployments (or test runs) can share one server without colliding.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit, urlunsplit

import redis

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
