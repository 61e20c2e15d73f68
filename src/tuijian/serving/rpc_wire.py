"""Stage records ↔ tuijian.v1 messages, for both ends of a remote recall or rank call.

Items travel as their external ids: dense indexes belong to one process's store, and the
API, recall and rank replicas each open their own. Candidates go column-wise as packed
repeated scalars (300 candidates ≈ 5 KB).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from tuijian.data.items import ItemFeatureCenter
from tuijian.data.users import UserProfile
from tuijian.domain import Candidates, IntArray, RecommendRequest, Scene
from tuijian.recall.base import RecallContext
from tuijian.v1 import stages_pb2 as pb


class WireError(ValueError):
    """A message a stage server cannot serve; the message names the field."""


def item_ids(store: ItemFeatureCenter, idx: IntArray) -> list[int]:
    return store.column("item_id")[idx].tolist()


def positions(store: ItemFeatureCenter, ids: Any) -> IntArray:
    """Dense indexes of external ids; -1 where this store does not know the item."""
    return store.index_of(ids) if len(ids) else np.empty(0, np.int64)


def context_message(ctx: RecallContext, store: ItemFeatureCenter) -> pb.RequestContext:
    req = ctx.request
    return pb.RequestContext(
        scene=req.scene.value, user_id=req.user_id, n=req.n, now=req.now,
        platform=req.platform, city=ctx.city, lat=ctx.lat, lon=ctx.lon,
        anchor_item_id=item_ids(store, np.array([ctx.anchor]))[0] if ctx.anchor >= 0 else 0,
        item_id=req.item_id, filters_json=orjson.dumps(req.filters) if req.filters else b"",
        city_name=req.city, tracking=req.tracking, slot=req.slot, page_token=req.page_token,
    )


def context_from_message(msg: pb.RequestContext, profile: UserProfile,
                         store: ItemFeatureCenter) -> RecallContext:
    """The request as the stage sees it; lat/lon are the API's resolved ones (request's own,
    else the profile's), which is all a stage reads of them."""
    try:
        scene = Scene(msg.scene)
    except ValueError:
        raise WireError(f"context.scene: unknown scene {msg.scene!r}") from None
    if msg.n <= 0:
        raise WireError(f"context.n: {msg.n} is not positive")
    anchor = -1
    if msg.anchor_item_id:
        anchor = store.position(msg.anchor_item_id)
        if anchor < 0:
            raise WireError(f"context.anchor_item_id: unknown item {msg.anchor_item_id}")
    try:
        filters = orjson.loads(msg.filters_json) if msg.filters_json else {}
    except orjson.JSONDecodeError as exc:
        raise WireError(f"context.filters_json: {exc}") from None
    if not isinstance(filters, dict):
        raise WireError("context.filters_json: expected a JSON object")

    def opt(name: str) -> Any:
        return getattr(msg, name) if msg.HasField(name) else None

    lat, lon = opt("lat"), opt("lon")
    req = RecommendRequest(
        scene, msg.user_id, msg.n, msg.now, city=opt("city_name"), lat=lat, lon=lon,
        item_id=opt("item_id"), filters=filters, page_token=opt("page_token"),
        platform=msg.platform, tracking=opt("tracking"), slot=opt("slot"))
    return RecallContext(req, profile, msg.city, lat, lon, anchor)


def candidates_message(cands: Candidates, store: ItemFeatureCenter) -> pb.Candidates:
    return pb.Candidates(item_ids=item_ids(store, cands.idx), scores=cands.score.tolist(),
                         source=cands.source.tolist(), sources=cands.sources.tolist())


def candidates_from_message(msg: pb.Candidates, store: ItemFeatureCenter) -> Candidates:
    """Candidates over this store's indexes; an item it does not know has index -1."""
    n = len(msg.item_ids)
    if not len(msg.scores) == len(msg.source) == len(msg.sources) == n:
        raise WireError(f"candidates: {n} item_ids but {len(msg.scores)} scores, "
                        f"{len(msg.source)} source, {len(msg.sources)} sources")
    return Candidates(positions(store, msg.item_ids), np.array(msg.scores, np.float64),
                      np.array(msg.source, np.int16), np.array(msg.sources, np.int64))


def notes_json(notes: dict[str, Any]) -> bytes:
    return orjson.dumps(notes, option=orjson.OPT_SERIALIZE_NUMPY) if notes else b""


def notes_from_json(raw: bytes) -> dict[str, Any]:
    return orjson.loads(raw) if raw else {}
