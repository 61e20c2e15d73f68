"""Settings (where data lives, secrets, mode) and the strategy file (what each stage id means).

Both are validated once at load; a bad file fails with a message naming the offending key, so
a typo in a strategy id is caught at start-up rather than on the first request that uses it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tuijian.domain import Scene
from tuijian.jobs.engine import spark_master
from tuijian.rules.spec import RuleStrategy

PLACEHOLDER_SECRETS = {"", "dev-secret-change-me", "changeme", "secret", "dev-admin-key",
                       "dev-ingest-key", "dev-read-key", "REPLACE_ME"}
DEFAULT_STRATEGIES = Path(__file__).parent / "strategies" / "default.yaml"
SECRETS = ("secret", "admin_key", "ingest_key", "read_key")
SQL_SCHEMES = ("sqlite:///", "postgresql://", "postgres://")
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
STREAM_SCHEMES = (*REDIS_SCHEMES, "kafka://")
# a gRPC target: HOST:PORT, [IPv6]:PORT, dns:///HOST:PORT (client-side balancing) or unix:PATH
GRPC_TARGET = re.compile(r"(dns:(//[^/]*)?/)?[^\s/:\[\]]+:\d+$|\[[0-9a-fA-F:]+\]:\d+$|unix:\S+$")


class ConfigError(ValueError):
    """A settings or strategy file that cannot be used, with the reason; `field` is the
    dotted path of the offending key when one is known (what an API's 422 names)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def _secret(default: str) -> Any:
    return Field(default, repr=False)  # never in a repr, so never in a log line


class Settings(BaseModel):
    """Process settings, from the environment (TUIJIAN_*) and the CLI.

    Backends are chosen by URL; an empty URL is the embedded default (files in data_dir)."""

    model_config = ConfigDict(extra="forbid")

    data_dir: Path = Path("data")
    secret: str = _secret("dev-secret-change-me")
    dev_mode: bool = True
    strategies: Path = DEFAULT_STRATEGIES
    build_interval_s: float = Field(60.0, gt=0)
    # how often the server rebuilds the effect-data cube (up to the last whole hour)
    cube_interval_s: float = Field(3600.0, gt=0)
    # where experiments live: sqlite:///PATH or postgresql://…; empty: metadata_url
    experiments_url: str = Field("", repr=False)
    # metadata (strategies, experiments, their audit; with a URL set, also the model
    # registry's entries): sqlite:///PATH or postgresql://…; empty: DATA_DIR/experiments.db
    metadata_url: str = Field("", repr=False)
    # the event stream between API replicas and the ingest worker: redis://… or kafka://HOST:PORT
    stream_url: str = Field("", repr=False)
    # the shared feature centers (items, users, profiles, counters): redis://HOST:PORT/DB?prefix=;
    # empty: in this process, from data_dir. The first process to find it empty seeds it.
    features_url: str = Field("", repr=False)
    # where batch jobs run: empty or "duckdb" (embedded), "spark" (local[*]), "local[N]", or
    # spark://HOST:PORT (a cluster, whose executors see data_dir under the same path)
    batch_engine: str = ""
    # X-API-Key values by scope: admin (experiments, models, items; implies the others),
    # ingest (events), read (recommendations, lookups). Dev mode lets keyless read and
    # ingest requests through; placeholders are refused outside dev mode.
    admin_key: str = _secret("dev-admin-key")
    ingest_key: str = _secret("dev-ingest-key")
    read_key: str = _secret("dev-read-key")
    # protection: requests per second per client key (0: off), with a burst of 2 s worth;
    # concurrent requests beyond max_inflight are shed with 503 + Retry-After
    rate_limit_rps: float = Field(0.0, ge=0)
    max_inflight: int = Field(256, ge=1)
    # the recall and rank stages as gRPC services (`serve --role recall|rank`): HOST:PORT or
    # dns:///HOST:PORT; empty: the stage runs in this process
    recall_url: str = ""
    rank_url: str = ""

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> Settings:
        if not self.dev_mode:
            for name in SECRETS:
                if getattr(self, name) in PLACEHOLDER_SECRETS:
                    raise ValueError(f"{name}: a placeholder is refused outside dev mode")
            keys = [getattr(self, n) for n in SECRETS[1:]]
            if len(set(keys)) < len(keys):
                raise ValueError("admin_key, ingest_key and read_key must differ")
        for name, schemes, shape in (
                ("experiments_url", SQL_SCHEMES, "sqlite:///PATH or postgresql://…"),
                ("metadata_url", SQL_SCHEMES, "sqlite:///PATH or postgresql://…"),
                ("stream_url", STREAM_SCHEMES, "redis://HOST:PORT/DB or kafka://HOST:PORT"),
                ("features_url", REDIS_SCHEMES, "redis://HOST:PORT/DB")):
            value = getattr(self, name)
            if value and not value.startswith(schemes):
                raise ValueError(f"{name}: expected {shape}")
        spark_master(self.batch_engine)
        for name in ("recall_url", "rank_url"):
            value = getattr(self, name)
            if value and not GRPC_TARGET.match(value):
                raise ValueError(f"{name}: expected HOST:PORT, dns:///HOST:PORT or unix:PATH")
        return self

    @property
    def metadata_store(self) -> str:
        return self.metadata_url or f"sqlite:///{self.data_dir / 'experiments.db'}"

    @property
    def experiments_store(self) -> str:
        return self.experiments_url or self.metadata_store

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        env: dict[str, Any] = {}
        for name in cls.model_fields:
            value = os.environ.get(f"TUIJIAN_{name.upper()}")
            if value is not None:
                env[name] = value
        env.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**env)
        except ValidationError as exc:
            raise ConfigError(explain_errors(exc, "settings")) from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceSpec(_Strict):
    name: str
    k: int = Field(100, gt=0, le=5000)
    budget_ms: float = Field(20.0, gt=0)
    params: dict[str, Any] = Field(default_factory=dict)


