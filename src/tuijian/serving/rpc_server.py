"""The recall and rank roles: one stage of the pipeline served over gRPC (grpc.aio).

A stage server is a whole Service (same Settings, same data, same strategy file), so the
stage runs the very code the in-process pipeline runs (`Pipeline.recall_stage`,
`Pipeline.rank_stage`). It reports SERVING on grpc.health.v1 from the moment it listens,
which is after everything has loaded, and NOT_SERVING once it begins to shut down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from tuijian.data.items import ItemFeatureCenter
from tuijian.domain import StageIds
from tuijian.serving import rpc_wire as wire
from tuijian.serving.api import experiments_loop, rebuild_loop
from tuijian.serving.service import Service
from tuijian.v1 import stages_pb2 as pb
from tuijian.v1 import stages_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)
STAGE_ROLES = {"recall": "tuijian.v1.RecallService", "rank": "tuijian.v1.RankService"}
DEFAULT_PORTS = {"recall": 50051, "rank": 50052}


class _Stage:
    def __init__(self, service: Service) -> None:
        self.service = service

    @property
    def store(self) -> ItemFeatureCenter:
        return self.service.store

    async def known(self, stage: str, sid: str, context: grpc.aio.ServicerContext) -> None:
        """An id this replica lacks may be an experiment variant created since its last
        poll: re-read the experiments once before refusing it."""
        if sid in getattr(self.service.strategies, stage):
            return
        await asyncio.to_thread(self.service.experiments.refresh)
        if sid not in getattr(self.service.strategies, stage):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"{stage}_id: unknown {stage} id {sid!r}")

    def positions(self, ids: Sequence[int], what: str) -> np.ndarray:
        idx = wire.positions(self.store, ids)
        if (idx < 0).any():
            raise wire.WireError(f"{what}: {int((idx < 0).sum())} unknown items, e.g. "
                                 f"{ids[int(np.argmax(idx < 0))]}")
        return idx


class RecallServicer(_Stage, pb_grpc.RecallServiceServicer):
    async def Recall(self, request: pb.RecallRequest, context: grpc.aio.ServicerContext
                     ) -> pb.RecallResponse:
        await self.known("recall", request.recall_id, context)
        pipeline = self.service.pipeline
        try:
            ctx = wire.context_from_message(
                request.context, pipeline.profiles.get(request.context.user_id), self.store)
            pinned = (self.positions([request.pinned_item_id], "pinned_item_id")[0]
                      if request.pinned_item_id else -1)
            seen = wire.positions(self.store, request.seen_item_ids)  # unknown: nothing to ban
            shown = wire.positions(self.store, request.shown_item_ids)
        except wire.WireError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        degraded: list[str] = []
        cands = await pipeline.recall_stage(ctx, request.recall_id, seen, int(pinned), shown,
                                            degraded, {})
        return pb.RecallResponse(candidates=wire.candidates_message(cands, self.store),
                                 degraded=degraded, notes_json=wire.notes_json(ctx.notes))


class RankServicer(_Stage, pb_grpc.RankServiceServicer):
    async def Rank(self, request: pb.RankRequest, context: grpc.aio.ServicerContext
                   ) -> pb.RankResponse:
        await self.known("recall", request.recall_id, context)
        await self.known("rank", request.rank_id, context)
        pipeline = self.service.pipeline
        try:
            ctx = wire.context_from_message(
                request.context, pipeline.profiles.get(request.context.user_id), self.store)
            cands = wire.candidates_from_message(request.candidates, self.store)
            self.positions(request.candidates.item_ids, "candidates.item_ids")
        except wire.WireError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        ids = StageIds(request.recall_id, request.rank_id, "", "")
        # a ranker that raises ends the call with UNKNOWN: the caller keeps its recall order
        scores, order, notes = pipeline.rank_stage(cands, ctx.request, ctx.profile, ids)
        return pb.RankResponse(scores=scores.tolist(), order=order.tolist(), degraded=notes)


SERVICERS = {"recall": (RecallServicer, pb_grpc.add_RecallServiceServicer_to_server),
             "rank": (RankServicer, pb_grpc.add_RankServiceServicer_to_server)}


@dataclass
class StageServer:
    server: grpc.aio.Server
    health: health_aio.HealthServicer
    port: int
    loops: list[asyncio.Task[None]] = field(default_factory=list)

    async def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING first (probes and balancers drain it), then finish in-flight calls
        for up to `grace` seconds."""
        await self.health.enter_graceful_shutdown()
        for task in self.loops:
            task.cancel()
        await self.server.stop(grace)


async def start_stage_server(
        service: Service, role: str, address: str, background: bool = True,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = ()) -> StageServer:
    """Listen on `address` (HOST:PORT; port 0 picks a free one) with the role's stage and
    grpc.health.v1. `background`: also follow new models and experiments as `all` does."""
    if role not in SERVICERS:
        raise ValueError(f"role: expected one of {', '.join(SERVICERS)}, not {role!r}")
    server = grpc.aio.server(interceptors=list(interceptors))
    servicer, add = SERVICERS[role]
    add(servicer(service), server)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = server.add_insecure_port(address)
    await server.start()
    for name in ("", STAGE_ROLES[role]):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    loops = ([asyncio.create_task(rebuild_loop(service)),
              asyncio.create_task(experiments_loop(service))] if background else [])
    return StageServer(server, health, port, loops)


async def serve_stage(service: Service, role: str, address: str, grace: float = 20.0) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully (Kubernetes waits
    terminationGracePeriodSeconds before it kills)."""
    stage = await start_stage_server(service, role, address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("%s server shutting down", role)
    await stage.stop(grace)
