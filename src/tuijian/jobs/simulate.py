"""Simulated traffic through the real pipeline: requests, behavior, and the events they make.

Simulated users (sampled by their activity) ask for lists in every scene; the behavior model
decides clicks, conversions and dwell from their latent preferences; the events go through the
same ingestion path as HTTP events, tracking params included. The true click probability of
every shown item is written beside the logs (sim/truth-*.parquet), so a model's AUC can later
be compared with the best achievable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tuijian.data import vocab
from tuijian.data.simulator import BehaviorModel
from tuijian.domain import Event, EventType, RecommendRequest, Scene
from tuijian.serving.pipeline import Recommendation
from tuijian.serving.service import Service

SCENE_MIX: tuple[tuple[Scene, float], ...] = (
    (Scene.GUESS_YOU_LIKE, 0.5), (Scene.FEED, 0.2), (Scene.DETAIL_RELATED, 0.15),
    (Scene.SEARCH_FALLBACK, 0.15),
)
SHOWN = 10  # a list's items the simulated user actually looks at
INGEST_EVERY = 25  # requests per ingestion batch


@dataclass(slots=True)
class SimSummary:
    requests: int
    exposures: int
    clicks: int
    conversions: int

    @property
    def ctr(self) -> float:
        return self.clicks / max(self.exposures, 1)


class Simulator:
    def __init__(self, service: Service, generated: Path, seed: int) -> None:
        self.service = service
        items = pq.read_table(generated / "items.parquet")
        users = pq.read_table(generated / "users.parquet")
        self.model = BehaviorModel(items, users, seed)
        self.item_ids = items.column("item_id").to_numpy()
        self.user_ids = users.column("user_id").to_pylist()
        self.platforms = users.column("platform").to_numpy()
        self.user_line = np.argmax(np.stack(
            [users.column(f"pref_{line}").to_numpy() for line in vocab.LINES], axis=1), axis=1)
        self.user_city = users.column("city").to_numpy()
        self.user_band = users.column("price_band_pref").to_numpy()
        prices = items.column("price").to_numpy().astype(np.float64)
        lines = items.column("line").to_numpy()
        # the top price of each (line, price band): what a user's search asks for
        self.band_max = np.array([
            np.nanquantile(prices[lines == li], np.arange(1, 6) / 5) if (lines == li).any()
            else np.full(5, np.inf) for li in range(len(vocab.LINES))
        ])
        activity = users.column("activity").to_numpy().astype(np.float64)
        self.user_p = activity / activity.sum()
        self.rng = np.random.default_rng(seed)
        self.truth: list[pa.Table] = []

    async def run(self, start: float, days: float, requests_per_day: int,
                  progress: Callable[[int, int], None] | None = None) -> SimSummary:
        total = int(days * requests_per_day)
        summary = SimSummary(0, 0, 0, 0)
        pending: list[Event] = []
        scenes = [s for s, _ in SCENE_MIX]
        weights = np.array([w for _, w in SCENE_MIX])
        step = 86400.0 / requests_per_day
        next_day = start + 86400.0
        for r in range(total):
            now = start + r * step
            if now >= next_day:
                self.service.rebuild_index(now)
                next_day += 86400.0
            u = int(self.rng.choice(len(self.user_p), p=self.user_p))
            scene = scenes[int(self.rng.choice(len(scenes), p=weights))]
            rec = await self.service.pipeline.recommend(self._request(u, scene, now))
            pending.extend(self._behave(u, rec, now, summary))
            if (r + 1) % INGEST_EVERY == 0 or r == total - 1:
                self.service.ingest_sync(pending)
                pending = []
                if progress is not None:
                    progress(r + 1, total)
        self.service.exposures.flush()
        self.service.rebuild_index(start + days * 86400.0)
        return summary

    def write_truth(self, out: Path) -> Path | None:
        if not self.truth:
            return None
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"truth-{len(list(out.glob('truth-*.parquet'))):04d}.parquet"
        pq.write_table(pa.concat_tables(self.truth), path)
        return path

    def _request(self, u: int, scene: Scene, now: float) -> RecommendRequest:
        req = RecommendRequest(scene=scene, user_id=self.user_ids[u], n=SHOWN, now=now,
                               platform=vocab.PLATFORMS[int(self.platforms[u])])
        prof = self.service.profiles.get(req.user_id)
        if scene == Scene.DETAIL_RELATED:
            if prof.recent_clicks:
                anchor = prof.recent_clicks[-1]
            else:
                pool = self.service.catalog.index.city_list(int(self.user_city[u]))[:200]
                anchor = int(pool[self.rng.integers(len(pool))])
            req.item_id = int(self.service.store.column("item_id")[anchor])
        elif scene == Scene.SEARCH_FALLBACK:
            line = int(self.user_line[u])
            band = int(self.user_band[u])
            req.filters = {"line": line, "district": prof.district}
            if band < 4:
                req.filters["price_max"] = float(self.band_max[line, band])
        return req

    def _behave(self, u: int, rec: Recommendation, now: float, s: SimSummary) -> list[Event]:
        if not rec.items:
            return []
        ids = np.array([it["item_id"] for it in rec.items], np.int64)
        rows = np.searchsorted(self.item_ids, ids)
        known = (rows < len(self.item_ids)) & (self.item_ids[np.minimum(
            rows, len(self.item_ids) - 1)] == ids)
        pos = np.flatnonzero(known)
        out = self.model.simulate(u, rows[pos], pos, self.rng)
        self.truth.append(pa.table({
            "exposure_id": [rec.exposure_id] * len(pos), "item_id": ids[pos],
            "position": pos, "p_click": out.p_click, "p_convert": out.p_convert,
            "clicked": out.clicked,
        }))
        s.requests += 1
        s.exposures += len(pos)
        events: list[Event] = []
        user = rec.user_id
        for j in np.flatnonzero(out.clicked).tolist():
            p = int(pos[j])
            item, param = int(ids[p]), rec.item_params[p]
            t = now + 1.0 + p
            events.append(Event(f"{rec.exposure_id}-c{p}", EventType.CLICK, user, item, t, param))
            events.append(Event(f"{rec.exposure_id}-d{p}", EventType.DWELL, user, item, t + 5,
                                param, dwell_s=float(out.dwell_s[j])))
            s.clicks += 1
            if out.converted[j]:
                s.conversions += 1
                events.append(Event(f"{rec.exposure_id}-v{p}", EventType.CONVERT, user, item,
                                    t + 10, param, subtype=out.subtype[j]))
        return events


def simulate(service: Service, generated: Path, start: float, days: float,
             requests_per_day: int, seed: int,
             progress: Callable[[int, int], None] | None = None) -> SimSummary:
    sim = Simulator(service, generated, seed)
    summary = asyncio.run(sim.run(start, days, requests_per_day, progress))
    sim.write_truth(service.settings.data_dir / "sim")
    return summary
