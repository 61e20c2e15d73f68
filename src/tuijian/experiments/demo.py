"""The experiments `make run` ships running, so the page and the reports show real results
from simulated traffic: one A/B test in the recall layer and one in the rank layer."""

from __future__ import annotations

from tuijian.experiments.model import Experiment
from tuijian.experiments.platform import ExperimentPlatform

SCENES = ["guess_you_like", "feed"]
DEMO: list[dict[str, object]] = [
    {"name": "recall fusion: quotas vs reciprocal rank", "layer": "recall", "scenes": SCENES,
     "status": "running", "description": "r_rrf fuses the same sources by reciprocal rank",
     "variants": [{"name": "control", "stage_id": "r_default"},
                  {"name": "rrf", "stage_id": "r_rrf"}]},
    {"name": "ranking: learned CTR×CVR vs the rule order", "layer": "rank", "scenes": SCENES,
     "status": "running", "description": "does the deployed GBDT+LR / GBDT pair beat rk_rule?",
     "variants": [{"name": "control", "stage_id": "rk_rule"},
                  {"name": "learned", "stage_id": "rk_ctr_cvr"}]},
]


def seed_demo(platform: ExperimentPlatform) -> list[Experiment]:
    """Create the demo experiments unless the store already holds experiments."""
    if platform.config.experiments:
        return []
    return [platform.create(dict(body), "demo", percent=100) for body in DEMO]
