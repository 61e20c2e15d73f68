"""API keys by scope: `X-API-Key` is checked against the admin, ingest and read keys.

Admin (experiments, models, items, push) implies the other scopes. In dev mode a request with
no key passes the read and ingest scopes, so the demo and the simulator need no set-up; a wrong
key is refused everywhere, and admin actions always need the admin key.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Annotated

from fastapi import Header

from tuijian.config import Settings
from tuijian.serving.errors import RequestError


class Scope(StrEnum):
    READ = "read"
    INGEST = "ingest"
    ADMIN = "admin"


def scope_of(settings: Settings, key: str) -> Scope | None:
    """The scope a key grants, compared in constant time; None for an unknown key."""
    found = None
    for scope, expected in ((Scope.ADMIN, settings.admin_key),
                            (Scope.INGEST, settings.ingest_key),
                            (Scope.READ, settings.read_key)):
        if hmac.compare_digest(key.encode(), expected.encode()) and found is None:
            found = scope
    return found


def allows(granted: Scope, needed: Scope) -> bool:
    return granted is Scope.ADMIN or granted is needed


def require(settings: Settings, needed: Scope) -> Callable[..., Awaitable[Scope | None]]:
    """A FastAPI dependency that lets a request through only with a key for `needed`."""

    # async although it never awaits: FastAPI runs a plain `def` dependency on its thread
    # pool, a thread hand-off per request for a dictionary lookup
    async def check(x_api_key: Annotated[str | None, Header(max_length=256)] = None
                    ) -> Scope | None:
        if not x_api_key:
            if settings.dev_mode and needed is not Scope.ADMIN:
                return None
            raise RequestError("X-API-Key", f"{needed.value} key required", 401)
        granted = scope_of(settings, x_api_key)
        if granted is None:
            raise RequestError("X-API-Key", "unknown key", 403)
        if not allows(granted, needed):
            raise RequestError("X-API-Key", f"a {granted.value} key cannot {needed.value}", 403)
        return granted

    return check
