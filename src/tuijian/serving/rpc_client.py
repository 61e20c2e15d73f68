"""The API side of a split pipeline: recall and rank called on their gRPC services.

Each call carries the stage's budget as its deadline. Both calls are reads, so gRPC's own
retry policy (the channel's service config) may repeat one once on UNAVAILABLE — a replica
going away, a refused connection — within what is left of that deadline; nothing else is
retried. A failure surfaces as TimeoutError (deadline) or StageError, and the pipeline
degrades exactly as when the stage fails in process.
"""

from __future__ import annotations

import asyncio
import json
import logging

import grpc
import numpy as np

from tuijian.data.items import ItemFeatureCenter
from tuijian.domain import Candidates, IntArray, StageIds
from tuijian.recall.base import RecallContext
from tuijian.serving import rpc_wire as wire
from tuijian.serving.pipeline import Ranked
from tuijian.v1 import stages_pb2 as pb
from tuijian.v1 import stages_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)
SERVICES = ("tuijian.v1.RecallService", "tuijian.v1.RankService")
# gRPC A6 retries: at most one retry (2 attempts), only on UNAVAILABLE, bounded by the deadline
RETRY_POLICY = {
    "maxAttempts": 2,
    "initialBackoff": "0.005s",
    "maxBackoff": "0.02s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
CHANNEL_OPTIONS = (
    ("grpc.enable_retries", 1),
    ("grpc.service_config", json.dumps({"methodConfig": [
        {"name": [{"service": s} for s in SERVICES], "retryPolicy": RETRY_POLICY}]})),
    # a restarted replica is found again within a second or two, not gRPC's default minutes
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.keepalive_time_ms", 30_000),
)


class StageError(RuntimeError):
    """A remote stage answered with an error status (other than its deadline passing)."""


class _Remote:
    """One channel per event loop: a grpc.aio channel belongs to the loop it was made on,
    and tests or a simulator may run requests on several loops in turn."""

    def __init__(self, target: str, store: ItemFeatureCenter) -> None:
        self.target, self.store = target, store
        self._loop: asyncio.AbstractEventLoop | None = None
        self._channel: grpc.aio.Channel | None = None

    def channel(self) -> grpc.aio.Channel:
        loop = asyncio.get_running_loop()
        if self._channel is None or self._loop is not loop:
            self._channel = grpc.aio.insecure_channel(self.target, options=CHANNEL_OPTIONS)
            self._loop = loop
        return self._channel

    async def close(self) -> None:
        if self._channel is not None and self._loop is asyncio.get_running_loop():
            await self._channel.close()
        self._channel = self._loop = None

    @staticmethod
    def failure(exc: grpc.aio.AioRpcError, what: str) -> Exception:
        if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return TimeoutError(f"{what}: deadline exceeded")
        return StageError(f"{what}: {exc.code().name}: {exc.details()}")


class RecallClient(_Remote):
    async def recall(self, ctx: RecallContext, ids: StageIds, seen: IntArray, pinned: int,
                     shown: IntArray, degraded: list[str], timeout: float) -> Candidates:
        """The recall service's candidates over this store (items it does not know yet are
        dropped); its degradations join `degraded`, its notes the context's."""
        store = self.store
        request = pb.RecallRequest(
            context=wire.context_message(ctx, store), recall_id=ids.recall,
            pinned_item_id=wire.item_ids(store, np.array([pinned]))[0] if pinned >= 0 else 0,
            seen_item_ids=wire.item_ids(store, seen), shown_item_ids=wire.item_ids(store, shown))
        stub = pb_grpc.RecallServiceStub(self.channel())
        try:
            reply = await stub.Recall(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise self.failure(exc, f"recall at {self.target}") from None
        cands = wire.candidates_from_message(reply.candidates, store)
        known = np.flatnonzero(cands.idx >= 0)
        if len(known) < len(cands):
            log.warning("recall at %s returned %d items this replica does not know",
                        self.target, len(cands) - len(known))
            cands = cands.take(known)
        degraded.extend(reply.degraded)
        ctx.notes.update(wire.notes_from_json(reply.notes_json))
        return cands


class RankClient(_Remote):
    async def rank(self, cands: Candidates, ctx: RecallContext, ids: StageIds,
                   timeout: float) -> Ranked:
        """The rank service's scores and order for these candidates."""
        request = pb.RankRequest(
            context=wire.context_message(ctx, self.store), recall_id=ids.recall,
            rank_id=ids.rank, candidates=wire.candidates_message(cands, self.store))
        stub = pb_grpc.RankServiceStub(self.channel())
        try:
            reply = await stub.Rank(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise self.failure(exc, f"rank at {self.target}") from None
        scores = np.array(reply.scores, np.float64)
        order = np.array(reply.order, np.intp)
        n = len(cands)
        if len(scores) != n or len(order) != n or not np.array_equal(np.sort(order),
                                                                    np.arange(n)):
            raise StageError(f"rank at {self.target}: {len(scores)} scores and an order of "
                             f"{len(order)} for {n} candidates")
        return scores, order, list(reply.degraded)
