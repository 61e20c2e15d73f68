"""The rules boundary: turn a ranked list into the final one, reporting what changed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tuijian.data.items import ItemFeatureCenter
from tuijian.domain import Candidates


@dataclass(slots=True)
class RuleReport:
    rule: str
    removed: int = 0
    moved: int = 0


class Rule(Protocol):
    name: str

    def apply(self, cands: Candidates, store: ItemFeatureCenter, n: int) -> tuple[
        Candidates, RuleReport]: ...
