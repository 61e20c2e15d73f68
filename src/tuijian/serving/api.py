"""The HTTP API: routes parse, call the service, and format. No strategy code lives here."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import asdict
from typing import Any

import numpy as np
import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from tuijian import __version__
from tuijian.analytics.cube import last_closed_day
from tuijian.display.builder import DEFAULT_TEMPLATE, build_creative, load_templates
from tuijian.jobs.push import push_batch
from tuijian.serving import dashboard_page, experiments_page, pages, web
from tuijian.serving.alarms_api import alarms_router
from tuijian.serving.analytics_api import analytics_router
from tuijian.serving.auth import Scope, require
from tuijian.serving.errors import ErrorOut, RequestError, error_body
from tuijian.serving.experiments_api import experiments_router
from tuijian.serving.protection import Protection
from tuijian.serving.schemas import (
    EventResult,
    EventsIn,
    EventsOut,
    ItemsIn,
    PushIn,
    RecommendIn,
    RecommendOut,
    UpsertOut,
    UsersIn,
)
from tuijian.serving.service import Service
from tuijian.serving.strategies_api import strategies_router

log = logging.getLogger(__name__)
MODEL_POLL_S = 5.0
EXPERIMENT_POLL_S = 1.0
FEATURES_SYNC_S = 1.0
SPOOL_FORWARD_S = 1.0
ALARM_CHECK_S = 60.0
# what the framework's refusals were about, by status
FRAMEWORK_FIELDS = {400: "body", 404: "path", 405: "method", 413: "body", 415: "body"}
# what cluster probes call: liveness (the process answers) and readiness (it can serve)
PROBE_PATHS = frozenset({"/healthz", "/readyz"})


def create_app(service: Service, rebuild: bool = True, consume: bool = True) -> FastAPI:
    """The HTTP app. `rebuild`: run the background refresh loops; `consume`: with an event
    stream configured, also run the ingest worker in this process (role `all`)."""
    creatives = load_templates()  # validated once: a bad template file fails startup, here

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(rebuild_loop(service)) if rebuild else None
        poll = asyncio.create_task(experiments_loop(service))
        loops = [asyncio.create_task(_alarms_loop(service)),
                 asyncio.create_task(_cube_loop(service))] if rebuild else []
        if consume and service.event_stream is not None:
            loops.append(asyncio.create_task(_stream_loop(service)))
        if service.shared is not None:  # follow items and users other replicas upserted
            loops.append(asyncio.create_task(_every(
                FEATURES_SYNC_S, service.sync_features,
                "following the shared feature centers failed; retrying")))
        if service.event_stream is not None:  # what was spooled while the broker was down
            loops.append(asyncio.create_task(_every(
                SPOOL_FORWARD_S, service.event_stream.forward,
                "forwarding the event spool failed; retrying")))
        yield
        poll.cancel()
        for loop in loops:
            loop.cancel()
        if task is not None:
            task.cancel()
        for remote in (service.pipeline.recall_remote, service.pipeline.rank_remote):
            if remote is not None:
                await remote.close()
        service.exposures.flush()

    app = FastAPI(
        title="Tuijian", version=__version__, lifespan=lifespan,
        description="Recommendations for marketplaces: recall → rank → rules → display.",
        responses={422: {"model": ErrorOut, "description": "Invalid request: each offending "
                                                           "field named"}},
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        detail = []
        for err in exc.errors():
            loc = [str(p) for p in err["loc"] if p not in ("body", "query", "path")]
            if err["type"] == "json_invalid":
                loc = []  # the position of a JSON syntax error is not a field
            detail.append((".".join(loc) or "body", str(err["msg"])))
        return _error(422, "invalid request", detail)

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError) -> Response:
        # a backend that is down: retry soon (as the load shedder says), not a client error
        headers = {"Retry-After": "1"} if exc.status == 503 else None
        return _error(exc.status, exc.message, [(exc.field, exc.message)], headers)

    @app.exception_handler(StarletteHTTPException)
    async def _framework_error(request: Request, exc: StarletteHTTPException) -> Response:
        """The framework's own refusals (no such route, method, an unreadable body) in the
        same shape, naming what was wrong with the request."""
        field = FRAMEWORK_FIELDS.get(exc.status_code, "request")
        return _error(exc.status_code, str(exc.detail), [(field, str(exc.detail))],
                      exc.headers)

    app.add_middleware(Protection, settings=service.settings, metrics=service.metrics)
    read = [Depends(require(service.settings, Scope.READ))]
    ingest = [Depends(require(service.settings, Scope.INGEST))]
    admin = [Depends(require(service.settings, Scope.ADMIN))]

    @app.post("/v1/recommend", response_model=RecommendOut, tags=["recommend"],
              dependencies=read)
    async def recommend(body: RecommendIn) -> Response:
        rec = await service.pipeline.recommend(body.to_request(time.time()))
        ids = rec.stage_ids
        # RecommendOut's fields, written by orjson: the answer is built here from typed parts,
        # and validating it again as a model cost more than the rest of the framework
        return Response(orjson.dumps({
            "exposure_id": rec.exposure_id, "tracking": rec.tracking, "scene": rec.scene,
            "stage_ids": {"recall": ids.recall, "rank": ids.rank, "rule": ids.rule,
                          "display": ids.display},
            "items": rec.items, "degraded": rec.degraded,
            "next_page_token": rec.next_page_token, "relaxed": rec.notes.get("relaxed"),
            "rules": rec.rules, "display": rec.display,
            "experiments": {t.layer if t.layer != "launch" else f"launch.{t.experiment}":
                            {"experiment": t.experiment, "variant": t.variant}
                            for t in ids.experiments},
            "params": ids.params,
        }, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")

    @app.post("/v1/events", response_model=EventsOut, tags=["events"], dependencies=ingest)
    async def events(body: EventsIn) -> EventsOut:
        now = time.time()
        results = await service.ingest([e.to_event(now) for e in body.events])
        return EventsOut(results=[
            EventResult(event_id=r.event_id, status=r.status.value, reason=r.reason)
            for r in results
        ])

    # after the hot routes, which are matched first; reads are open to read keys, and the
    # experiment router checks admin on its writes itself
    app.include_router(experiments_router(service), dependencies=read)
    app.include_router(analytics_router(service), dependencies=read)
    app.include_router(alarms_router(service), dependencies=read)
    app.include_router(strategies_router(service), dependencies=admin)

    @app.put("/v1/items", response_model=UpsertOut, tags=["catalog"], dependencies=admin)
    def put_items(body: ItemsIn) -> UpsertOut:
        now = time.time()
        _check_embeddings(body, service.pipeline.creatives.embedding_weights)
        upserted = service.upsert_items([i.row(now) for i in body.items])
        for item in body.items:
            for image in item.images:
                if image.embedding is not None:
                    service.pipeline.creatives.register_embedding(
                        item.item_id, image.id, np.asarray(image.embedding))
        return UpsertOut(upserted=upserted)

    @app.put("/v1/users", response_model=UpsertOut, tags=["catalog"], dependencies=admin)
    def put_users(body: UsersIn) -> UpsertOut:
        return UpsertOut(upserted=service.upsert_users([u.row() for u in body.users]))

    @app.get("/v1/items/{item_id}", tags=["catalog"], dependencies=read)
    def get_item(item_id: int) -> dict[str, Any]:
        pos = service.store.position(item_id)
        if pos < 0:
            raise RequestError("item_id", f"unknown item {item_id}", 404)
        return pages.item_public(service.store.record(pos))

    @app.get("/v1/items/{item_id}/creative.png", tags=["catalog"], dependencies=read,
             responses={200: {"content": {"image/png": {}}}})
    def get_creative(item_id: int, template: str = DEFAULT_TEMPLATE) -> Response:
        """A generated listing image (PNG) for an item, e.g. one without photos."""
        if template not in creatives:
            raise RequestError("template", f"unknown template {template!r} "
                                           f"(known: {', '.join(creatives)})")
        pos = service.store.position(item_id)
        if pos < 0:
            raise RequestError("item_id", f"unknown item {item_id}", 404)
        png = build_creative(service.store.record(pos), creatives[template])
        return Response(png, media_type="image/png")

    @app.get("/v1/users/{user_id}", tags=["catalog"], dependencies=read)
    def get_user(user_id: str) -> dict[str, Any]:
        return pages.profile_public(service, user_id)

    push_lock = asyncio.Lock()  # one push batch at a time: they share the per-day caps

    @app.post("/v1/push", tags=["push"], dependencies=admin)
    async def push(body: PushIn) -> dict[str, int]:
        """Run the push scene in batch inside the server (which owns the event log)."""
        users = service.profiles.table.keys() if body.users == "all" else body.users
        async with push_lock:
            summary = await push_batch(service, users, body.now or time.time())
        return asdict(summary)

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, Any]:
        """Liveness: the process answers."""
        return {"status": "ok", "items": len(service.store), "events": len(service.log)}

    @app.get("/readyz", tags=["ops"])
    def readyz() -> JSONResponse:
        """Readiness: this process can serve. A shared backend that does not answer (the
        stream, the feature store, metadata) is named in `down` and makes the status
        `degraded`, still 200: every replica shares it, so failing readiness would take all
        of them out of the balancer at once, while each degrades (spools events, serves
        stale features, keeps the last strategies) and recovers by itself."""
        down = service.backends_down()
        return JSONResponse({"status": "degraded" if down else "ready", "down": down})

    @app.get("/metrics", tags=["ops"])
    def metrics() -> Response:
        return Response(service.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home() -> str:
        return pages.home(service)

    @app.get("/demo", response_class=HTMLResponse, include_in_schema=False)
    async def demo(user_id: str = "u1", scene: str = "guess_you_like") -> str:
        return await pages.demo(service, user_id, scene)

    @app.get("/experiments", response_class=HTMLResponse, include_in_schema=False)
    def experiments_admin() -> HTMLResponse:
        """The experiment platform's admin page (its script calls /v1/experiments)."""
        return experiments_page.response(service)

    @app.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
    def dashboard() -> HTMLResponse:
        """Effect data in charts: funnel, trends, comparisons, sources, experiments, alarms."""
        return dashboard_page.response()

    app.mount("/static", StaticFiles(directory=web.STATIC_DIR), name="static")

    return app


