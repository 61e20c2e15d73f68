"""Stage-id assignment: which recall / rank / rule / display strategy serves a request.

`DefaultAssigner` gives every request its scene's defaults from the strategy file.
`LayeredAssigner` is the experiment platform's: scene defaults, then the launch layer, then
one experiment per layer of the unit's domain (see model.py). It is compiled from one
validated configuration snapshot into per-(layer, scene) bucket tables, so an assignment is a
handful of hashes and list lookups: microseconds, no I/O.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Protocol

from tuijian.config import StrategyFile
from tuijian.domain import ExperimentTag, RecommendRequest, Scene, StageIds
from tuijian.experiments.hashing import DOMAIN_BUCKETS, DOMAIN_SALT, VARIANT_BUCKETS, bucket
from tuijian.experiments.model import (
    DEFAULT_DOMAIN,
    LAUNCH,
    Experiment,
    ExperimentConfig,
    Layer,
    derived_id,
)


class Assigner(Protocol):
    def assign(self, request: RecommendRequest) -> StageIds: ...


class DefaultAssigner:
    def __init__(self, strategies: StrategyFile) -> None:
        self._ids = scene_defaults(strategies)

    def assign(self, request: RecommendRequest) -> StageIds:
        d = self._ids[request.scene]
        return StageIds(d["recall"], d["rank"], d["rule"], d["display"])


def scene_defaults(strategies: StrategyFile) -> dict[Scene, dict[str, str]]:
    return {scene: d.model_dump() for scene, d in strategies.scenes.items()}


@dataclass(slots=True)
class _Arm:
    """A running experiment as the assigner sees it."""

    exp: Experiment
    stage: str | None
    salt: str
    cuts: list[int]  # cumulative variant weights over VARIANT_BUCKETS
    stage_ids: list[str | None]  # per variant: the (possibly derived) stage id
    params: list[dict[str, Any]]

    def variant(self, unit: str) -> int:
        return bisect.bisect_right(self.cuts, bucket(unit, self.salt, VARIANT_BUCKETS))


@dataclass(slots=True)
class _Plan:
    layer: Layer
    # per scene, per bucket: the arms whose ranges hold it (at most one per stage)
    table: dict[Scene, list[tuple[_Arm, ...]]]


_Placed = tuple[tuple[_Arm, int, bool], ...]  # (arm, variant index, forced by a whitelist)


@dataclass(slots=True, frozen=True)
class LayerAssignment:
    layer: str
    experiment: int | None
    variant: str | None
    stage_id: str | None
    params: dict[str, Any]
    forced: bool = False


class LayeredAssigner:
    def __init__(self, config: ExperimentConfig, strategies: StrategyFile) -> None:
        self.config = config
        self._defaults = scene_defaults(strategies)
        self._domain_of = [DEFAULT_DOMAIN] * DOMAIN_BUCKETS
        for d in config.domains.values():
            for a, b in d.ranges:
                self._domain_of[a:b] = [d.name] * (b - a)
        arms = {e.id: self._arm(e) for e in config.experiments.values()
                if e.status == "running"}
        self._plans: dict[str, _Plan] = {}
        for layer in config.layers.values():
            table: dict[Scene, list[tuple[_Arm, ...]]] = {s: [()] * layer.buckets
                                                            for s in Scene}
            for arm in arms.values():
                if arm.exp.layer != layer.name:
                    continue
                for scene in arm.exp.scenes:
                    col = table[scene]
                    for a, b in arm.exp.ranges:
                        for i in range(a, b):
                            col[i] = (*col[i], arm)
            self._plans[layer.name] = _Plan(layer, table)
        self._by_domain: dict[str, list[_Plan]] = {}
        for plan in self._plans.values():
            if plan.layer.name != LAUNCH:
                self._by_domain.setdefault(plan.layer.domain, []).append(plan)
        # unit -> layer -> the arms (one per scene set) that force it, with the variant
        self._whitelist: dict[str, dict[str, list[tuple[_Arm, int]]]] = {}
        for arm in arms.values():
            names = [v.name for v in arm.exp.variants]
            for unit, v in arm.exp.whitelist.items():
                self._whitelist.setdefault(unit, {}).setdefault(arm.exp.layer, []).append(
                    (arm, names.index(v)))

    def _arm(self, exp: Experiment) -> _Arm:
        weights = [v.weight for v in exp.variants]
        total = sum(weights)
        cuts = [round(c / total * VARIANT_BUCKETS) for c in accumulate(weights)][:-1]
        ids = [derived_id(v.stage_id, exp.id, v.name) if v.params and v.stage_id else v.stage_id
               for v in exp.variants]
        salt = f"{self.config.layers[exp.layer].hash_salt}.{exp.id}"
        return _Arm(exp, self.config.stage_of(exp), salt, cuts, ids,
                    [v.params for v in exp.variants])

    def domain(self, unit: str, forced: dict[str, tuple[_Arm, int]] | None = None) -> str:
        """The unit's domain: by hash, unless a whitelist forces it into an experiment of a
        layer in another domain (a tester must reach the experiment wherever it runs)."""
        for layer in forced or ():
            if layer != LAUNCH:
                return self._plans[layer].layer.domain
        return self._domain_of[bucket(unit, DOMAIN_SALT, DOMAIN_BUCKETS)]

    def layers(self, unit: str, scene: Scene) -> list[tuple[_Plan, _Placed]]:
        """Per applicable layer (launch first), the arms the unit is in and its variants."""
        forced = {layer: (a, v) for layer, arms in self._whitelist.get(unit, {}).items()
                  for a, v in arms if scene in a.exp.scenes}
        plans = [self._plans[LAUNCH], *self._by_domain.get(self.domain(unit, forced), ())]
        out: list[tuple[_Plan, _Placed]] = []
        for plan in plans:
            f = forced.get(plan.layer.name)
            if f is not None:
                out.append((plan, ((f[0], f[1], True),)))
                continue
            arms = plan.table[scene][bucket(unit, plan.layer.hash_salt, plan.layer.buckets)]
            out.append((plan, tuple((arm, arm.variant(unit), False) for arm in arms)))
        return out

    def assign(self, request: RecommendRequest) -> StageIds:
        ids = dict(self._defaults[request.scene])
        tags: list[ExperimentTag] = []
        params: dict[str, Any] = {}
        for plan, arms in self.layers(request.user_id, request.scene):
            for arm, v, forced in arms:
                tags.append(ExperimentTag(plan.layer.name, arm.exp.id,
                                          arm.exp.variants[v].name, forced))
                sid = arm.stage_ids[v]
                if arm.stage is not None and sid is not None:
                    ids[arm.stage] = sid
                elif arm.params[v]:
                    params[plan.layer.name] = arm.params[v]
        return StageIds(ids["recall"], ids["rank"], ids["rule"], ids["display"], tuple(tags),
                        params)

    def explain(self, unit: str, scene: Scene) -> dict[str, LayerAssignment]:
        """Per layer of the unit's domain (and the launch layer): where the unit is, and the
        stage id it gets; what `GET /v1/experiments/assignment` answers."""
        out: dict[str, LayerAssignment] = {}
        ids = dict(self._defaults[scene])
        for plan, arms in self.layers(unit, scene):
            layer = plan.layer
            for arm, v, forced in arms:  # the launch layer may hold one launch per stage
                sid = arm.stage_ids[v]
                if arm.stage is not None and sid is not None:
                    ids[arm.stage] = sid
                key = layer.name if len(arms) == 1 else f"{layer.name}.{arm.stage}"
                out[key] = LayerAssignment(layer.name, arm.exp.id, arm.exp.variants[v].name,
                                           sid, arm.params[v], forced)
            if not arms:
                sid = ids[layer.stage] if layer.stage else None
                out[layer.name] = LayerAssignment(layer.name, None, None, sid, {})
        return out
