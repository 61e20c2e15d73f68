"""The ceiling for bench_load: one FastAPI route doing the framework's share of a recommendation
and nothing else.

It accepts the same request body at the same path, validates it with a pydantic model, and
answers a pydantic response of the same shape and size (~11 KB for n=20: ids, scores, a
signed-looking tracking param per item, display fields), served by uvicorn exactly as `tuijian
serve` does (one process, default loop and HTTP parser, log level warning). Whatever the
service spends beyond this is recall, rank, rules, display and logging.
"""

from __future__ import annotations

import argparse
import hashlib
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, Field

FIELDS = {"title": "2-bedroom flat near the metro, south-facing, furnished", "price": 3200.0,
          "city": "Beijing", "district": "Chaoyang", "line": "house_rent",
          "category": "whole_rent"}


class BareIn(BaseModel):
    scene: str
    user_id: str | None = None
    device_id: str | None = None
    n: int = Field(20, gt=0, le=200)
    context: dict[str, Any] = Field(default_factory=dict)


class BareItem(BaseModel):
    item_id: int
    score: float
    tracking: str
    source: str
    style: str
    image: str
    fields: dict[str, Any]


class BareOut(BaseModel):
    exposure_id: str
    tracking: str
    scene: str
    stage_ids: dict[str, str]
    items: list[BareItem]
    degraded: list[str]


def _token(*parts: object) -> str:
    """A tracking-param-sized string (the real ones are signed, base64, ~300 chars)."""
    seed = hashlib.blake2b(repr(parts).encode(), digest_size=32).hexdigest()
    return (seed * 5)[:300]


def create_app() -> FastAPI:
    app = FastAPI(title="bare")

    @app.post("/v1/recommend", response_model=BareOut)
    async def recommend(body: BareIn) -> BareOut:
        unit = body.user_id or body.device_id or ""
        return BareOut(
            exposure_id=unit, tracking=_token(unit), scene=body.scene,
            stage_ids={"recall": "r_default", "rank": "rk_rule", "rule": "ru_default",
                       "display": "d_card"},
            items=[BareItem(item_id=i, score=1.0 / (i + 1), tracking=_token(unit, i),
                            source="hot", style="card", image=f"/v1/items/{i}/creative.png",
                            fields=FIELDS) for i in range(body.n)],
            degraded=[])

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")