async def _stream_loop(service: Service) -> None:
    """The ingest worker: stream → event log (fsynced) → acknowledgement, trimming what every
    group has acknowledged now and then. A broker outage is retried, never fatal."""
    worker = service.stream_worker()
    steps = 0
    while True:
        try:
            await worker.step()
            steps += 1
            if steps % 100 == 0:
                await asyncio.to_thread(worker.stream.trim)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("stream ingest failed; retrying")
            await asyncio.sleep(1.0)


async def _every(seconds: float, work: Callable[[], object], failure: str) -> None:
    """Run blocking `work` off the event loop every `seconds`; a failure is logged and the
    next round tries again (a backend that is down must not end the loop)."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await asyncio.to_thread(work)
        except Exception:
            log.exception(failure)


async def experiments_loop(service: Service) -> None:
    """Pick up strategy and experiment changes made anywhere (page, CLI, another replica)
    within about a second: one indexed read each per poll, a reload only when a revision
    moved."""
    while True:
        await asyncio.sleep(EXPERIMENT_POLL_S)
        try:
            await asyncio.to_thread(service.live_strategies.refresh)
        except Exception:
            log.exception("reading strategies failed; keeping the ones serving")
        try:
            await asyncio.to_thread(service.experiments.refresh)
        except Exception:
            log.exception("reading experiments failed; keeping the current assignment")


async def _cube_loop(service: Service) -> None:
    """The effect-data cube rebuilt at start and every cube_interval_s."""
    while True:
        try:
            res = await asyncio.to_thread(service.build_cube)
            log.info("effect-data cube: %d facts in %.1f s", res.facts, res.seconds)
        except Exception:
            log.exception("building the effect-data cube failed; the old cube stays")
        await asyncio.sleep(service.settings.cube_interval_s)


async def _alarms_loop(service: Service) -> None:
    """The stream's alarm checks every minute; the daily checks once per closed day."""
    checked: dt.date | None = None
    while True:
        try:
            service.alarms.update("stream", await asyncio.to_thread(service.monitor.check))
            day = last_closed_day(time.time())
            if day != checked:
                service.alarms.update("daily", await asyncio.to_thread(service.check_day, day))
                checked = day
        except Exception:
            log.exception("checking tracking alarms failed; the last results stay")
        await asyncio.sleep(ALARM_CHECK_S)


