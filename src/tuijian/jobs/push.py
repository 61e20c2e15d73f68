"""Push: the same pipeline in batch, sending a notification only when it is worth the
interruption.

A user gets a notification when the best item's score clears the strategy file's threshold,
at most `max_per_user_per_day` times a (local) day, and never in quiet hours. Only the notified
item counts as exposed; its tracking param, carried by the notification, later opens the push
landing list (`scene: push`) with that item first.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import orjson

from tuijian.config import PushSpec
from tuijian.domain import RecommendRequest, Scene
from tuijian.serving.service import Service


@dataclass(slots=True)
class PushSummary:
    users: int = 0
    sent: int = 0
    below_threshold: int = 0
    capped: int = 0
    quiet_hours: int = 0
    empty: int = 0


def in_quiet_hours(now: float, spec: PushSpec) -> bool:
    hour = int((now / 3600 + spec.utc_offset_h) % 24)
    start, end = spec.quiet_hours
    return start <= hour or hour < end if start > end else start <= hour < end


def local_day(now: float, spec: PushSpec) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(now + spec.utc_offset_h * 3600))


async def push_batch(service: Service, users: Sequence[str], now: float,
                     progress: Callable[[int, int], None] | None = None) -> PushSummary:
    """Push to `users` at `now`. Yields to the event loop between users, so a server can run
    it (POST /v1/push) while it keeps answering requests."""
    out = service.settings.data_dir / "push"
    spec = service.strategies.push
    summary = PushSummary(users=len(users))
    if in_quiet_hours(now, spec):
        summary.quiet_hours = len(users)
        return summary
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "state.json"
    day = local_day(now, spec)
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    counts: dict[str, int] = state.get(day, {})
    notes: list[bytes] = []
    for j, user in enumerate(users):
        if j % 20 == 19:
            await asyncio.sleep(0)
        if counts.get(user, 0) >= spec.max_per_user_per_day:
            summary.capped += 1
            continue
        req = RecommendRequest(scene=Scene.PUSH, user_id=user, n=5, now=now)
        rec = await service.pipeline.recommend(req, log_exposures=False)
        if not rec.items:
            summary.empty += 1
            continue
        best = rec.items[0]
        if best["score"] < spec.threshold:
            summary.below_threshold += 1
            continue
        service.pipeline.log_exposures(rec, [0])
        counts[user] = counts.get(user, 0) + 1
        summary.sent += 1
        notes.append(orjson.dumps({
            "user_id": user, "item_id": best["item_id"], "title": best.get("title"),
            "score": best["score"], "tracking": best["tracking"], "ts": now,
        }) + b"\n")
        if progress is not None and (j + 1) % 100 == 0:
            progress(j + 1, len(users))
    with (out / "notifications.jsonl").open("ab") as fh:
        fh.write(b"".join(notes))
    state_path.write_text(json.dumps({day: counts}))
    service.exposures.flush()
    return summary


def run_push(service: Service, users: Sequence[str], now: float | None = None,
             progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Push from a process that owns the service (the CLI without --server)."""
    when = time.time() if now is None else now
    return asdict(asyncio.run(push_batch(service, users, when, progress)))
