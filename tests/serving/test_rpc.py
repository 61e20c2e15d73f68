"""Recall and rank as gRPC services: real servers on free local ports, the real pipeline
calling them, and faults injected in front of the real stages by a server interceptor."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tuijian.domain import RecommendRequest, Scene
from tuijian.serving.api import create_app
from tuijian.serving.pipeline import Recommendation
from tuijian.serving.rpc_client import RankClient, RecallClient
from tuijian.serving.rpc_server import StageServer, start_stage_server
from tuijian.serving.service import Service
from tuijian.v1 import stages_pb2 as pb
from tuijian.v1 import stages_pb2_grpc as pb_grpc

from ..conftest import NOW

Code = grpc.StatusCode


class Faults(grpc.aio.ServerInterceptor):
    """Counts the stage calls; answers the first ones with scripted status codes, and delays
    the others by `delay` seconds before the real stage answers."""

    def __init__(self, codes: Iterable[Code] = (), delay: float = 0.0) -> None:
        self.codes, self.delay, self.calls = list(codes), delay, 0

    async def intercept_service(
            self, continuation: Callable[[Any], Awaitable[grpc.RpcMethodHandler]],
            details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if not details.method.startswith("/tuijian.v1."):
            return handler

        async def behaviour(request: Any, context: grpc.aio.ServicerContext) -> Any:
            self.calls += 1
            if self.codes:
                await context.abort(self.codes.pop(0), "injected")
            await asyncio.sleep(self.delay)
            return await handler.unary_unary(request, context)

        return grpc.unary_unary_rpc_method_handler(
            behaviour, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)


Serve = Callable[..., Awaitable[StageServer]]


@pytest.fixture
async def serve(service: Service) -> AsyncIterator[Serve]:
    """Starts a stage server over `service` (on a free port, behind `faults` if given) and,
    with `connect`, points the service's pipeline at it; all stopped and closed after."""
    started: list[StageServer] = []
    pipe = service.pipeline

    async def start(role: str, faults: Faults | None = None, connect: bool = True
                    ) -> StageServer:
        server = await start_stage_server(service, role, "127.0.0.1:0", background=False,
                                          interceptors=[faults] if faults else [])
        started.append(server)
        target = f"127.0.0.1:{server.port}"
        if connect and role == "recall":
            pipe.recall_remote = RecallClient(target, service.store)
        elif connect:
            pipe.rank_remote = RankClient(target, service.store)
        return server

    yield start
    for client in (pipe.recall_remote, pipe.rank_remote):
        if client is not None:
            await client.close()
    pipe.recall_remote = pipe.rank_remote = None
    for server in started:
        await server.stop(0)


def _req(scene: Scene = Scene.GUESS_YOU_LIKE, user: str = "u1", n: int = 20, **kw: Any
         ) -> RecommendRequest:
    return RecommendRequest(scene=scene, user_id=user, n=n, now=NOW, **kw)


def _ids(rec: Recommendation) -> list[int]:
    return [i["item_id"] for i in rec.items]


def _budgets(service: Service, recall_s: float, rank_s: float) -> None:
    for strat in service.strategies.recall.values():
        strat.budget_ms = recall_s * 1000
        for spec in strat.sources:  # no source may miss its budget in one run only
            spec.budget_ms = min(spec.budget_ms * 100, strat.budget_ms)
    for rank in service.strategies.rank.values():
        rank.budget_ms = rank_s * 1000


async def test_remote_stages_serve_what_the_process_serves(
        service: Service, serve: Serve) -> None:
    """Both servers run over this same service, so every difference is the wire's."""
    _budgets(service, 5.0, 5.0)
    pipe = service.pipeline
    anchor = int(service.store.column("item_id")[5])
    note = await pipe.recommend(_req(Scene.PUSH, n=1), log_exposures=False)
    requests = [
        _req(n=30), _req(user="u7", n=10), _req(Scene.FEED, user="u3"),
        _req(Scene.DETAIL_RELATED, n=10, item_id=anchor),
        _req(Scene.SEARCH_FALLBACK, user="nobody", city="Beijing",
             filters={"line": 0, "rooms": 3, "price_max": 2500.0, "district": 0}),
        _req(Scene.PUSH, n=10, tracking=note.item_params[0]),
    ]
    local = [await pipe.recommend(r, log_exposures=False) for r in requests]
    calls = {"recall": Faults(), "rank": Faults()}
    for role, counter in calls.items():
        await serve(role, counter)
    for req, here in zip(requests, local, strict=True):
        there = await pipe.recommend(req, log_exposures=False)
        assert _ids(there) == _ids(here), req.scene
        assert there.degraded == here.degraded and there.notes == here.notes, req.scene
        assert [i["source"] for i in there.items] == [i["source"] for i in here.items]
        assert [i["sources"] for i in there.items] == [i["sources"] for i in here.items]
    assert calls["recall"].calls == calls["rank"].calls == len(requests)
    assert local[4].notes["relaxed"]  # the search's notes came back over the wire