class CandidateFilters(_Strict):
    """Conditions every fused candidate must meet (after the shown / clicked filters)."""

    min_quality: float = Field(0.0, ge=0, le=1)
    same_city: bool = False  # only the request's city (the anchor item's, on detail pages)
    active_only: bool = True


class RecallStrategy(_Strict):
    fusion: Literal["tiered", "quota", "rrf"] = "quota"
    size: int = Field(300, gt=0, le=5000)
    sources: list[SourceSpec] = Field(min_length=1)
    # the whole stage's time: a remote recall's deadline; in process, a stage over it is
    # counted (degradations{stage="recall",reason="timeout"}) as it cannot be pre-empted
    budget_ms: float = Field(100.0, gt=0, le=60_000)
    # Rank only within (source order, recall score) tiers: for recall whose order is the
    # answer's contract, e.g. exact search matches before relaxed ones.
    rank_within_tiers: bool = False
    filters: CandidateFilters = Field(default_factory=CandidateFilters)

    @model_validator(mode="after")
    def _reachable(self) -> RecallStrategy:
        total = sum(s.k for s in self.sources)
        if total < self.size:
            raise ValueError(
                f"the sources' k add up to {total}, less than size {self.size}: "
                "the target size could never be reached"
            )
        slowest = max(self.sources, key=lambda s: s.budget_ms)
        if slowest.budget_ms > self.budget_ms:
            raise ValueError(
                f"budget_ms: {self.budget_ms:g} is less than source {slowest.name}'s "
                f"budget_ms {slowest.budget_ms:g}: the stage would cut it off"
            )
        return self


class RankStrategy(_Strict):
    ranker: str
    params: dict[str, Any] = Field(default_factory=dict)
    # the stage's time: a remote rank's deadline (past it, the recall order is kept); in
    # process, a stage over it is counted as a timeout
    budget_ms: float = Field(100.0, gt=0, le=60_000)


class CreativeSpec(_Strict):
    """How an item's image is picked: `thompson` learns from clicks per creative (exploring
    new ones), `best` shows the highest smoothed CTR, `first` always the cover."""

    choose: Literal["thompson", "best", "first"] = "thompson"
    # items without a photo get a generated card from this template (None: no image)
    generated_template: str | None = "classic"


class DisplayStrategy(_Strict):
    """A display id: the style clients render and the fields each item carries. `mixed`
    shows every `big_every`-th item (from the first) as big_image and the others small."""

    style: Literal["card", "big_image", "small_image", "text", "mixed"] = "card"
    fields: list[str] = Field(default_factory=lambda: ["title", "price"])
    big_every: int = Field(4, ge=1, le=100)
    creative: CreativeSpec = Field(default_factory=CreativeSpec)

    @model_validator(mode="after")
    def _known_fields(self) -> DisplayStrategy:
        from tuijian.display.render import DISPLAYABLE

        unknown = [f for f in self.fields if f not in DISPLAYABLE]
        if unknown:
            raise ValueError(f"fields: unknown {', '.join(unknown)} "
                             f"(known: {', '.join(DISPLAYABLE)})")
        if self.style == "text" and "image" in self.fields:
            raise ValueError("fields: a text style shows no image")
        return self


