"""One running Tuijian: the stores, the event log, the pipeline and the ingestor, wired once.

Every entry point (HTTP server, simulator, push job, benchmarks) opens a Service over a data
directory, so they all exercise the same pipeline. Layout of a data directory:

    generated/              the demo marketplace as generated (with simulator ground truth)
    catalog/                snapshots saved by the service + journals of upserts since
    events/                 the event log (+ quarantine.jsonl)
    samples/, push/, sim/   job outputs
    models/                 versioned job artifacts (recall sources)
    rank_models/            the rank model registry (`tuijian models deploy|list|rollback`)
    experiments.db          the experiment platform's store (SQLite, unless configured)
    cube/                   effect data: facts by date + rollups (`tuijian report --build`)
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from tuijian.analytics import build
from tuijian.analytics.alarms import Alarm, Thresholds, check_day
from tuijian.analytics.funnel import FunnelQuery, connect, funnel, items_table, live_facts
from tuijian.analytics.monitor import AlarmBoard, StreamMonitor
from tuijian.analytics.store import ParquetCubeStore
from tuijian.analytics.stream import MinuteCube
from tuijian.config import PLACEHOLDER_SECRETS, Settings, StrategyFile
from tuijian.data.columnar import ColumnStore
from tuijian.data.eventlog import EventLog
from tuijian.data.exposures import ExposureWriter
from tuijian.data.ingest import EventIngestor, IngestResult
from tuijian.data.items import ColumnarItemStore, ItemFeatureCenter
from tuijian.data.redis_backend import DOWN_ERRORS
from tuijian.data.shared import SharedFeatures
from tuijian.data.spool import Spool, SpooledStream
from tuijian.data.stream import StreamUnavailable, open_stream
from tuijian.data.stream_ingest import StreamSink, StreamWorker, publish_events
from tuijian.data.users import MemoryProfileStore, UserProfileStore, UserTable
from tuijian.display.tracking import TrackingCodec
from tuijian.domain import Event, EventStatus, EventType, IntArray
from tuijian.experiments.platform import ExperimentPlatform
from tuijian.experiments.store import SqlExperimentStore
from tuijian.jobs.artifacts import ArtifactStore
from tuijian.jobs.build import restore_counters, restore_creatives, restore_profiles
from tuijian.jobs.engine import DuckDBEngine
from tuijian.jobs.hot import RecentStats
from tuijian.jobs.registry import LOADERS
from tuijian.rank.live_models import LiveModels
from tuijian.rank.model_registry import open_model_registry
from tuijian.rank.online import OnlineLearner
from tuijian.rank.signals import default_position_ctr
from tuijian.recall.base import Catalog
from tuijian.recall.index import RecallIndex
from tuijian.recall.item_cf_realtime import RealtimeItemCF
from tuijian.recall.item_cf_realtime_redis import RedisRealtimeItemCF
from tuijian.recall.lists_redis import Listed
from tuijian.retrieval.engine import RetrievalEngine
from tuijian.serving.errors import RequestError
from tuijian.serving.metrics import Metrics
from tuijian.serving.pipeline import Pipeline
from tuijian.strategies.live import LiveStrategies, open_strategies

PROFILE_HISTORY_S = 30 * 86400
log = logging.getLogger(__name__)


def snapshot_and_journal(data: Path, name: str) -> tuple[Path, Path]:
    """The newest snapshot of a table (saved, else as generated) and its upsert journal."""
    saved = data / "catalog" / f"{name}.parquet"
    base = saved if saved.exists() else data / "generated" / f"{name}.parquet"
    if not base.exists():
        raise FileNotFoundError(
            f"{base} not found: run `tuijian generate --out {data / 'generated'}` first"
        )
    return base, data / "catalog" / f"{name}.journal.jsonl"


def settle_heap() -> None:
    """Move everything loaded so far out of the garbage collector's sight.

    The catalog's millions of long-lived objects (titles, tag lists) would otherwise be
    re-scanned by every full collection: a multi-millisecond pause on the request path. Call
    once per serving process, after the service has opened (not in tests: frozen objects are
    never freed)."""
    gc.collect()
    gc.freeze()


def serving_threads() -> None:
    """One compute thread per request for the numeric libraries: a 300-row prediction gains
    nothing from a thread pool, and on a busy machine PyTorch's pool turned 0.5 ms DeepFM
    predictions into 15-50 ms ones. Batch jobs and training keep the default pools."""
    import torch

    torch.set_num_threads(1)


def resolve_secret(settings: Settings) -> str:
    """In dev mode a placeholder secret is replaced by a random one kept in the data dir, so
    tracking params stay verifiable across restarts without anyone configuring a secret."""
    if settings.secret not in PLACEHOLDER_SECRETS:
        return settings.secret
    path = settings.data_dir / ".secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


class Service:
    online_learner: OnlineLearner | None = None  # see attach_online_learner

    def __init__(self, settings: Settings, now: float | None = None,
                 strategies: StrategyFile | None = None,
                 alarm_thresholds: Thresholds | None = None) -> None:
        now = time.time() if now is None else now
        self.settings = settings
        data = settings.data_dir
        (data / "catalog").mkdir(parents=True, exist_ok=True)
        store, rev, self.strategies = open_strategies(settings, strategies)
        self.metrics = Metrics()
        items = ColumnarItemStore.open(*snapshot_and_journal(data, "items"))
        users = UserTable.open(*snapshot_and_journal(data, "users"))
        shown_memory = self.strategies.filters.shown_memory
        # scale-out: feature centers shared through Redis, mirrored here; whoever seeds them
        # restores the derived state from its log, a replica joining later reads it
        self.shared: SharedFeatures | None = None
        self.store: ItemFeatureCenter
        self.profiles: UserProfileStore
        if settings.features_url:
            self.shared = SharedFeatures.open(settings.features_url, items, users, shown_memory,
                                              self._features_down)
            self.store, self.profiles = self.shared.items, self.shared.profiles
        else:
            self.store, self.profiles = items, MemoryProfileStore(users, shown_memory)
        # what `snapshot` saves: the embedded tables (shared ones live in Redis)
        self._snapshots: list[tuple[ColumnStore, str]] = (
            [(items, "items"), (users, "users")] if self.shared is None else [])
        restore = self.shared is None or self.shared.seeded
        self.log = EventLog(data / "events")
        self.codec = TrackingCodec(resolve_secret(settings))
        # scale-out: events and served exposures go through the stream to the ingest worker
        # (spooled to local disk while the broker is down, forwarded when it is back)
        self.event_stream: SpooledStream | None = None
        if settings.stream_url:
            self.event_stream = SpooledStream(
                open_stream(settings.stream_url), Spool(data / "spool"),
                lambda n: self.metrics.degradations.labels("stream", "spooled").inc(n))
        self.exposures = ExposureWriter(self.log if self.event_stream is None
                                        else StreamSink(self.event_stream))
        self.metrics.exposure_write_failures.set_function(lambda: self.exposures.failures)
        self.metrics.exposures_pending.set_function(self.exposures.pending)
        events_sql = self.log.relation_sql()
        curve = (restore_counters(self.store, events_sql) if restore
                 else default_position_ctr())
        self.item_cf_realtime: RealtimeItemCF | RedisRealtimeItemCF = (
            RealtimeItemCF() if self.shared is None else self.shared.item_cf)
        if restore:
            restore_profiles(self.store, self.profiles, events_sql, now - PROFILE_HISTORY_S,
                             [self.item_cf_realtime])
        self._index_lock = threading.Lock()
        self._upserted_during_build: list[IntArray] | None = None
        index = RecallIndex.build(self.store, now, curve)
        engine = RetrievalEngine.build(self.store)
        engine.set_hotness(index.hot)
        self.catalog = Catalog(self.store, index, engine)
        self.artifacts = ArtifactStore(data)
        self.model_versions: dict[str, str] = {}
        # deployed rank models, read per request with rank_models.get(name)
        self.rank_models = LiveModels(
            open_model_registry(data / "rank_models", settings.metadata_url), self.metrics)
        if "hot" in self.reload_models():
            self.rebuild_index(now)
        self.pipeline = Pipeline(self.catalog, self.profiles, self.strategies, self.codec,
                                 self.exposures, self.metrics)
        if settings.recall_url or settings.rank_url:
            from tuijian.serving.rpc_client import RankClient, RecallClient  # grpc: only if used

            if settings.recall_url:
                self.pipeline.recall_remote = RecallClient(settings.recall_url, self.store)
            if settings.rank_url:
                self.pipeline.rank_remote = RankClient(settings.rank_url, self.store)
        self.experiments = ExperimentPlatform(SqlExperimentStore(settings.experiments_store),
                                              self.strategies, self.pipeline.add_strategy)
        self.pipeline.assigner = self.experiments
        self.live_strategies = LiveStrategies(store, rev, self.apply_strategies,
                                              self.experiments.check_strategies)
        self.cube = ParquetCubeStore(data / "cube")  # effect data (`tuijian report --build`)
        # real-time effect data: minute buckets of every stored event, the retention window
        # refilled from the log at start
        self.stream = MinuteCube(self.store, self.experiment_layers)
        self.stream.load(self.log.relation_sql())
        self.log.listeners.append(self.stream.enqueue)
        # tracking alarms: checked on the stream every minute and over each closed day
        self.alarm_thresholds = alarm_thresholds or Thresholds()
        self.monitor = StreamMonitor(self.stream, self.alarm_thresholds)
        self.log.listeners.append(self.monitor.enqueue)
        self.alarms = AlarmBoard(self.metrics.registry)
        self.pipeline.model_lookup = self.rank_models.get
        restore_creatives(self.pipeline.creatives, events_sql, curve)
        self.pipeline.online_learner = self.online_learner  # an FTRL model loaded at start-up
        self.ingestor = EventIngestor(self.log, self.store, self.profiles, self.codec)
        self.ingestor.click_processors.append(self.item_cf_realtime)
        self.catalog.models["item_cf_realtime"] = self.item_cf_realtime
        if self.shared is not None:
            self.shared.defer_writes()
            self.shared.items.on_change = self._index_changed
            breaker = self.shared.breaker
            self.pipeline.stale_backends = lambda: ["features"] if breaker.open else []

    async def ingest(self, events: Sequence[Event]) -> list[IngestResult]:
        """Store and fold events, or with a stream configured, verify and publish them (the
        ingest worker stores them; `accepted` then means the broker, or while it is down this
        replica's spool, holds them durably)."""
        if self.event_stream is None:
            return await self.ingest_local(events)
        try:
            results = await asyncio.to_thread(publish_events, self.ingestor, self.event_stream,
                                              events)
        except StreamUnavailable as exc:
            raise RequestError("events", "the event stream is unavailable; retry", 503) \
                from exc
        bad = [j for j, r in enumerate(results) if r.status is EventStatus.QUARANTINED]
        self._count([events[j] for j in bad], [results[j] for j in bad])
        return results

    async def ingest_local(self, events: Sequence[Event]) -> list[IngestResult]:
        """Store events in this process's log (fsynced) and fold them into real-time state."""
        results = await self.ingestor.ingest_async(events)
        self._count(events, results)
        self._learn_clicks(events, results)
        return results

    def apply_strategies(self, new: StrategyFile) -> None:
        """Serve a newly stored set of strategies: each changed one made servable, scene
        defaults and filters swapped, experiments re-derived over them. (`filters.
        shown_memory` and the push settings' consumers read them at start: a restart applies
        those.)"""
        cur = self.strategies
        for stage in ("recall", "rank", "rule", "display"):
            live: dict[str, Any] = getattr(cur, stage)
            for sid, strategy in getattr(new, stage).items():
                if live.get(sid) != strategy:
                    self.pipeline.add_strategy(stage, sid, strategy)
        cur.scenes, cur.filters, cur.push = dict(new.scenes), new.filters, new.push
        self.experiments.refresh(force=True)

    def stream_worker(self) -> StreamWorker:
        """The consumer that moves the stream's events into this process's log and state."""
        if self.event_stream is None:
            raise ValueError("stream_url: no event stream is configured")
        return StreamWorker(self.event_stream, self.log, self.ingest_local)

    def backends_down(self) -> list[str]:
        """The configured backends that do not answer now (for readiness)."""
        down = []
        try:
            self.experiments.store.revision()
        except Exception:
            down.append("metadata")
        if self.event_stream is not None:
            try:
                self.event_stream.ping()
            except Exception:
                down.append("stream")
        if self.shared is not None:
            try:
                self.shared.ping()
            except Exception:
                down.append("features")
        return down

    def funnel(self, q: FunnelQuery) -> list[dict[str, Any]]:
        """Effect data: the offline cube up to its build, the event log after it."""
        self.exposures.flush()
        con = connect(self.store)
        try:
            return funnel(con, self.cube,
                          live_facts(self.log.relation_sql(), self.experiment_layers()), q)
        finally:
            con.close()

    def build_cube(self, now: float | None = None) -> build.BuildResult:
        """Rebuild the offline cube up to the last whole hour (the live log answers after
        it), on one DuckDB thread so serving keeps the other cores."""
        now = time.time() if now is None else now
        self.exposures.flush()
        engine = DuckDBEngine(self.log.relation_sql(), threads=1)
        try:
            return build.build_cube(engine, self.cube, items_table(self.store),
                                    self.experiment_layers(), now - now % 3600)
        finally:
            engine.close()

    def check_day(self, day: dt.date) -> list[Alarm]:
        """The tracking alarms over one closed local day."""
        return check_day(self.funnel, self.log.relation_sql(), self.log.quarantine_sql(), day,
                         self.alarm_thresholds)

    def experiment_layers(self) -> dict[int, str]:
        """Experiment id → layer, for effect data's per-layer experiment dimensions."""
        return {e.id: e.layer for e in self.experiments.config.experiments.values()}

    def ingest_sync(self, events: Sequence[Event]) -> list[IngestResult]:
        results = self.ingestor.ingest(events)
        self._count(events, results)
        self._learn_clicks(events, results)
        return results

    def upsert_items(self, rows: list[dict[str, Any]]) -> int:
        table = pa.Table.from_pylist(rows)
        if self.shared is not None:  # indexed by the mirror's change hook, as others' are
            return len(self._shared_write(lambda: self.store.upsert(table)))
        with self._index_lock:
            idx = self.store.upsert(table)
            self._index_items(idx)
        return len(idx)

    def upsert_users(self, rows: list[dict[str, Any]]) -> int:
        table = pa.Table.from_pylist(rows)
        return len(self._shared_write(lambda: self.profiles.upsert(table)))

    def sync_features(self) -> int:
        """Follow the shared feature centers (the background loop, every second); returns how
        many items changed. Nothing to follow on the embedded default."""
        return 0 if self.shared is None else len(self.shared.sync())

    def _shared_write(self, write: Callable[[], IntArray]) -> IntArray:
        """A write a client is told succeeded only once the shared store holds it."""
        try:
            return write()
        except DOWN_ERRORS as exc:
            self._features_down("features")
            raise RequestError("features", "the feature store is unavailable; retry", 503) \
                from exc

    def _index_changed(self, idx: IntArray) -> None:
        with self._index_lock:
            self._index_items(idx)

    def _index_items(self, idx: IntArray) -> None:
        """Make upserted items recallable; call with the index lock held."""
        self.catalog.engine.add(idx)
        self.catalog.index.add(self.store, idx)
        self.catalog.engine.set_hotness(self.catalog.index.hot)
        if self._upserted_during_build is not None:
            self._upserted_during_build.append(idx)

    def _features_down(self, name: str) -> None:
        self.metrics.degradations.labels("features", "unavailable").inc()

    def _count(self, events: Sequence[Event], results: Sequence[IngestResult]) -> None:
        self.monitor.observe_ingest(events, results)
        for ev, r in zip(events, results, strict=True):
            self.metrics.events.labels(r.status.value, ev.type).inc()
            if r.code:
                self.metrics.quarantine_reasons.labels(r.code).inc()

    def reload_models(self) -> list[str]:
        """Load every job artifact and rank model whose published version changed; returns
        what reloaded (rank models as "rank:NAME", apart from job names). A broken artifact is
        logged and the previous version kept; a broken rank model is also marked rejected."""
        reloaded = []
        for name, loader in LOADERS.items():
            artifact = self.artifacts.current(name)
            if artifact is None or self.model_versions.get(name) == artifact.version:
                if self._follow_lists(name):
                    reloaded.append(name)
                continue
            try:
                model = loader(artifact, self.store)
                if self.shared is not None and isinstance(model, Listed):
                    self.shared.publish_lists(name, artifact.version, model)
            except Exception:
                log.exception("loading %s %s failed; keeping the previous version", name,
                              artifact.version)
                continue
            self.catalog.models[name] = model
            self.model_versions[name] = artifact.version
            reloaded.append(name)
        for name in self.rank_models.poll():
            reloaded.append(f"rank:{name}")
            model = self.rank_models.get(name)
            if model is not None and model.manifest.kind == "ftrl":
                # a deployed FTRL model keeps learning from the event stream; the learner
                # follows each new version (what it learnt online lives until the next one)
                self.attach_online_learner(OnlineLearner(model))
        return reloaded

    def _follow_lists(self, name: str) -> bool:
        """Recall from the lists another process published to the shared store, when they
        are newer than what serves here (a replica without the job's files)."""
        lists = None if self.shared is None else self.shared.lists(
            name, self.model_versions.get(name))
        if lists is None:
            return False
        self.catalog.models[name] = lists
        self.model_versions[name] = lists.version
        return True

    def rebuild_index(self, now: float | None = None) -> None:
        """Re-rank the hot and region lists from the live counters; swapped in atomically.

        Items upserted while the new index is being built are added to it before the swap,
        so "visible to the next request" holds across a rebuild too."""
        with self._index_lock:
            self._upserted_during_build = []
        if self.shared is not None:  # the hot lists rank by every replica's counts
            self.shared.items.refresh_counts()
        try:
            recent = self.catalog.models.get("hot")
            index = RecallIndex.build(self.store, time.time() if now is None else now,
                                      self.catalog.index.position_ctr,
                                      recent if isinstance(recent, RecentStats) else None)
        except BaseException:
            with self._index_lock:
                self._upserted_during_build = None
            raise
        # drain and swap under one hold of the lock: an upsert can land before (drained
        # here) or after (added to the new index), never in between
        with self._index_lock:
            for idx in self._upserted_during_build or []:
                index.add(self.store, idx)
            self._upserted_during_build = None
            self.catalog.index = index
            self.catalog.engine.set_hotness(index.hot)

    def snapshot(self) -> None:
        """Fold upsert journals into the Parquet snapshots (at shutdown or on a schedule)."""
        cat = self.settings.data_dir / "catalog"
        for table, name in self._snapshots:
            table.save(cat / f"{name}.parquet")

    def close(self) -> None:
        if self.shared is not None:
            self.shared.close()
        self.experiments.store.close()
        self.live_strategies.store.close()
        self.rank_models.store.close()
        self.exposures.close()
        if self.event_stream is not None:
            self.event_stream.close()
        self.log.close()

    # -- online learning -----------------------------------------------------------------------

    def attach_online_learner(self, learner: OnlineLearner | None) -> None:
        """Update a live FTRL model from this service's traffic: the pipeline hands it every
        logged exposure, ingested clicks label them, and `learn_online` (the background loop)
        learns what is due. The learner holds its DeployedModel itself; whoever serves that
        model ranks with the updated weights. None detaches."""
        self.online_learner = learner
        pipeline: Pipeline | None = getattr(self, "pipeline", None)  # None during start-up
        if pipeline is not None:
            pipeline.online_learner = learner
        self.metrics.ftrl_pending_rows.set_function(
            (lambda: learner.pending_rows) if learner is not None else (lambda: 0))

    def learn_online(self, now: float | None = None) -> int:
        """Learn every exposure past its click delay; returns the rows learnt."""
        learner = self.online_learner
        if learner is None:
            return 0
        rows = learner.tick(now)
        if rows:
            self.metrics.ftrl_updates.inc()
            self.metrics.ftrl_rows.inc(rows)
        return rows

    def _learn_clicks(self, events: Sequence[Event], results: Sequence[IngestResult]) -> None:
        """Accepted clicks label their exposure's row (the ingestor has filled exposure_id
        from the verified tracking param). Here rather than as an ingestor click processor:
        those are given (user, item index, ts), not the exposure the click belongs to. A click
        through a chosen photo also counts for that creative."""
        learner = self.online_learner
        for ev, r in zip(events, results, strict=True):
            if r.status != EventStatus.ACCEPTED or ev.type != EventType.CLICK:
                continue
            if ev.creative is not None:  # the photo the click came through (tracking param)
                self.pipeline.creatives.record_click(ev.item_id, ev.creative)
            if learner is not None:
                learner.mark_click(ev.exposure_id, ev.item_id)
