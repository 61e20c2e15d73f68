"""The experiment platform inside one service: the store, the assigner compiled from its
latest configuration, and the admin operations (each one audited transaction).

Serving reads `assign` on every request; `refresh` (polled every second or so by the server)
recompiles the assigner when the stored revision moves, so a change made by any process (the
web page, the CLI, another replica) is live within seconds and without a restart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from tuijian.config import StrategyFile
from tuijian.domain import RecommendRequest, StageIds
from tuijian.experiments.assignment import LayeredAssigner
from tuijian.experiments.model import (
    LAUNCH,
    STAGES,
    Domain,
    Experiment,
    ExperimentConfig,
    ExperimentError,
    Layer,
    Range,
    Variant,
)
from tuijian.experiments.store import AuditEntry, ExperimentStore

log = logging.getLogger(__name__)
EDITABLE = ("name", "description", "scenes", "variants", "control", "whitelist", "ranges")
# called with (stage, derived id, strategy) for each variant that overrides its stage's settings
OnDerived = Callable[[str, str, BaseModel], None]
M = TypeVar("M", bound=BaseModel)


class ExperimentPlatform:
    def __init__(self, store: ExperimentStore, strategies: StrategyFile,
                 on_derived: OnDerived | None = None) -> None:
        self.store, self.strategies = store, strategies
        self._on_derived = on_derived
        self.revision = -1
        self.config = ExperimentConfig()
        self.assigner = LayeredAssigner(self.config, strategies)
        self.refresh()

    def assign(self, request: RecommendRequest) -> StageIds:
        return self.assigner.assign(request)

    def refresh(self, force: bool = False) -> bool:
        """Recompile if the stored configuration changed (or, with `force`, the strategies
        did: derived strategies and scene defaults follow them); a stored configuration this
        service's strategies cannot serve (e.g. an id they lack) keeps the previous one."""
        rev = self.store.revision()
        if rev == self.revision and not force:
            return False
        rev, config = self.store.load()
        try:
            derived = config.check(self.strategies)
        except ExperimentError:
            log.exception("experiments revision %d is invalid here; keeping revision %d", rev,
                          self.revision)
            self.revision = rev
            return False
        if self._on_derived is not None:
            for (stage, sid), strategy in derived.items():
                self._on_derived(stage, sid, strategy)
        self.assigner = LayeredAssigner(config, self.strategies)
        self.config, self.revision = config, rev
        return True

    def check_strategies(self, new: StrategyFile) -> None:
        """Refuse a strategy change a live experiment could no longer serve (a variant whose
        params no longer derive a valid strategy from the changed one)."""
        try:
            self.config.check(new)
        except ExperimentError as exc:
            raise ExperimentError(f"experiments.{exc.field}",
                                  f"a live experiment would break: {exc.message}", 409) from None

    # -- experiments ---------------------------------------------------------------------------

    def get(self, exp_id: int) -> Experiment:
        exp = self.config.experiments.get(exp_id)
        if exp is None:
            raise ExperimentError("id", f"unknown experiment {exp_id}", 404)
        return exp

    def create(self, body: dict[str, Any], actor: str, percent: float | None = None
               ) -> Experiment:
        """A new experiment (a draft unless body says `status: running`); `percent` of the
        layer's traffic is allocated from free buckets when no ranges are given."""
        body = {k: v for k, v in body.items() if k not in ("id", "version", "created_at",
                                                            "updated_at")}
        if percent is not None and body.get("ranges"):
            raise ExperimentError("percent", "give either ranges or percent")
        exp = _parse(Experiment, {**body, "id": 0})
        created: list[Experiment] = []

        def fn(cfg: ExperimentConfig) -> str:
            now = time.time()
            new = exp.model_copy(update={"id": self.store.next_id(), "version": 1,
                                         "created_at": now, "updated_at": now})
            if percent is not None and not new.ranges:
                cfg.check_experiment(new, self.strategies)  # its own errors first
                new.ranges = allocate(cfg, new, percent)
            if new.status == "running" and not new.ranges:
                raise ExperimentError("ranges", "set traffic (ranges or percent) to start")
            cfg.experiments[new.id] = new
            created.append(new)
            return "create"

        self._change(fn, actor)
        return self.get(created[0].id)

    def update(self, exp_id: int, fields: dict[str, Any], actor: str) -> Experiment:
        bad = [k for k in fields if k not in EDITABLE]
        if bad:
            raise ExperimentError(bad[0], f"cannot be edited (editable: {', '.join(EDITABLE)})")
        return self._edit(exp_id, actor, "edit", lambda cfg, e: fields)

    def start(self, exp_id: int, actor: str) -> Experiment:
        def fields(cfg: ExperimentConfig, e: Experiment) -> dict[str, Any]:
            if not e.ranges:
                raise ExperimentError("ranges", "set traffic before starting")
            return {"status": "running"}

        return self._edit(exp_id, actor, "start", fields)

    def stop(self, exp_id: int, actor: str) -> Experiment:
        return self._edit(exp_id, actor, "stop", lambda cfg, e: {"status": "stopped"})

    def set_traffic(self, exp_id: int, actor: str, ranges: list[Range] | None = None,
                    percent: float | None = None) -> Experiment:
        if (ranges is None) == (percent is None):
            raise ExperimentError("ranges", "give either ranges or percent")

        def fields(cfg: ExperimentConfig, e: Experiment) -> dict[str, Any]:
            if percent is not None:
                return {"ranges": allocate(cfg, e, percent)}
            return {"ranges": ranges}

        return self._edit(exp_id, actor, "traffic", fields)

    def delete(self, exp_id: int, actor: str) -> None:
        """Only a draft that never ran: anything else has events that name it (stop it)."""
        def fn(cfg: ExperimentConfig) -> str:
            e = _existing(cfg, exp_id)
            ran = any((a.after or {}).get("status") == "running" for a in self.audit(exp_id))
            if e.status != "draft" or ran:
                raise ExperimentError("status", "only a draft that never ran can be deleted; "
                                                "stop it instead", 409)
            del cfg.experiments[exp_id]
            return "delete"

        self._change(fn, actor)

    def launch(self, exp_id: int, variant: str, actor: str, percent: float = 100.0
               ) -> Experiment:
        """Roll a variant out through the launch layer (to `percent` of everyone, every
        domain) and stop its experiment. An older launch of the same stage and scenes is
        superseded."""
        made: list[Experiment] = []

        def fn(cfg: ExperimentConfig) -> str:
            e = _existing(cfg, exp_id)
            v = next((v for v in e.variants if v.name == variant), None)
            if v is None:
                raise ExperimentError("variant", f"experiment {exp_id} has no variant "
                                                 f"{variant!r}")
            stage = cfg.stage_of(e)
            if stage is None:
                raise ExperimentError("layer", "a parameter layer's variant has no stage id "
                                               "to launch")
            now = time.time()
            for old in cfg.experiments.values():
                if (old.layer == LAUNCH and old.live and old.stage == stage
                        and set(old.scenes) & set(e.scenes)):
                    _bump(cfg, old, {"status": "stopped"}, now)
            if e.layer != LAUNCH:
                _bump(cfg, e, {"status": "stopped"}, now)
            new = Experiment(
                id=self.store.next_id(), name=f"launch {e.name}: {variant}", layer=LAUNCH,
                scenes=e.scenes, stage=stage, control="launch", status="running",
                variants=[Variant(name="launch", stage_id=v.stage_id, params=v.params)],
                version=1, created_at=now, updated_at=now,
                description=f"from experiment {e.id}, variant {variant}")
            new.ranges = allocate(cfg, new, percent)
            cfg.experiments[new.id] = new
            made.append(new)
            return "launch"

        self._change(fn, actor)
        return self.get(made[0].id)

    def _edit(self, exp_id: int, actor: str, action: str,
              fields: Callable[[ExperimentConfig, Experiment], dict[str, Any]]) -> Experiment:
        def fn(cfg: ExperimentConfig) -> str:
            e = _existing(cfg, exp_id)
            _bump(cfg, e, fields(cfg, e), time.time())
            return action

        self._change(fn, actor)
        return self.get(exp_id)

    # -- layers and domains --------------------------------------------------------------------

    def put_layer(self, body: dict[str, Any], actor: str) -> Layer:
        layer = _parse(Layer, body)
        if layer.name in STAGES + (LAUNCH,):
            built = self.config.layers[layer.name]
            if (layer.stage, layer.domain) != (built.stage, built.domain):
                raise ExperimentError("name", f"{layer.name!r} is a built-in layer: only its "
                                              "buckets, salt and description can change")

        def fn(cfg: ExperimentConfig) -> str:
            old = cfg.layers.get(layer.name)
            moved = old is not None and (old.buckets, old.hash_salt) != (layer.buckets,
                                                                         layer.hash_salt)
            if moved and any(e.live for e in cfg.experiments.values() if e.layer == layer.name):
                raise ExperimentError("buckets", "re-hashing a layer would move the units of "
                                                 "its live experiments: stop them first", 409)
            cfg.layers[layer.name] = layer
            return "put_layer"

        self._change(fn, actor)
        return layer

    def delete_layer(self, name: str, actor: str) -> None:
        if name in STAGES + (LAUNCH,):
            raise ExperimentError("name", f"{name!r} is a built-in layer", 409)
        self._delete("layer", name, actor,
                     lambda cfg: any(e.layer == name for e in cfg.experiments.values()))

    def put_domain(self, body: dict[str, Any], actor: str) -> Domain:
        domain = _parse(Domain, body)

        def fn(cfg: ExperimentConfig) -> str:
            old = cfg.domains.get(domain.name)
            if old is not None and old.ranges != domain.ranges and any(
                    e.live and cfg.layers[e.layer].domain == domain.name
                    for e in cfg.experiments.values()):
                raise ExperimentError("ranges", "moving a domain's traffic would move the units "
                                                "of its live experiments: stop them first", 409)
            cfg.domains[domain.name] = domain
            return "put_domain"

        self._change(fn, actor)
        return domain

    def delete_domain(self, name: str, actor: str) -> None:
        self._delete("domain", name, actor,
                     lambda cfg: any(la.domain == name for la in cfg.layers.values()))

    def _delete(self, kind: str, name: str, actor: str,
                in_use: Callable[[ExperimentConfig], bool]) -> None:
        """Remove a layer or domain that nothing refers to (experiments name their layer in
        events forever, so a layer that ever held one stays)."""
        def fn(cfg: ExperimentConfig) -> str:
            records: dict[str, Any] = getattr(cfg, f"{kind}s")
            if name not in records:
                raise ExperimentError("name", f"unknown {kind} {name!r}", 404)
            if in_use(cfg):
                raise ExperimentError("name", f"{kind} {name!r} is in use", 409)
            del records[name]
            return f"delete_{kind}"

        self._change(fn, actor)

    # -- reading -------------------------------------------------------------------------------

    def audit(self, exp_id: int | None = None, limit: int = 200) -> list[AuditEntry]:
        if exp_id is None:
            return self.store.audit(limit=limit)
        return self.store.audit("experiments", str(exp_id), limit)

    def occupancy(self) -> list[dict[str, Any]]:
        """Per layer: its buckets and who holds which (what the web page draws)."""
        out = []
        for layer in self.config.layers.values():
            held = [e for e in self.config.experiments.values()
                    if e.layer == layer.name and e.live]
            used = len({b for e in held for a, z in e.ranges for b in range(a, z)})
            out.append({**layer.model_dump(), "used": used, "experiments": [
                {"id": e.id, "name": e.name, "status": e.status, "ranges": e.ranges,
                 "scenes": e.scenes, "stage": self.config.stage_of(e)} for e in held]})
        return out

    def _change(self, fn: Callable[[ExperimentConfig], str], actor: str) -> ExperimentConfig:
        def validate(cfg: ExperimentConfig) -> None:
            cfg.check(self.strategies)

        config = self.store.change(fn, actor, validate)
        self.refresh()
        return config