class SceneDefaults(_Strict):
    recall: str
    rank: str
    rule: str
    display: str


class FilterSpec(_Strict):
    exclude_shown: bool = True
    exclude_clicked: bool = True
    shown_memory: int = Field(300, ge=0, le=10_000)


class PushSpec(_Strict):
    threshold: float = Field(0.02, ge=0)
    max_per_user_per_day: int = Field(2, ge=0)
    quiet_hours: tuple[int, int] = (22, 8)
    utc_offset_h: int = Field(8, ge=-12, le=14)


class StrategyFile(_Strict):
    """The validated strategy file: every id a scene or an experiment may name."""

    recall: dict[str, RecallStrategy]
    rank: dict[str, RankStrategy]
    rule: dict[str, RuleStrategy]
    display: dict[str, DisplayStrategy]
    scenes: dict[Scene, SceneDefaults]
    filters: FilterSpec = Field(default_factory=FilterSpec)
    push: PushSpec = Field(default_factory=PushSpec)

    @model_validator(mode="after")
    def _check_references(self) -> StrategyFile:
        missing = [s.value for s in Scene if s not in self.scenes]
        if missing:
            raise ValueError(f"scenes: no defaults for {', '.join(missing)}")
        for scene, d in self.scenes.items():
            for stage in ("recall", "rank", "rule", "display"):
                sid = getattr(d, stage)
                if sid not in getattr(self, stage):
                    raise ValueError(f"scenes.{scene.value}.{stage}: unknown {stage} id {sid!r}")
        return self


def load_strategies(path: Path = DEFAULT_STRATEGIES) -> StrategyFile:
    """Parse and validate a strategy file, including the plug-in names it uses."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return validate_strategies(raw, str(path))


def validate_strategies(raw: Any, where: str) -> StrategyFile:
    """The strategy file's whole check: its models (references between sections included)
    and the plug-in names it uses. The metadata store validates every change with it too."""
    try:
        strategies = StrategyFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(explain_errors(exc, where), error_field(exc)) from None
    for stage in ("recall", "rank"):
        for sid, strategy in getattr(strategies, stage).items():
            check_plugins(strategy, f"{where}: {stage}.{sid}", f"{stage}.{sid}")
    return strategies


def check_plugins(strategy: BaseModel, where: str, field: str = "") -> None:
    """Reject names no registered plug-in answers to, and plug-in params the plug-in refuses
    (a ranker validates its own); for the strategy file and experiments' derived strategies.
    `field` prefixes the offending key's path in the error."""
    from tuijian.rank.registry import RANKERS
    from tuijian.recall.registry import SOURCES

    def at(key: str) -> str:
        return f"{field}.{key}" if field else key

    if isinstance(strategy, RecallStrategy):
        for i, spec in enumerate(strategy.sources):
            if spec.name not in SOURCES:
                raise ConfigError(f"{where}.sources[{i}].name: unknown source {spec.name!r} "
                                  f"(known: {', '.join(sorted(SOURCES))})",
                                  at(f"sources.{i}.name"))
    if isinstance(strategy, RankStrategy):
        if strategy.ranker not in RANKERS:
            raise ConfigError(f"{where}.ranker: unknown ranker {strategy.ranker!r} "
                              f"(known: {', '.join(sorted(RANKERS))})", at("ranker"))
        try:
            RANKERS[strategy.ranker](strategy.params)
        except ValidationError as exc:
            raise ConfigError(explain_errors(exc, f"{where}.params"), at("params")) from None
        except ValueError as exc:
            raise ConfigError(f"{where}.params: {exc}", at("params")) from None


def error_field(exc: ValidationError) -> str:
    """The dotted path of the first error; a model validator's error names its field at the
    start of its message (`scenes.feed.recall: unknown …`)."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    if ": " in msg and " " not in msg.split(": ", 1)[0]:
        inner = msg.split(": ", 1)[0]
        return f"{loc}.{inner}" if loc else inner
    return loc


def explain_errors(exc: ValidationError, where: str) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    return f"{where}: " + "; ".join(parts)