async def test_a_stopped_recall_service_serves_the_hot_list(
        service: Service, serve: Serve) -> None:
    await (await serve("recall")).stop(0)
    app = create_app(service, rebuild=False, consume=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as http:
        r = await http.post("/v1/recommend",
                            json={"scene": "guess_you_like", "user_id": "u1", "n": 10})
        metrics = (await http.get("/metrics")).text
    assert r.status_code == 200, r.text
    body = r.json()
    assert "recall" in body["degraded"]
    assert len(body["items"]) == 10 and {i["source"] for i in body["items"]} == {"fallback"}
    assert 'tuijian_degradations_total{reason="error",stage="recall"} 1.0' in metrics


@pytest.mark.parametrize("stage", ["recall", "rank"])
async def test_a_slow_stage_misses_its_deadline_and_degrades(
        service: Service, serve: Serve, stage: str) -> None:
    _budgets(service, 0.2, 0.2)
    slow = Faults(delay=3.0)
    await serve(stage, slow)
    t0 = time.perf_counter()
    rec = await service.pipeline.recommend(_req(n=10))
    assert time.perf_counter() - t0 < 1.5  # not the server's 3 s
    assert rec.timings[stage] < 0.2 + 0.15
    assert stage in rec.degraded and len(rec.items) == 10
    # recall's failure serves the hot list; rank's keeps the recall that did answer
    assert ({i["source"] for i in rec.items} == {"fallback"}) is (stage == "recall")
    text = service.metrics.render().decode()
    assert f'tuijian_degradations_total{{reason="timeout",stage="{stage}"}} 1.0' in text
    assert slow.calls == 1  # a deadline is not retried


@pytest.mark.parametrize(("codes", "calls", "degraded"), [
    ([Code.UNAVAILABLE], 2, False),  # one retry, and it answered
    ([Code.UNAVAILABLE, Code.UNAVAILABLE], 2, True),  # at most one retry
    ([Code.INTERNAL], 1, True),  # not retried: only UNAVAILABLE is
    ([Code.RESOURCE_EXHAUSTED], 1, True),
])
async def test_only_unavailable_is_retried_and_only_once(
        service: Service, serve: Serve, codes: list[Code], calls: int, degraded: bool) -> None:
    _budgets(service, 2.0, 2.0)
    faults = Faults(codes)
    await serve("rank", faults)
    rec = await service.pipeline.recommend(_req(n=10), log_exposures=False)
    assert faults.calls == calls
    assert ("rank" in rec.degraded) is degraded


async def test_health_is_serving_until_shutdown_and_bad_calls_name_the_field(
        serve: Serve) -> None:
    server = await serve("recall", connect=False)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", "tuijian.v1.RecallService"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=name))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, name

        stub = pb_grpc.RecallServiceStub(channel)
        ctx = pb.RequestContext(scene="guess_you_like", user_id="u1", n=5, now=NOW, city=-1)
        reply = await stub.Recall(pb.RecallRequest(context=ctx, recall_id="r_default"))
        assert len(reply.candidates.item_ids) >= 5
        for request, field in (
                (pb.RecallRequest(context=ctx, recall_id="nope"), "recall_id"),
                (pb.RecallRequest(context=pb.RequestContext(scene="x", n=5),
                                  recall_id="r_default"), "context.scene"),
                (pb.RecallRequest(context=ctx, recall_id="r_default", pinned_item_id=-7),
                 "pinned_item_id")):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Recall(request)
            assert err.value.code() == Code.INVALID_ARGUMENT
            assert err.value.details().startswith(f"{field}:"), err.value.details()

        await server.health.enter_graceful_shutdown()
        reply = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
