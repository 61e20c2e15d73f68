"""The EventStream contract against every broker, and the worker's at-least-once guarantee:
an event acknowledged to the client reaches the log exactly once, through crashes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from tuijian.data.stream import Delivery, EventStream, RedisEventStream, decode, encode
from tuijian.data.stream_ingest import StepResult, StreamWorker
from tuijian.data.stream_kafka import KafkaEventStream
from tuijian.domain import Event, RecommendRequest, Scene
from tuijian.serving.service import Service

from ..conftest import NOW

Opener = Callable[..., EventStream]


@pytest.fixture(params=["redis", "kafka"])
def open_stream(request: pytest.FixtureRequest) -> Iterator[Opener]:
    """Opens consumers of one fresh stream (one group) on the real broker under test."""
    opened: list[EventStream] = []
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")

        def opener(consumer: str = "c1") -> EventStream:
            # a consumer silent for 0 ms counts as dead: the test decides who crashed
            s: EventStream = RedisEventStream(url, consumer=consumer, claim_idle_ms=0)
            opened.append(s)
            return s
    else:
        server = request.getfixturevalue("kafka_bootstrap")
        topic = f"t{uuid.uuid4().hex[:10]}"

        def opener(consumer: str = "c1") -> EventStream:
            url = f"kafka://{server}?topic={topic}&group=g{topic}"
            s = KafkaEventStream(url, consumer=consumer, session_timeout_ms=2000)
            opened.append(s)
            return s

    yield opener
    for s in opened:
        s.close()


async def test_served_exposures_go_through_the_stream(service: Service, open_stream: Opener
                                                     ) -> None:
    from tuijian.data.exposures import ExposureWriter
    from tuijian.data.stream_ingest import StreamSink

    stream = open_stream("w")
    service.exposures.close()
    service.exposures = service.pipeline.exposures = ExposureWriter(StreamSink(stream))
    rec = await service.pipeline.recommend(RecommendRequest(Scene.FEED, "u8", 5, NOW))
    service.exposures.flush()
    assert service.log.scan(types=["exposure"]).num_rows == 0
    step = await _drain(StreamWorker(stream, service.log, service.ingest_local), 5)
    assert step.accepted == 5
    stored = service.log.scan(types=["exposure"])
    assert set(stored.column("exposure_id").to_pylist()) == {rec.exposure_id}


def test_messages_come_back_once_acknowledged(open_stream: Opener) -> None:
    stream = open_stream()
    tokens = stream.publish([b"a", b"b", b"c"])
    assert len(set(tokens)) == 3
    got = _read(stream, 3)
    # order holds within a partition; a Kafka topic may have several
    assert sorted(d.payload for d in got) == [b"a", b"b", b"c"]
    stream.ack(got)
    assert stream.read(10, 0.3) == []
    stream.close()
    assert open_stream().read(10, 1.0) == []  # a restart finds nothing left to redo


@pytest.mark.parametrize(("crashed", "reader"), [("worker-1", "worker-1"),
                                                  ("worker-dead", "worker-alive")],
                         ids=["restarted-consumer", "another-consumer-claims"])
def test_unacknowledged_messages_are_delivered_again(open_stream: Opener, crashed: str,
                                                     reader: str) -> None:
    """A consumer that dies before acknowledging gets its messages again when it restarts;
    a different consumer claims a dead one's messages."""
    first = open_stream(crashed)
    first.publish([b"x", b"y"])
    assert sorted(d.payload for d in _read(first, 2)) == [b"x", b"y"]
    first.close()  # crashes before acknowledging
    again = open_stream(reader)
    redelivered = _read(again, 2)
    assert sorted(d.payload for d in redelivered) == [b"x", b"y"]
    again.ack(redelivered)
    again.close()
    assert open_stream(crashed).read(10, 1.0) == []


