"""Prometheus metrics: per-stage latency, requests, degradations, events by status.

Each Service owns its registry, so several services (tests, benchmarks) can live in one
process without clashing over global metric names.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

STAGE_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.stage_seconds = Histogram(
            "tuijian_stage_seconds", "Latency of one pipeline stage", ["stage"],
            buckets=STAGE_BUCKETS, registry=r,
        )
        self.source_seconds = Histogram(
            "tuijian_recall_source_seconds", "Latency of one recall source", ["source"],
            buckets=STAGE_BUCKETS, registry=r,
        )
        self.source_hits = Counter(
            "tuijian_recall_source_hits", "Items returned by a recall source", ["source"],
            registry=r,
        )
        self.requests = Counter(
            "tuijian_requests", "Recommendation requests served", ["scene"], registry=r
        )
        self.degradations = Counter(
            "tuijian_degradations", "Stages that degraded instead of failing",
            ["stage", "reason"], registry=r,
        )
        self.events = Counter(
            "tuijian_events", "Events by ingestion status", ["status", "type"], registry=r
        )
        self.quarantine_reasons = Counter(
            "tuijian_events_quarantined", "Quarantined events by reason", ["reason"], registry=r
        )
        self.rule_changes = Counter(
            "tuijian_rule_changes", "Items removed or moved by a rule", ["rule", "change"],
            registry=r,
        )

        self.exposure_write_failures = Gauge(
            "tuijian_exposure_write_failures", "Failed exposure-log writes (rows kept, retried)",
            registry=r,
        )
        self.exposures_pending = Gauge(
            "tuijian_exposures_pending", "Exposure rows buffered, not yet in the event log",
            registry=r,
        )

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