async def rebuild_loop(service: Service) -> None:
    """Reload job artifacts when a new version is published (every few seconds), refresh
    the hot and region lists from live counters (every build_interval_s), and let an attached
    online learner learn what is due (every few seconds)."""
    last_build = time.monotonic()
    while True:
        await asyncio.sleep(MODEL_POLL_S)
        try:
            reloaded = await asyncio.to_thread(service.reload_models)
            if reloaded:
                log.info("reloaded %s", ", ".join(reloaded))
            await asyncio.to_thread(service.stream.fold)
            await asyncio.to_thread(service.stream.evict)
            if time.monotonic() - last_build >= service.settings.build_interval_s:
                last_build = time.monotonic()
                await asyncio.to_thread(service.rebuild_index)
        except Exception:
            log.exception("background refresh failed; keeping the previous state")
        try:  # a live FTRL model learns the exposures whose click delay has passed
            await asyncio.to_thread(service.learn_online)
        except Exception:
            log.exception("online learning failed; the model keeps its weights")


def _error(status: int, message: str, detail: list[tuple[str, str]],
           headers: Mapping[str, str] | None = None) -> Response:
    return Response(error_body(message, detail), status_code=status,
                    media_type="application/json", headers=headers)


def _check_embeddings(body: ItemsIn, weights: np.ndarray | None) -> None:
    """Every image embedding must have the dimension the creative model learns in (set by the
    first one it saw); checked before anything is stored."""
    dim = None if weights is None else len(weights) - 1
    for i, item in enumerate(body.items):
        for j, image in enumerate(item.images):
            if image.embedding is None:
                continue
            if dim is None:
                dim = len(image.embedding)
            elif len(image.embedding) != dim:
                raise RequestError(f"items[{i}].images[{j}].embedding",
                                   f"has {len(image.embedding)} dimensions, expected {dim}",
                                   422)
