"""The experiment platform's records, and the rules that make a set of them valid together.

A unit (user id, else device id) is first split into a **domain** (a share of traffic split off
so that changes in different domains never meet), then, in each **layer** of its domain, hashed
with the layer's salt into one of the layer's buckets. An **experiment** owns bucket ranges of
its layer for some scenes; a unit in those buckets gets one of its variants (a second hash,
by weight), and the variant sets the layer's stage id. The **launch layer** applies to every
domain, before the experiment layers: a launch rolls a stage id out to a share of everyone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from tuijian.config import ConfigError, StrategyFile, check_plugins, explain_errors
from tuijian.domain import Scene
from tuijian.experiments.hashing import DOMAIN_BUCKETS
from tuijian.serving.errors import RequestError

STAGES: tuple[str, ...] = ("recall", "rank", "rule", "display")
LAUNCH = "launch"
DEFAULT_DOMAIN = "default"

Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_\-]{0,47}$")]
Stage = Literal["recall", "rank", "rule", "display"]
Status = Literal["draft", "running", "stopped"]
Range = tuple[int, int]  # half-open [start, end) of buckets


class ExperimentError(RequestError):
    """A change the platform refuses: the field at fault and why (the API answers 4xx, the
    CLI prints it)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Domain(_Strict):
    name: Name
    ranges: list[Range]  # over the DOMAIN_BUCKETS domain buckets
    description: str = ""


class Layer(_Strict):
    name: Name
    stage: Stage | None = None  # None: a parameter layer (its variants only set params)
    domain: Name = DEFAULT_DOMAIN
    buckets: Literal[1000, 10_000] = 1000
    salt: str = ""  # the name unless set; a new salt re-shuffles the layer's units
    description: str = ""

    @property
    def hash_salt(self) -> str:
        return self.salt or self.name


class Variant(_Strict):
    name: Name
    stage_id: str | None = None
    # overrides of the stage strategy's settings (deep-merged), e.g. {"params": {"formula":
    # "ctr"}} on a rank id: the variant serves a derived strategy `stage_id@EXP.variant`
    params: dict[str, Any] = Field(default_factory=dict)
    weight: float = Field(1.0, gt=0, le=1000)


class Experiment(_Strict):
    id: int = 0  # given by the store
    name: str = Field(min_length=1, max_length=100)
    layer: Name
    scenes: list[Scene] = Field(min_length=1)
    ranges: list[Range] = Field(default_factory=list)
    control: Name = "control"
    variants: list[Variant] = Field(min_length=1)
    whitelist: dict[str, Name] = Field(default_factory=dict)  # unit -> variant, forced
    stage: Stage | None = None  # launch layer only: the stage the launch sets
    status: Status = "draft"
    version: int = 0
    description: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0

    @model_validator(mode="after")
    def _self_consistent(self) -> Experiment:
        names = [v.name for v in self.variants]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"variants: duplicate name {sorted(dup)[0]!r}")
        if self.control not in names:
            raise ValueError(f"control: no variant named {self.control!r} "
                             f"(variants: {', '.join(names)})")
        for unit, v in self.whitelist.items():
            if v not in names:
                raise ValueError(f"whitelist.{unit}: unknown variant {v!r}")
        last = -1
        for i, (a, b) in enumerate(sorted(self.ranges)):
            if a < 0 or b <= a:
                raise ValueError(f"ranges[{i}]: [{a}, {b}) is not a range of buckets")
            if a < last:
                raise ValueError(f"ranges: [{a}, {b}) overlaps another range of the experiment")
            last = b
        if len(set(self.scenes)) != len(self.scenes):
            raise ValueError("scenes: listed twice")
        return self

    @property
    def size(self) -> int:
        return sum(b - a for a, b in self.ranges)

    @property
    def live(self) -> bool:
        """Drafts reserve their buckets too, so starting one can never fail on an overlap."""
        return self.status != "stopped"


def derived_id(stage_id: str, experiment_id: int, variant: str) -> str:
    return f"{stage_id}@{experiment_id}.{variant}"


def builtin_layers() -> dict[str, Layer]:
    layers = {s: Layer(name=s, stage=s, description=f"built in: sets the {s} id")
              for s in STAGES}
    layers[LAUNCH] = Layer(name=LAUNCH, description="built in: rolls winners out to everyone")
    return layers