def _read(stream: EventStream, n: int, within_s: float = 15.0) -> list[Delivery]:
    """Read until `n` messages came (a Kafka consumer first joins its group)."""
    got: list[Delivery] = []
    deadline = time.monotonic() + within_s
    while len(got) < n and time.monotonic() < deadline:
        got += stream.read(n - len(got), 0.5)
    return got


def test_redis_trim_drops_only_what_every_reader_acknowledged(redis_url: str) -> None:
    stream = RedisEventStream(redis_url, consumer="c1")
    stream.publish([b"1", b"2", b"3"])
    got = stream.read(2, 0.1)
    stream.ack(got[:1])
    stream.trim()
    assert stream.r.xlen(stream.key) == 2  # "2" is pending, "3" never delivered
    assert stream.lag() == 2
    stream.ack(got[1:])
    stream.ack(stream.read(10, 0.1))
    stream.trim()
    assert stream.r.xlen(stream.key) == 0 and stream.lag() == 0
    stream.close()


def test_messages_round_trip_events_and_reject_garbage() -> None:
    ev = Event("e1", "click", "u1", 5, NOW, "v1.x", position=3, features={"a": 1.0})
    assert decode(encode(ev)) == (ev, None)
    assert decode(encode(ev, ("bad_sig", "tracking: bad signature")))[1] == (
        "bad_sig", "tracking: bad signature")
    for garbage in (b"{", b'{"event": {"nope": 1}}', b"[]"):
        with pytest.raises(ValueError):
            decode(garbage)


async def _drain(worker: StreamWorker, n: int, within_s: float = 15.0) -> StepResult:
    """Step until `n` messages were read; the summed counts."""
    total = StepResult()
    deadline = time.monotonic() + within_s
    while total.read < n and time.monotonic() < deadline:
        step = await worker.step(block_s=0.5)
        for f in ("read", "accepted", "duplicates", "quarantined"):
            setattr(total, f, getattr(total, f) + getattr(step, f))
    return total


async def test_worker_stores_each_event_once_through_a_crash_before_ack(
        service: Service, open_stream: Opener) -> None:
    rec = await service.pipeline.recommend(RecommendRequest(Scene.FEED, "u7", 4, NOW))
    items = rec.items
    events = [Event(f"s{j}", "click", "u7", it["item_id"], NOW, it["tracking"])
              for j, it in enumerate(items[:3])]
    events.append(Event("s0", "click", "u7", items[0]["item_id"], NOW, items[0]["tracking"]))
    events.append(Event("forged", "click", "u7", items[3]["item_id"], NOW, "v1.forged"))
    stream = open_stream("w")
    service.event_stream = stream  # as configured by stream_url
    results = await service.ingest(events)
    assert [r.status for r in results] == ["accepted"] * 4 + ["quarantined"]
    stream.publish([b"not json"])
    assert service.log.scan(types=["click"]).num_rows == 0  # published, not yet stored
    idx = service.store.position(items[0]["item_id"])
    clicks_before = service.store.column("clicks")[idx]

    class Crash(RuntimeError):
        pass

    def crash(_: object) -> None:
        raise Crash

    stream.ack = crash  # type: ignore[method-assign]  # the worker dies before acknowledging
    with pytest.raises(Crash):
        await _drain(service.stream_worker(), 1)
    stream.close()
    restarted = StreamWorker(open_stream("w"), service.log, service.ingest_local)
    total = await _drain(restarted, 6)
    assert total.read == 6 and total.accepted + total.duplicates == 4
    assert (await restarted.step(block_s=1.0)).read == 0  # all acknowledged now
    assert sorted(service.log.scan(types=["click"]).column("event_id").to_pylist()) == [
        "s0", "s1", "s2"]
    assert service.store.column("clicks")[idx] == clicks_before + 1  # folded once
    codes = service.log.quarantined().column("code").to_pylist()
    assert sorted(codes) == ["tracking_malformed", "undecodable"]  # once each, redelivered
