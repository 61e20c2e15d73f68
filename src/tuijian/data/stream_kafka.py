"""The event stream on a Kafka-compatible broker (Apache Kafka, Redpanda, Tansu, ...).

`kafka://HOST:PORT[,HOST:PORT]?topic=NAME&group=NAME`. Kafka's own semantics give what the
`EventStream` contract asks: offsets are committed only by `ack` (never automatically), so a
restarted worker, or the one a dead worker's partitions move to, resumes from the last
acknowledged message. An acknowledgement is cumulative per partition; the worker acknowledges
whole batches in the order read, so that never covers an unprocessed message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from tuijian.data.stream import GROUP, Delivery, StreamUnavailable, consumer_name

DEFAULT_TOPIC = "tuijian-events"
PUBLISH_TIMEOUT_S = 10.0


class KafkaEventStream:
    def __init__(self, url: str, consumer: str | None = None,
                 session_timeout_ms: int = 10_000) -> None:
        parts = urlsplit(url)
        if parts.scheme != "kafka" or not parts.netloc:
            raise ValueError(f"expected kafka://HOST:PORT[,HOST:PORT]?topic=NAME, got {url!r}")
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.topic = query.get("topic", DEFAULT_TOPIC)
        self.group = query.get("group", GROUP)
        self.servers = parts.netloc
        self.consumer_id = consumer or consumer_name()
        self.session_timeout_ms = session_timeout_ms
        # acks=all: publish returns once every in-sync replica holds the message
        self._producer = Producer({"bootstrap.servers": self.servers, "acks": "all",
                                   "linger.ms": 1})
        self._consumer: Any = None

    def publish(self, payloads: Sequence[bytes]) -> list[str]:
        tokens: list[str | None] = [None] * len(payloads)
        errors: list[str] = []

        def delivered(j: int) -> Any:
            def report(err: Any, msg: Any) -> None:
                if err is not None:
                    errors.append(str(err))
                else:
                    tokens[j] = f"{msg.partition()}:{msg.offset()}"
            return report

        for j, p in enumerate(payloads):
            self._producer.produce(self.topic, p, on_delivery=delivered(j))
        left = self._producer.flush(PUBLISH_TIMEOUT_S)
        if errors or left or any(t is None for t in tokens):
            raise StreamUnavailable(f"publish failed: {errors[:3] or f'{left} undelivered'}")
        return [t for t in tokens if t is not None]

    def read(self, count: int, block_s: float) -> list[Delivery]:
        msgs = self._reader().consume(num_messages=count, timeout=block_s)
        out = []
        for m in msgs:
            if m.error() is not None:
                raise KafkaException(m.error())
            out.append(Delivery(f"{m.partition()}:{m.offset()}", m.value() or b""))
        return out

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        last: dict[int, int] = {}
        for d in deliveries:
            part, _, off = d.token.partition(":")
            last[int(part)] = max(last.get(int(part), -1), int(off))
        self._reader().commit(offsets=[TopicPartition(self.topic, p, o + 1)
                                       for p, o in last.items()], asynchronous=False)

    def trim(self) -> int:
        """Nothing to do: the topic's retention policy frees old segments broker-side."""
        return 0

    def ping(self) -> None:
        self._producer.list_topics(timeout=2.0)

    def close(self) -> None:
        self._producer.flush(PUBLISH_TIMEOUT_S)
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def _reader(self) -> Any:
        """The group consumer, joined on first read (API replicas only publish)."""
        if self._consumer is None:
            self._consumer = Consumer({
                "bootstrap.servers": self.servers, "group.id": self.group,
                "client.id": self.consumer_id, "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": self.session_timeout_ms,
                "heartbeat.interval.ms": max(100, self.session_timeout_ms // 4)})
            self._consumer.subscribe([self.topic])
        return self._consumer
