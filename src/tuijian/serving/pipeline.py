"""The one orchestration every scene goes through.

scene → user profile → stage ids → recall (async fan-out, budgets) → rank → rules → display →
tracking params → exposure logged. Every stage degrades instead of failing: a late or broken
source is skipped, a failing ranker falls back to the recall order, a failing rule is skipped,
and a request nothing else can serve gets the cached hot list.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import types
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from tuijian.config import DisplayStrategy, RankStrategy, RecallStrategy, StrategyFile
from tuijian.data.exposures import ExposureWriter
from tuijian.data.users import TAG_FIELDS, UserProfile, UserProfileStore
from tuijian.data.vocab import CITY_NAMES
from tuijian.display.creatives import CreativeChooser
from tuijian.display.render import IMAGE_STYLES, item_styles, render_items
from tuijian.display.tracking import TrackingCodec, TrackingError, TrackingParam
from tuijian.domain import (
    Candidates,
    Event,
    EventType,
    FloatArray,
    IntArray,
    RecommendRequest,
    Scene,
    StageIds,
)
from tuijian.experiments.assignment import Assigner, DefaultAssigner
from tuijian.rank.base import ModelLookup, RankContext, Ranker, no_models
from tuijian.rank.features.featureset import Raw
from tuijian.rank.features.marketplace import ServingContext, online_inputs, snapshot
from tuijian.rank.online import OnlineLearner
from tuijian.rank.registry import RANKERS
from tuijian.recall.base import Catalog, RecallContext, RecallSource
from tuijian.recall.fusion import exclude, fuse, keep_eligible
from tuijian.recall.registry import SOURCE_CODE, SOURCE_NAMES, SOURCES
from tuijian.rules.base import Rule, RuleContext, RuleReport
from tuijian.rules.chain import rule_chain
from tuijian.rules.spec import RuleStrategy
from tuijian.serving.errors import RequestError
from tuijian.serving.metrics import Metrics
from tuijian.serving.sessions import FeedSessions

if TYPE_CHECKING:
    from tuijian.serving.rpc_client import RankClient, RecallClient

log = logging.getLogger(__name__)
# a ranked stage's answer: one score per candidate, the order, and the ranker's degradations
Ranked = tuple[FloatArray, npt.NDArray[np.intp], list[str]]
_SOURCES_BY_CODE = sorted(SOURCE_NAMES.items())
# a recall source's answer: item indexes and their scores, best first
SourceOut = tuple[IntArray, FloatArray]


@types.coroutine
def _resumed(coro: Coroutine[Any, Any, SourceOut], waits_on: Any
             ) -> Generator[Any, Any, SourceOut]:
    """The rest of a coroutine that was stepped by hand (see `Pipeline._run_source`) and is
    waiting on `waits_on`: what the event loop sends or throws in (a wake-up, a cancellation)
    goes on to it, as `await` would have passed it. Python 3.12's eager tasks do this; 3.11
    has none."""
    while True:
        try:
            try:
                sent = yield waits_on
            except BaseException as exc:
                waits_on = coro.throw(exc)
            else:
                waits_on = coro.send(sent)
        except StopIteration as done:
            return cast(SourceOut, done.value)


@dataclass(slots=True)
class Recommendation:
    exposure_id: str
    tracking: str
    stage_ids: StageIds
    items: list[dict[str, Any]]
    cands: Candidates
    user_id: str
    scene: Scene
    platform: str
    ts: float
    degraded: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)
    next_page_token: str | None = None
    item_params: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    rules: dict[str, dict[str, int]] = field(default_factory=dict)  # what each rule changed
    display: dict[str, Any] = field(default_factory=dict)  # the style the client renders
    creatives: list[str | None] = field(default_factory=list)  # the photo shown per position
    slot: str = ""  # the client placement (the scene unless the request named one)
    # the profile the list was made for (its features are logged with the exposures)
    profile: UserProfile | None = None


class Pipeline:
    # set by Service.attach_online_learner: learns a live FTRL model from logged exposures
    online_learner: OnlineLearner | None = None
    # set by Service when TUIJIAN_RECALL_URL / TUIJIAN_RANK_URL name remote stages
    recall_remote: RecallClient | None = None
    rank_remote: RankClient | None = None

    def __init__(
        self,
        catalog: Catalog,
        profiles: UserProfileStore,
        strategies: StrategyFile,
        codec: TrackingCodec,
        exposures: ExposureWriter | None,
        metrics: Metrics,
        assigner: Assigner | None = None,
    ) -> None:
        self.catalog, self.profiles, self.strategies = catalog, profiles, strategies
        self.codec, self.exposures, self.metrics = codec, exposures, metrics
        self.assigner = assigner or DefaultAssigner(strategies)
        self.sessions = FeedSessions()
        # which photo of an item gets clicks; fed by logged exposures and ingested clicks
        self.creatives = CreativeChooser()
        # deployed ranking models by name; the service points it at its live model registry
        self.model_lookup: ModelLookup = no_models
        # the backends serving stale data now (e.g. "features" while the shared Redis is down),
        # reported in each answer's `degraded`; the service points it at its breakers
        self.stale_backends: Callable[[], list[str]] = list
        self.sources: dict[tuple[str, int], RecallSource] = {}
        self.rankers: dict[str, Ranker] = {}
        self.rules: dict[str, list[Rule]] = {}
        for stage in ("recall", "rank", "rule"):
            for sid, strategy in getattr(strategies, stage).items():
                self.add_strategy(stage, sid, strategy)

    def add_strategy(self, stage: str, sid: str, strategy: BaseModel) -> None:
        """Make a stage id servable: the strategy file's own at start, and the derived ones
        of experiment variants that override a strategy's settings as they appear."""
        getattr(self.strategies, stage)[sid] = strategy
        if isinstance(strategy, RecallStrategy):
            for i, spec in enumerate(strategy.sources):
                self.sources[(sid, i)] = SOURCES[spec.name](self.catalog, spec.params)
        elif isinstance(strategy, RankStrategy):
            self.rankers[sid] = RANKERS[strategy.ranker](strategy.params)
        elif isinstance(strategy, RuleStrategy):
            self.rules[sid] = rule_chain(strategy)

    async def recommend(self, req: RecommendRequest, log_exposures: bool = True
                        ) -> Recommendation:
        t0 = time.perf_counter()
        ids = self.assigner.assign(req)
        for t in ids.experiments:
            self.metrics.experiment_requests.labels(str(t.experiment), t.variant).inc()
        profile = self.profiles.get(req.user_id)
        degraded: list[str] = []
        timings: dict[str, float] = {}
        reports: dict[str, dict[str, int]] = {}
        ctx = self._context(req, profile)
        pinned = self._pinned(req, ctx)
        page_token = None
        seen = np.empty(0, np.int64)
        if req.scene == Scene.FEED:
            page_token, seen = self.sessions.open(req.page_token, req.user_id)
        try:
            cands = await self._recall(ctx, ids, degraded, seen, pinned, timings)
            cands = await self._rank(cands, ctx, profile, ids, degraded, timings)
            cands = self._rules(cands, ids, req.n, req.now, degraded, timings, reports)
        except Exception:  # last resort: never fail a valid request
            log.exception("pipeline failed; serving the cached hot list")
            degraded.append("pipeline")
            self.metrics.degradations.labels("pipeline", "error").inc()
            cands = self._fallback(ctx.city, req.n)
        if pinned >= 0:
            rest = cands.take(np.flatnonzero(cands.idx != pinned))
            first = Candidates.placed(np.array([pinned]),
                                      np.array([float(rest.score.max(initial=1.0))]),
                                      SOURCE_CODE["pinned"])
            cands = first.concat(rest)
        cands = cands.take(np.arange(min(req.n, len(cands))))
        degraded.extend(self.stale_backends())
        rec = self._display(req, ids, cands, degraded, ctx.notes, timings)
        rec.rules = reports
        rec.profile = profile
        if page_token is not None:
            self.sessions.add(page_token, cands.idx)
            rec.next_page_token = page_token
        if log_exposures:
            self.log_exposures(rec, range(len(cands)))
        self.metrics.requests.labels(req.scene.value).inc()
        self._observe("total", t0, timings)
        return rec

    def _count_creatives(self, rec: Recommendation, pos: list[int],
                         curve: np.ndarray) -> None:
        """An exposure of a creative counts as its position's share of a first-position one,
        so lower slots don't make a photo look worse than it is."""
        if not rec.creatives:
            return
        top = float(curve[0]) if len(curve) and curve[0] > 0 else 1.0
        for p in pos:
            creative = rec.creatives[p]
            if creative is not None:
                weight = float(curve[min(p, len(curve) - 1)]) / top
                self.creatives.record_exposure(rec.items[p]["item_id"], creative, weight)

    def _observe(self, stage: str, t0: float, timings: dict[str, float]) -> float:
        elapsed = timings[stage] = time.perf_counter() - t0
        self.metrics.stage_seconds.labels(stage).observe(elapsed)
        return elapsed

    def _degrade(self, stage: str, exc: Exception, degraded: list[str]) -> None:
        """A whole stage failed (in process or remote): named in the response, counted by
        reason, with the same labels wherever the stage ran."""
        reason = "timeout" if isinstance(exc, TimeoutError) else "error"
        log.warning("%s stage failed (%s); degrading", stage, reason, exc_info=exc)
        degraded.append(stage)
        self.metrics.degradations.labels(stage, reason).inc()

    def _fallback(self, city: int, n: int) -> Candidates:
        """The cached hot list of the city (or of everywhere): the answer of last resort."""
        index = self.catalog.index
        hot = index.city_list(city)[:n]
        return Candidates.placed(hot, index.hot[hot], SOURCE_CODE["fallback"])

    def log_exposures(self, rec: Recommendation, positions: range | list[int]) -> None:
        """Record that these positions were shown: event log, counters, user's shown set."""
        pos = list(positions)
        if not pos:
            return
        idx = rec.cands.idx[pos]
        raw = online_inputs(
            self.catalog.store, self.profiles.table,
            ServingContext(rec.profile or self.profiles.get(rec.user_id), rec.scene.value,
                           rec.platform, rec.ts),
            rec.cands.take(np.asarray(pos)), np.asarray(pos, np.int64))
        logged = snapshot(raw, range(len(pos)))
        if self.online_learner is not None:
            try:
                self.online_learner.add_exposures(
                    rec.exposure_id, [rec.items[p]["item_id"] for p in pos], raw)
            except Exception:  # online learning must never cost the exposure log
                log.exception("online learner rejected exposure %s", rec.exposure_id)
        self.catalog.store.add_counts(idx, "exposures")
        curve = self.catalog.index.position_ctr
        self._count_creatives(rec, pos, curve)
        self.catalog.store.add_counts(
            idx, "expected_clicks", curve[np.minimum(pos, curve.shape[0] - 1)])
        self.profiles.record_exposures(rec.user_id, idx)
        self.profiles.count_exposures(rec.user_id, {f: raw[f"item_{f}"] for f in TAG_FIELDS})
        if self.exposures is None:
            return
        ids = rec.stage_ids
        tags = [t.tag for t in ids.experiments] or None
        events = [
            Event(
                event_id=f"{rec.exposure_id}.{p}", type=EventType.EXPOSURE.value,
                user_id=rec.user_id, item_id=rec.items[p]["item_id"], ts=rec.ts,
                tracking=rec.item_params[p], exposure_id=rec.exposure_id, scene=rec.scene.value,
                recall_id=ids.recall, rank_id=ids.rank, rule_id=ids.rule, display_id=ids.display,
                position=p, source=rec.items[p]["source"], platform=rec.platform,
                sources=int(rec.cands.sources[p]), features=features,
                rules=(rec.rules or None) if p == 0 else None,
                creative=rec.creatives[p] if rec.creatives else None,
                experiments=tags, slot=rec.slot,
            )
            for p, features in zip(pos, logged, strict=True)
        ]
        self.exposures.write(events, self._predicted_ctr(ids.rank, raw, events))

    def _predicted_ctr(self, rank_id: str, raw: Raw, events: list[Event]
                       ) -> Callable[[], None] | None:
        """What fills the exposures' `pctr`: the rank id's click model's P(click) for the
        shown rows at the positions they were shown in (the ranker scored them all at one
        position: the real ones were not known). Run by the exposure writer's thread, off the
        request path, with the model that served this request."""
        ranker = self.rankers.get(rank_id)
        model = None if ranker is None else ranker.click_model(self.model_lookup)
        if model is None:
            return None

        def fill() -> None:
            for ev, p in zip(events, model.predict(raw), strict=True):
                ev.pctr = float(p)
        return fill

    # -- stages ------------------------------------------------------------------------------

    def _context(self, req: RecommendRequest, profile: UserProfile) -> RecallContext:
        store = self.catalog.store
        city = profile.city
        if req.city is not None:
            city = CITY_NAMES.index(req.city)
        lat = req.lat if req.lat is not None else profile.lat
        lon = req.lon if req.lon is not None else profile.lon
        anchor = -1
        if req.item_id is not None:
            anchor = store.position(req.item_id)
            if anchor < 0:
                raise RequestError("context.item_id", f"unknown item {req.item_id}", 404)
            if req.city is None:
                # the page's listing sets the place: its city, and (unless the request gave a
                # point) its location, not the user's, which may be in another city; a search
                # near a point far from the city's listings grows its rings across the country
                city = int(store.column("city")[anchor])
                if req.lat is None or req.lon is None:
                    at = store.gather(np.array([anchor]), ("lat", "lon"))
                    a_lat, a_lon = float(at["lat"][0]), float(at["lon"][0])
                    finite = np.isfinite(a_lat) and np.isfinite(a_lon)
                    lat, lon = (a_lat, a_lon) if finite else (None, None)
        return RecallContext(req, profile, city, lat, lon, anchor)

    def _pinned(self, req: RecommendRequest, ctx: RecallContext) -> int:
        """A push landing list leads with the notification's item."""
        if req.scene != Scene.PUSH or req.tracking is None:
            return -1
        try:
            p: TrackingParam = self.codec.decode(req.tracking)
        except TrackingError as exc:
            raise RequestError("context.tracking", str(exc), 422) from None
        if p.item_id is None or self.catalog.store.position(p.item_id) < 0:
            raise RequestError("context.tracking", "names no known item", 422)
        ctx.anchor = self.catalog.store.position(p.item_id)
        return ctx.anchor

    async def _recall(self, ctx: RecallContext, ids: StageIds, degraded: list[str],
                      seen: IntArray, pinned: int, timings: dict[str, float]) -> Candidates:
        """The recall stage, here or on the recall service under the stage's deadline; a
        remote failure serves the cached hot list (minus what must never show again)."""
        t0 = time.perf_counter()
        strat = self.strategies.recall[ids.recall]
        budget = strat.budget_ms / 1000.0
        shown = self.shown(ctx.profile)
        if self.recall_remote is None:
            cands = await self.recall_stage(ctx, ids.recall, seen, pinned, shown, degraded,
                                            timings)
            if self._observe("recall", t0, timings) > budget:
                self.metrics.degradations.labels("recall", "timeout").inc()
            return cands
        try:
            cands = await self.recall_remote.recall(ctx, ids, seen, pinned, shown, degraded,
                                                    budget)
        except Exception as exc:
            self._degrade("recall", exc, degraded)
            cands = self._eligible(self._fallback(ctx.city, strat.size), strat, ctx.city,
                                   seen, np.array([ctx.anchor, pinned], np.int64))
        self._observe("recall", t0, timings)
        return cands

    def shown(self, profile: UserProfile) -> IntArray:
        """What the user was shown or clicked, as far as the filters exclude it."""
        f = self.strategies.filters
        parts = [np.empty(0, np.int64)]
        if f.exclude_shown:
            parts.append(profile.shown_array())
        if f.exclude_clicked:
            parts.append(profile.clicked_array())
        return np.concatenate(parts)

    def _eligible(self, c: Candidates, strat: RecallStrategy, city: int,
                  *ban: IntArray) -> Candidates:
        return keep_eligible(exclude(c, *ban), self.catalog.store, strat.filters, city)

    async def recall_stage(self, ctx: RecallContext, recall_id: str, seen: IntArray,
                           pinned: int, shown: IntArray, degraded: list[str],
                           timings: dict[str, float]) -> Candidates:
        """Sources (each under its budget), fusion, filters and the hot-list top-ups: recall
        as this process runs it, for the pipeline and for the recall service alike. `seen`
        never shows again; `shown` (the user's shown and clicked items) yields to the hot
        list when nothing else is left."""
        strat = self.strategies.recall[recall_id]
        runs = [self._run_source(recall_id, i, spec.name, spec.k, spec.budget_ms / 1000.0, ctx,
                                 timings)
                for i, spec in enumerate(strat.sources)]
        waiting = [run for run in runs if isinstance(run, asyncio.Task)]
        if waiting:  # the sources that wait on I/O, concurrently
            await asyncio.gather(*waiting)
        outcomes = [run.result() if isinstance(run, asyncio.Task) else run for run in runs]
        results = []
        ks = []
        for spec, out in zip(strat.sources, outcomes, strict=True):
            if out is None:
                degraded.append(f"recall.{spec.name}")
                continue
            results.append((SOURCE_CODE[spec.name], out[0], out[1]))
            ks.append(spec.k)
        cands = fuse(results, ks, strat.size, strat.fusion)
        banned = [seen, np.array([ctx.anchor, pinned], np.int64), shown]
        filtered = self._eligible(cands, strat, ctx.city, *banned)
        if len(filtered) == 0:
            degraded.append("recall.empty")
            self.metrics.degradations.labels("recall", "empty").inc()
            filtered = self._eligible(self._fallback(ctx.city, strat.size), strat, ctx.city,
                                      *banned[:2])
        elif len(filtered) < ctx.request.n:
            # a heavy user may have seen everything the sources found: top up from deeper in
            # the city's hot list rather than answer short
            self.metrics.degradations.labels("recall", "short").inc()
            extra = self._eligible(self._fallback(ctx.city, 3 * strat.size), strat, ctx.city,
                                   *banned, filtered.idx)
            filtered = filtered.concat(extra.take(np.arange(min(len(extra), strat.size))))
        return filtered

    def _run_source(self, rid: str, i: int, name: str, k: int, budget: float,
                    ctx: RecallContext, timings: dict[str, float]
                    ) -> SourceOut | None | asyncio.Task[SourceOut | None]:
        """One source under its budget: its answer, None when it failed or was late, or the
        task that will tell.

        The source runs here until it first waits on I/O. One that never does (a source
        computing in process: most finish in microseconds) is then done, without the task and
        timeout that cost more than it did and could not have pre-empted it anyway, and is
        timed alone, since its siblings run before or after it; it is skipped if it finished
        late. One that waits goes on in a task of its own, concurrently with the others, and
        is cancelled at its budget (its siblings' CPU time while it waits counts, as it
        delays its answer all the same)."""
        source = self.sources[(rid, i)]
        t0 = time.perf_counter()
        coro = source.recall(ctx, k)
        try:
            waits_on = coro.send(None)
        except StopIteration as done:
            return self._source_done(name, budget, done.value, time.perf_counter() - t0,
                                     timings)
        except Exception:
            self._source_failed(name)
            return None
        return asyncio.create_task(
            self._source_io(name, budget, t0, _resumed(coro, waits_on), timings))

    async def _source_io(self, name: str, budget: float, t0: float,
                         rest: Awaitable[SourceOut], timings: dict[str, float]
                         ) -> SourceOut | None:
        """The rest of a source that waits on I/O, cancelled at its budget."""
        try:
            async with asyncio.timeout(budget - (time.perf_counter() - t0)):
                out = await rest
        except TimeoutError:
            self.metrics.degradations.labels(f"recall.{name}", "timeout").inc()
            return None
        except Exception:
            self._source_failed(name)
            return None
        return self._source_done(name, budget, out, time.perf_counter() - t0, timings)

    def _source_done(self, name: str, budget: float, out: SourceOut, elapsed: float,
                     timings: dict[str, float]) -> SourceOut | None:
        self.metrics.source_seconds.labels(name).observe(elapsed)
        timings[f"source.{name}"] = elapsed
        if elapsed > budget:
            self.metrics.degradations.labels(f"recall.{name}", "timeout").inc()
            return None
        self.metrics.source_hits.labels(name).inc(len(out[0]))
        return out

    def _source_failed(self, name: str) -> None:
        """Log the source's exception (call it while handling one) and count it."""
        log.exception("recall source %s failed", name)
        self.metrics.degradations.labels(f"recall.{name}", "error").inc()

    async def _rank(self, cands: Candidates, ctx: RecallContext, profile: UserProfile,
                    ids: StageIds, degraded: list[str], timings: dict[str, float]
                    ) -> Candidates:
        """The rank stage, here or on the rank service under the stage's deadline; any
        failure keeps the recall order."""
        t0 = time.perf_counter()
        budget = self.strategies.rank[ids.rank].budget_ms / 1000.0
        try:
            if self.rank_remote is None:
                scores, order, notes = self.rank_stage(cands, ctx.request, profile, ids)
            else:
                scores, order, notes = await self.rank_remote.rank(cands, ctx, ids, budget)
            for what in notes:
                degraded.append(what)
                self.metrics.degradations.labels("rank", what.rsplit(".", 1)[-1]).inc()
            cands = cands.rescored(scores).take(order)
        except Exception as exc:
            self._degrade("rank", exc, degraded)
            self._observe("rank", t0, timings)
            return cands
        if self._observe("rank", t0, timings) > budget:
            self.metrics.degradations.labels("rank", "timeout").inc()
        return cands

    def rank_stage(self, cands: Candidates, request: RecommendRequest, profile: UserProfile,
                   ids: StageIds) -> Ranked:
        """Scores and the ranked order as this process computes them, for the pipeline and
        for the rank service alike; raises when the ranker fails."""
        rctx = RankContext(request, profile, self.catalog.store, self.catalog.index.prior_ctr,
                           self.profiles.table, self.model_lookup)
        scores = self.rankers[ids.rank].score(cands, rctx)
        if self.strategies.recall[ids.recall].rank_within_tiers:
            priority = {SOURCE_CODE[s.name]: i for i, s in
                        enumerate(self.strategies.recall[ids.recall].sources)}
            tier = np.array([priority.get(int(c), len(priority)) for c in cands.source])
            order = np.lexsort((-scores, -cands.score, tier))
        else:
            order = np.argsort(-scores, kind="stable")
        return scores, order, rctx.degraded

    def _rules(self, cands: Candidates, ids: StageIds, n: int, now: float, degraded: list[str],
               timings: dict[str, float], reports: dict[str, dict[str, int]]) -> Candidates:
        t0 = time.perf_counter()
        ctx = RuleContext(self.catalog.store, n, now)
        for rule in self.rules[ids.rule]:
            try:
                cands, report = rule.apply(cands, ctx)
            except Exception:
                log.exception("rule %s failed; skipped", rule.name)
                degraded.append(f"rules.{rule.name}")
                self.metrics.degradations.labels("rules", "error").inc()
                continue
            self._report(report, reports)
        self._observe("rules", t0, timings)
        return cands

    def _report(self, report: RuleReport, reports: dict[str, dict[str, int]]) -> None:
        changed = {k: v for k, v in (("removed", report.removed), ("moved", report.moved),
                                     ("added", report.added)) if v}
        for kind, count in changed.items():
            self.metrics.rule_changes.labels(report.rule, kind).inc(count)
        if changed:
            reports[report.rule] = changed

    def _display(self, req: RecommendRequest, ids: StageIds, cands: Candidates,
                 degraded: list[str], notes: dict[str, Any], timings: dict[str, float]
                 ) -> Recommendation:
        t0 = time.perf_counter()
        store = self.catalog.store
        strategy = self.strategies.display[ids.display]
        creatives = self.choose_creatives(cands, strategy)
        items = render_items(cands, store, strategy, creatives)
        exposure_id = uuid.uuid4().hex[:20]
        ts = int(req.now)
        base = TrackingParam(exposure_id, req.scene.value, ids.recall, ids.rank, ids.rule,
                             ids.display, req.user_id, req.platform, ts,
                             experiments=tuple(t.tag for t in ids.experiments),
                             slot=req.slot or req.scene.value)
        item_ids = tuple(it["item_id"] for it in items)
        list_param = dataclasses.replace(base, item_ids=item_ids)
        params = []
        for p, (it, code, mask) in enumerate(zip(items, cands.source.tolist(),
                                                  cands.sources.tolist(), strict=True)):
            it["source"] = SOURCE_NAMES[code]
            it["sources"] = [name for code, name in _SOURCES_BY_CODE if mask >> code & 1]
            params.append(self.codec.encode(
                base.for_item(it["item_id"], p, it["source"], mask, creatives[p])))
            it["tracking"] = params[-1]
        self._observe("display", t0, timings)
        return Recommendation(
            exposure_id, self.codec.encode(list_param), ids, items, cands, req.user_id,
            req.scene, req.platform, req.now, degraded, notes, item_params=params,
            timings=timings, display={"style": strategy.style, "fields": strategy.fields},
            creatives=creatives, slot=req.slot or req.scene.value,
        )

    def choose_creatives(self, cands: Candidates, strategy: DisplayStrategy) -> list[str | None]:
        """The photo each item shows, by the display id's creative policy (None: no photo
        shown, or none to show)."""
        shown = [s in IMAGE_STYLES for s in item_styles(strategy, len(cands))]
        if "image" not in strategy.fields or not any(shown):
            return [None] * len(cands)
        cols = self.catalog.store.gather(cands.idx, ("item_id", "images"))
        lists = [list(v) if v is not None and s else [] for v, s in zip(cols["images"], shown,
                                                                         strict=True)]
        item_ids = cols["item_id"].tolist()
        how = strategy.creative.choose
        if how == "thompson":
            return self.creatives.choose(item_ids, lists)
        if how == "best":
            return [(self.creatives.best(i) or imgs[0]) if imgs else None
                    for i, imgs in zip(item_ids, lists, strict=True)]
        return [imgs[0] if imgs else None for imgs in lists]

