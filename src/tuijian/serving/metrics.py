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
        # requests per experiment arm, live: a sample ratio mismatch shows here first
        self.experiment_requests = Counter(
            "tuijian_experiment_requests", "Requests served per experiment and variant",
            ["experiment", "variant"], registry=r,
        )

        # admission control (serving/protection.py): refused before any work, and in flight
        self.requests_refused = Counter(
            "tuijian_requests_refused",
            "Requests refused before any work: shed (503) or limited (429)", ["reason"],
            registry=r,
        )
        self.requests_inflight = Gauge(
            "tuijian_requests_inflight", "Requests in this process now", registry=r
        )

        self.exposure_write_failures = Gauge(
            "tuijian_exposure_write_failures", "Failed exposure-log writes (rows kept, retried)",
            registry=r,
        )
        self.exposures_pending = Gauge(
            "tuijian_exposures_pending", "Exposure rows buffered, not yet in the event log",
            registry=r,
        )

        # rank models (tuijian.rank.live_models): what serves, and what was refused and why
        self.model_load_failures = Counter(
            "tuijian_model_load_failures", "Rank model versions rejected by the live loader",
            ["model", "reason"], registry=r,
        )
        self.model_version_info = Gauge(
            "tuijian_model_version_info", "The rank model version serving (1 for that version)",
            ["model", "version"], registry=r,
        )
        self.model_loaded_timestamp = Gauge(
            "tuijian_model_loaded_timestamp", "When the serving rank model version was swapped "
            "in (unix s)", ["model"], registry=r,
        )

        # online learning (rank/online.py): exposed as tuijian_ftrl_{updates,rows}_total
        self.ftrl_updates = Counter(
            "tuijian_ftrl_updates", "Minibatches the online FTRL model learnt", registry=r
        )
        self.ftrl_rows = Counter(
            "tuijian_ftrl_rows", "Rows the online FTRL model learnt", registry=r
        )
        self.ftrl_pending_rows = Gauge(
            "tuijian_ftrl_pending_rows", "Shown rows waiting for their clicks before learning",
            registry=r,
        )

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