@dataclass(slots=True)
class ExperimentConfig:
    """Everything the assigner needs, as one snapshot that is validated as a whole."""

    domains: dict[str, Domain] = field(default_factory=dict)
    layers: dict[str, Layer] = field(default_factory=builtin_layers)
    experiments: dict[int, Experiment] = field(default_factory=dict)

    def copy(self) -> ExperimentConfig:
        """An independent copy to change (records copied deeply: a change may edit one)."""
        return ExperimentConfig(
            {k: v.model_copy(deep=True) for k, v in self.domains.items()},
            {k: v.model_copy(deep=True) for k, v in self.layers.items()},
            {k: v.model_copy(deep=True) for k, v in self.experiments.items()})

    def check(self, strategies: StrategyFile) -> dict[tuple[str, str], BaseModel]:
        """Raise ExperimentError on the first problem; return the derived strategies the
        variants with params need, by (stage, derived id)."""
        self._check_domains()
        self._check_layers()
        derived: dict[tuple[str, str], BaseModel] = {}
        for exp in self.experiments.values():
            if exp.live:  # a stopped one may name ids the strategy file has since dropped
                derived.update(self.check_experiment(exp, strategies))
            elif exp.layer not in self.layers:
                raise ExperimentError("layer", f"experiment {exp.id}: unknown layer "
                                               f"{exp.layer!r}")
        self._check_overlaps()
        return derived

    def stage_of(self, exp: Experiment) -> str | None:
        layer = self.layers[exp.layer]
        return exp.stage if layer.name == LAUNCH else layer.stage

    def _check_domains(self) -> None:
        taken: list[tuple[int, int, str]] = []
        for d in self.domains.values():
            if d.name == DEFAULT_DOMAIN:
                raise ExperimentError("name", "the default domain is implicit: it holds the "
                                              "traffic no other domain claims")
            for a, b in d.ranges:
                if a < 0 or b > DOMAIN_BUCKETS or b <= a:
                    raise ExperimentError("ranges", f"[{a}, {b}) is outside the domain "
                                                    f"buckets [0, {DOMAIN_BUCKETS})")
                for a2, b2, other in taken:
                    if a < b2 and a2 < b:
                        raise ExperimentError("ranges", f"[{a}, {b}) overlaps domain "
                                                        f"{other!r} [{a2}, {b2})")
                taken.append((a, b, d.name))

    def _check_layers(self) -> None:
        seen: dict[tuple[str, str], str] = {}
        for layer in self.layers.values():
            if layer.domain != DEFAULT_DOMAIN and layer.domain not in self.domains:
                raise ExperimentError("domain", f"layer {layer.name!r}: unknown domain "
                                                f"{layer.domain!r}")
            if layer.name == LAUNCH and (layer.stage or layer.domain != DEFAULT_DOMAIN):
                raise ExperimentError("name", "the launch layer is built in")
            if layer.stage is None:
                continue
            key = (layer.domain, layer.stage)
            if key in seen:
                raise ExperimentError(
                    "stage", f"layers {seen[key]!r} and {layer.name!r} both set the "
                             f"{layer.stage} id in domain {layer.domain!r}: a request must be "
                             "in at most one experiment per stage")
            seen[key] = layer.name

    def check_experiment(self, exp: Experiment, strategies: StrategyFile
                          ) -> dict[tuple[str, str], BaseModel]:
        layer = self.layers.get(exp.layer)
        if layer is None:
            raise ExperimentError("layer", f"unknown layer {exp.layer!r} "
                                           f"(known: {', '.join(self.layers)})")
        if layer.name == LAUNCH:
            if exp.stage is None:
                raise ExperimentError("stage", "a launch names the stage it sets")
            if len(exp.variants) != 1:
                raise ExperimentError("variants", "a launch has exactly one variant")
        else:
            if exp.stage is not None and exp.stage != layer.stage:
                raise ExperimentError("stage", f"layer {layer.name!r} sets "
                                               f"{layer.stage or 'no stage'}")
            if len(exp.variants) < 2:
                raise ExperimentError("variants", "an experiment needs a control and at least "
                                                  "one other variant")
        for a, b in exp.ranges:
            if b > layer.buckets:
                raise ExperimentError("ranges", f"[{a}, {b}) is outside layer {layer.name!r}'s "
                                                f"buckets [0, {layer.buckets})")
        stage = self.stage_of(exp)
        derived: dict[tuple[str, str], BaseModel] = {}
        for i, v in enumerate(exp.variants):
            where = f"variants[{i}]"
            if stage is None:
                if v.stage_id is not None:
                    raise ExperimentError(f"{where}.stage_id",
                                          f"layer {layer.name!r} sets no stage id")
                continue
            known: dict[str, BaseModel] = getattr(strategies, stage)
            if v.stage_id is None:
                raise ExperimentError(f"{where}.stage_id", f"a {stage} id is required")
            if v.stage_id not in known:
                raise ExperimentError(f"{where}.stage_id",
                                      f"unknown {stage} id {v.stage_id!r} "
                                      f"(known: {', '.join(sorted(known))})")
            if v.params:
                did = derived_id(v.stage_id, exp.id, v.name)
                derived[(stage, did)] = derive(known[v.stage_id], v.params, f"{where}.params")
        return derived

    def _check_overlaps(self) -> None:
        live = sorted((e for e in self.experiments.values() if e.live), key=lambda e: e.id)
        for i, e in enumerate(live):
            for o in live[:i]:
                if o.layer != e.layer or self.stage_of(o) != self.stage_of(e):
                    continue
                scenes = set(o.scenes) & set(e.scenes)
                if not scenes:
                    continue
                for a, b in e.ranges:
                    for a2, b2 in o.ranges:
                        if a < b2 and a2 < b:
                            raise ExperimentError(
                                "ranges", f"[{a}, {b}) overlaps experiment {o.id} "
                                          f"({o.name!r}) [{a2}, {b2}) in layer {e.layer!r} for "
                                          f"{', '.join(sorted(s.value for s in scenes))}")
                both = set(o.whitelist) & set(e.whitelist)
                if both:
                    raise ExperimentError("whitelist", f"unit {sorted(both)[0]!r} is already "
                                                       f"whitelisted in experiment {o.id}")


def derive(base: BaseModel, overrides: dict[str, Any], where: str) -> BaseModel:
    """The stage strategy with a variant's overrides deep-merged, validated like the strategy
    file (a rank id's ranker validates its own params)."""
    merged = _merge(base.model_dump(), overrides)
    try:
        strategy = type(base).model_validate(merged)
    except ValidationError as exc:
        raise ExperimentError(where, explain_errors(exc, "derived strategy")) from None
    try:
        check_plugins(strategy, "derived strategy")
    except ConfigError as exc:
        raise ExperimentError(where, str(exc)) from None
    return strategy


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) \
            else v
    return out
