"""The experiment platform's HTTP API: layers, domains and experiments (admin actions need
the admin key in `X-API-Key`), assignment lookups and reports (open to read)."""


from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from tuijian.domain import Scene
from tuijian.experiments.model import Domain, Experiment, Layer, Name, Range, Stage, Variant
from tuijian.experiments.report import experiment_report
from tuijian.serving.auth import Scope, require
from tuijian.serving.service import Service


class ExperimentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "name": "rrf fusion", "layer": "recall", "scenes": ["guess_you_like", "feed"],
        "percent": 20, "status": "running", "variants": [
            {"name": "control", "stage_id": "r_default"},
            {"name": "rrf", "stage_id": "r_rrf"}]}]})

    name: str = Field(min_length=1, max_length=100)
    layer: Name
    scenes: list[Scene] = Field(min_length=1)
    variants: list[Variant] = Field(min_length=1)
    control: Name = "control"
    ranges: list[Range] = Field(default_factory=list)
    percent: float | None = Field(None, ge=0, le=100)  # of the layer, from free buckets
    whitelist: dict[str, Name] = Field(default_factory=dict)
    stage: Stage | None = None
    status: Literal["draft", "running"] = "draft"
    description: str = ""


class ExperimentPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=100)
    description: str | None = None
    scenes: list[Scene] | None = Field(None, min_length=1)
    variants: list[Variant] | None = Field(None, min_length=1)
    control: Name | None = None
    whitelist: dict[str, Name] | None = None


class TrafficIn(BaseModel):
    """Either bucket ranges or a percent of the layer (the platform says if both or neither)."""

    model_config = ConfigDict(extra="forbid")

    ranges: list[Range] | None = None
    percent: float | None = Field(None, ge=0, le=100)


class LaunchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variant: Name
    percent: float = Field(100.0, gt=0, le=100)


class LayerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: Stage | None = None
    domain: Name = "default"
    buckets: Literal[1000, 10_000] = 1000
    salt: str = ""
    description: str = ""


class DomainIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ranges: list[Range]
    description: str = ""


def experiments_router(service: Service) -> APIRouter:
    router = APIRouter(prefix="/v1/experiments", tags=["experiments"])
    platform = service.experiments

    def admin(_: Annotated[Scope | None, Depends(require(service.settings, Scope.ADMIN))],
              x_actor: Annotated[str | None, Header(max_length=64)] = None) -> str:
        """The actor an audited change is recorded under."""
        return f"admin:{x_actor}" if x_actor else "admin"

    Admin = Annotated[str, Depends(admin)]

    @router.get("/assignment")
    def assignment(unit: Annotated[str, Query(min_length=1, max_length=128)],
                   scene: Scene = Scene.GUESS_YOU_LIKE) -> dict[str, Any]:
        """Where a unit (user id, else device id) is in every layer, for a scene."""
        a = platform.assigner
        layers = {k: {"experiment": v.experiment, "variant": v.variant, "stage_id": v.stage_id,
                      "params": v.params, "forced": v.forced}
                  for k, v in a.explain(unit, scene).items()}
        return {"unit": unit, "scene": scene.value, "domain": a.domain(unit),
                "revision": platform.revision, "layers": layers}

    @router.get("/layers")
    def layers() -> list[dict[str, Any]]:
        """Every layer with its bucket occupancy."""
        return platform.occupancy()

    @router.put("/layers/{name}")
    def put_layer(name: Name, body: LayerIn, actor: Admin) -> Layer:
        return platform.put_layer({"name": name, **body.model_dump()}, actor)

    @router.delete("/layers/{name}", status_code=204)
    def delete_layer(name: str, actor: Admin) -> Response:
        platform.delete_layer(name, actor)
        return Response(status_code=204)

    @router.get("/domains")
    def domains() -> list[Domain]:
        return list(platform.config.domains.values())

    @router.put("/domains/{name}")
    def put_domain(name: Name, body: DomainIn, actor: Admin) -> Domain:
        return platform.put_domain({"name": name, **body.model_dump()}, actor)

    @router.delete("/domains/{name}", status_code=204)
    def delete_domain(name: str, actor: Admin) -> Response:
        platform.delete_domain(name, actor)
        return Response(status_code=204)

    @router.get("/audit")
    def audit(limit: Annotated[int, Query(gt=0, le=1000)] = 200) -> list[dict[str, Any]]:
        return [asdict(a) for a in platform.audit(limit=limit)]

    @router.get("")
    def list_experiments(status: str | None = None, layer: str | None = None
                         ) -> list[Experiment]:
        return [e for e in sorted(platform.config.experiments.values(), key=lambda e: -e.id)
                if (status is None or e.status == status) and (layer is None or e.layer == layer)]

    @router.post("", status_code=201)
    def create(body: ExperimentIn, actor: Admin) -> Experiment:
        fields = body.model_dump(exclude={"percent"})
        return platform.create(fields, actor, body.percent)

    @router.get("/{exp_id}")
    def get(exp_id: int) -> Experiment:
        return platform.get(exp_id)

    @router.patch("/{exp_id}")
    def patch(exp_id: int, body: ExperimentPatch, actor: Admin) -> Experiment:
        return platform.update(exp_id, body.model_dump(exclude_none=True), actor)

    @router.delete("/{exp_id}", status_code=204)
    def delete(exp_id: int, actor: Admin) -> Response:
        platform.delete(exp_id, actor)
        return Response(status_code=204)

    @router.post("/{exp_id}/start")
    def start(exp_id: int, actor: Admin) -> Experiment:
        return platform.start(exp_id, actor)

    @router.post("/{exp_id}/stop")
    def stop(exp_id: int, actor: Admin) -> Experiment:
        return platform.stop(exp_id, actor)

    @router.post("/{exp_id}/traffic")
    def traffic(exp_id: int, body: TrafficIn, actor: Admin) -> Experiment:
        return platform.set_traffic(exp_id, actor, body.ranges, body.percent)

    @router.post("/{exp_id}/launch", status_code=201)
    def launch(exp_id: int, body: LaunchIn, actor: Admin) -> Experiment:
        """Roll a variant out to `percent` of everyone; the experiment stops."""
        return platform.launch(exp_id, body.variant, actor, body.percent)

    @router.get("/{exp_id}/report")
    def report(exp_id: int, alpha: Annotated[float, Query(gt=0, lt=0.5)] = 0.05,
               mde: Annotated[float, Query(gt=0, lt=10)] = 0.05) -> dict[str, Any]:
        exp = platform.get(exp_id)
        service.exposures.flush()
        return experiment_report(service.log.relation_sql(), exp, alpha=alpha, mde=mde)

    @router.get("/{exp_id}/audit")
    def experiment_audit(exp_id: int) -> list[dict[str, Any]]:
        platform.get(exp_id)
        return [asdict(a) for a in platform.audit(exp_id)]

    return router