def allocate(cfg: ExperimentConfig, exp: Experiment, percent: float) -> list[Range]:
    """Bucket ranges for `percent` of the layer: the experiment keeps the buckets it has
    (dropping its last ones when shrinking, so the units that stay keep their variant) and
    grows into the lowest free buckets, those no other live experiment of the same layer,
    stage and scenes holds."""
    if not 0 <= percent <= 100:
        raise ExperimentError("percent", "must be between 0 and 100")
    layer = cfg.layers.get(exp.layer)
    if layer is None:
        raise ExperimentError("layer", f"unknown layer {exp.layer!r}")
    target = round(layer.buckets * percent / 100)
    mine = sorted(b for a, z in exp.ranges for b in range(a, z))[:target]
    taken = set(mine)
    for o in cfg.experiments.values():
        if (o.id != exp.id and o.layer == exp.layer and o.live
                and cfg.stage_of(o) == cfg.stage_of(exp) and set(o.scenes) & set(exp.scenes)):
            taken.update(b for a, z in o.ranges for b in range(a, z))
    free = (b for b in range(layer.buckets) if b not in taken)
    while len(mine) < target:
        b = next(free, None)
        if b is None:
            raise ExperimentError("percent", f"layer {exp.layer!r} has only "
                                             f"{100 * (len(mine)) / layer.buckets:g}% free "
                                             "for these scenes")
        mine.append(b)
    return _ranges(sorted(mine))


def _ranges(buckets: list[int]) -> list[Range]:
    out: list[Range] = []
    for b in buckets:
        if out and out[-1][1] == b:
            out[-1] = (out[-1][0], b + 1)
        else:
            out.append((b, b + 1))
    return out


def _existing(cfg: ExperimentConfig, exp_id: int) -> Experiment:
    e = cfg.experiments.get(exp_id)
    if e is None:
        raise ExperimentError("id", f"unknown experiment {exp_id}", 404)
    return e


def _bump(cfg: ExperimentConfig, e: Experiment, fields: dict[str, Any], now: float) -> None:
    """A new version of the experiment, re-validated as a whole."""
    body = {**e.model_dump(), **fields, "version": e.version + 1, "updated_at": now}
    cfg.experiments[e.id] = _parse(Experiment, body)


def _parse(model: type[M], body: dict[str, Any]) -> M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        if not loc and ": " in msg:  # a model validator names the field in its message
            loc, msg = msg.split(": ", 1)
        raise ExperimentError(loc or "body", msg) from None

