"""The rules boundary: turn a ranked list into the final one, reporting what changed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tuijian.data.items import ItemFeatureCenter
from tuijian.domain import Candidates


@dataclass(slots=True)
class RuleReport:
    """What one rule did to one list: items it removed, moved or added (counted in metrics
    and logged with the exposure, so effect data can tell what each rule costs)."""

    rule: str
    removed: int = 0
    moved: int = 0
    added: int = 0


@dataclass(slots=True, frozen=True)
class RuleContext:
    store: ItemFeatureCenter
    n: int  # items the request shows: quotas, scatter and pins are about these
    now: float


class Rule(Protocol):
    name: str

    def apply(self, cands: Candidates, ctx: RuleContext) -> tuple[Candidates, RuleReport]: ...
