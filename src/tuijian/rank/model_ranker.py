"""The learned ranker: a rank id's models (by objective) fused by its formula.

    rank:
      rk_gbdt_lr:
        ranker: model
        params:
          models: {ctr: ctr_gbdt_lr, cvr: cvr_gbdt}   # formula name → registry model name
          formula: "ctr * cvr ** 0.5"

The raw inputs are built once per request and shared by every model; each model transforms
them with its own fitted feature config. Until every model is deployed (a fresh install, a
rejected first version) the rank id serves the rule order instead of failing.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tuijian.domain import Candidates, FloatArray
from tuijian.rank.base import ModelLookup, RankContext
from tuijian.rank.deployed import DeployedModel
from tuijian.rank.features.marketplace import ServingContext, online_inputs
from tuijian.rank.formula import compile_formula
from tuijian.rank.rule_order import RuleOrderRanker


class ModelRankParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: dict[str, str] = Field(min_length=1)
    formula: str | None = None  # default: the product of every model's prediction
    position: int = Field(0, ge=0)  # the slot scored as: the real one is not known yet
    fallback: dict[str, Any] = Field(default_factory=dict)  # the rule order's params


class ModelRanker:
    name = "model"

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = ModelRankParams.model_validate(params)
        names = set(self.params.models)
        bad = [n for n in names if not n.isidentifier()]
        if bad:
            raise ValueError(f"models: {bad} cannot be used in a formula (not identifiers)")
        self.formula = compile_formula(self.params.formula or " * ".join(sorted(names)), names)
        self.fallback = RuleOrderRanker(self.params.fallback)

    def click_model(self, models: ModelLookup) -> DeployedModel | None:
        for name in self.params.models.values():
            model = models(name)
            if (model is not None and model.objective == "click"
                    and model.manifest.population == "exposures"):
                return model
        return None

    def score(self, cands: Candidates, ctx: RankContext) -> FloatArray:
        models = {key: ctx.models(name) for key, name in self.params.models.items()}
        missing = [self.params.models[k] for k, m in models.items() if m is None]
        if missing or ctx.users is None:
            ctx.degraded.append("rank.model_missing")
            return self.fallback.score(cands, ctx)
        req = ctx.request
        raw = online_inputs(ctx.store, ctx.users,
                            ServingContext(ctx.profile, req.scene.value, req.platform, req.now),
                            cands, self.params.position)
        preds = {key: m.predict(raw) for key, m in models.items() if m is not None}
        return self.formula(preds)
