"""One rule id as the chain of rules the pipeline runs, in the order `spec.py` documents."""

from __future__ import annotations

from tuijian.rules.base import Rule
from tuijian.rules.business import build
from tuijian.rules.dedup import Dedup
from tuijian.rules.scatter import Scatter
from tuijian.rules.spec import BoostRule, BuryRule, FilterRule, PinRule, QuotaRule, RuleStrategy


def rule_chain(spec: RuleStrategy) -> list[Rule]:
    early = [build(r) for r in spec.business if isinstance(r, FilterRule | BoostRule | BuryRule)]
    quotas = [build(r) for r in spec.business if isinstance(r, QuotaRule)]
    pins = [build(r) for r in spec.business if isinstance(r, PinRule)]
    chain: list[Rule] = [*early]
    if spec.dedup is not None:
        chain.append(Dedup(spec.dedup))
    chain += quotas
    if spec.scatter:
        chain.append(Scatter(spec.scatter))
    return chain + pins
