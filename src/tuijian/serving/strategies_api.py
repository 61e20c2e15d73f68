"""The strategies' admin API (admin key): read every stored strategy, replace one (validated
as the strategy file is; 422 names the field), read its audit trail."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query
from pydantic import BaseModel

from tuijian.config import ConfigError
from tuijian.serving.errors import RequestError
from tuijian.serving.service import Service
from tuijian.strategies.store import StrategyEntry


class StrategyOut(BaseModel):
    stage: str
    id: str
    version: int
    body: dict[str, Any]
    updated_at: float
    actor: str


def _out(e: StrategyEntry) -> StrategyOut:
    return StrategyOut(stage=e.stage, id=e.sid, version=e.version, body=e.body,
                       updated_at=e.updated_at, actor=e.actor)


def strategies_router(service: Service) -> APIRouter:
    router = APIRouter(prefix="/v1/admin/strategies", tags=["strategies"])
    live = service.live_strategies

    @router.get("")
    def list_strategies() -> list[StrategyOut]:
        return [_out(e) for e in live.entries()]

    @router.get("/{stage}/{sid}")
    def get(stage: str, sid: str) -> StrategyOut:
        return _out(live.get(stage, sid))

    @router.put("/{stage}/{sid}")
    def put(stage: str, sid: str, body: Annotated[dict[str, Any], Body()],
            x_actor: Annotated[str | None, Header(max_length=64)] = None,
            if_match: Annotated[int | None, Header(ge=0)] = None) -> StrategyOut:
        """Create or replace a strategy; it serves within seconds on every replica. With
        `If-Match: VERSION`, only if VERSION is still the stored one (409 otherwise)."""
        try:
            entry = live.put(stage, sid, body, f"admin:{x_actor}" if x_actor else "admin",
                             if_match)
        except ConfigError as exc:
            raise RequestError(exc.field or "body", str(exc), 422) from None
        return _out(entry)

    @router.get("/{stage}/{sid}/audit")
    def audit(stage: str, sid: str, limit: Annotated[int, Query(gt=0, le=1000)] = 200
              ) -> list[dict[str, Any]]:
        live.get(stage, sid)
        return [asdict(a) for a in live.audit(stage, sid, limit)]

    return router
