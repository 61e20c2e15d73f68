"""Business rules from the strategy file: filter, boost, bury, quota, pin.

Conditions were parsed and checked when the strategy file loaded (`spec.parse_when`); here they
are vectorized masks over the candidates' gathered columns, so a rule costs a few numpy ops.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from tuijian.domain import Candidates
from tuijian.recall.registry import SOURCE_CODE
from tuijian.rules.base import RuleContext, RuleReport
from tuijian.rules.spec import (
    NAMED,
    BoostRule,
    BuryRule,
    FilterRule,
    PinRule,
    QuotaRule,
    Test,
)

Mask = npt.NDArray[np.bool_]
_DAY_S = 86_400.0


def matches(tests: Sequence[Test], cands: Candidates, ctx: RuleContext) -> Mask:
    """Rows meeting every test."""
    stored = sorted({t.field for t in tests} - {"age_days", "item_id"})
    cols = ctx.store.gather(cands.idx, stored)
    if any(t.field == "age_days" for t in tests):
        created = ctx.store.gather(cands.idx, ("created_ts",))["created_ts"]
        cols["age_days"] = (ctx.now - created) / _DAY_S
    if any(t.field == "item_id" for t in tests):
        cols["item_id"] = ctx.store.gather(cands.idx, ("item_id",))["item_id"]
    mask = np.ones(len(cands), bool)
    for t in tests:
        col = np.asarray(cols[t.field])
        # compare in the column's own precision: 0.9 as float32 is below 0.9 as float64
        dtype = col.dtype if col.dtype.kind == "f" else np.dtype(np.float64)
        values = np.asarray(t.values, dtype)
        v = values[0]
        if t.op == "eq":
            mask &= col == v
        elif t.op == "ne":
            mask &= col != v
        elif t.op == "lt":
            mask &= col < v
        elif t.op == "lte":
            mask &= col <= v
        elif t.op == "gt":
            mask &= col > v
        elif t.op == "gte":
            mask &= col >= v
        elif t.op == "in":
            mask &= np.isin(col, values)
        else:
            mask &= ~np.isin(col, values)
    return mask


def _moved(order: npt.NDArray[np.int64]) -> int:
    return int(np.count_nonzero(order != np.arange(len(order))))


class Filter:
    def __init__(self, spec: FilterRule) -> None:
        self.name = spec.name or "filter"
        self.tests = spec.tests()

    def apply(self, cands: Candidates, ctx: RuleContext) -> tuple[Candidates, RuleReport]:
        hit = matches(self.tests, cands, ctx)
        return cands.take(np.flatnonzero(~hit)), RuleReport(self.name, removed=int(hit.sum()))


class Boost:
    """Multiply matching items' scores (a factor below 1 demotes) and re-sort."""

    def __init__(self, spec: BoostRule) -> None:
        self.name = spec.name or "boost"
        self.tests, self.factor = spec.tests(), spec.factor

    def apply(self, cands: Candidates, ctx: RuleContext) -> tuple[Candidates, RuleReport]:
        hit = matches(self.tests, cands, ctx)
        if not hit.any():
            return cands, RuleReport(self.name)
        # scores may be negative (log-odds rankers): scale the distance from the minimum
        base = cands.score - min(0.0, float(cands.score.min()))
        score = np.where(hit, base * self.factor, base)
        order = np.argsort(-score, kind="stable")
        return cands.rescored(score).take(order), RuleReport(self.name, moved=_moved(order))


class Bury:
    """Move matching items to the end, in their ranked order."""

    def __init__(self, spec: BuryRule) -> None:
        self.name = spec.name or "bury"
        self.tests = spec.tests()

    def apply(self, cands: Candidates, ctx: RuleContext) -> tuple[Candidates, RuleReport]:
        hit = matches(self.tests, cands, ctx)
        order = np.argsort(hit, kind="stable")
        return cands.take(order), RuleReport(self.name, moved=_moved(order))


class Quota:
    def __init__(self, spec: QuotaRule) -> None:
        self.name = spec.name or f"quota_{spec.field}"
        self.field = spec.field
        names = NAMED[spec.field]
        self.max = {names.index(k): v for k, v in spec.max.items()}
        self.share = {names.index(k): v for k, v in spec.share.items()}

    def apply(self, cands: Candidates, ctx: RuleContext) -> tuple[Candidates, RuleReport]:
        values = ctx.store.gather(cands.idx, (self.field,))[self.field].astype(np.int64)
        over = np.zeros(len(cands), bool)
        limits = dict(self.max)
        for code, share in self.share.items():
            limits[code] = min(limits.get(code, ctx.n), int(share * ctx.n))
        for code, limit in limits.items():
            rows = np.flatnonzero(values == code)
            over[rows[limit:]] = True
        order = np.argsort(over, kind="stable")
        moved = int(over[: ctx.n].sum()) if over.any() else 0
        return cands.take(order), RuleReport(self.name, moved=moved)


class Pin:
    def __init__(self, spec: PinRule) -> None:
        self.name = spec.name or "pin"
        self.position = spec.position
        self.item_ids = spec.item_ids
        self.tests = spec.tests() if spec.when is not None else None  # else item_ids

    def apply(self, cands: Candidates, ctx: RuleContext) -> tuple[Candidates, RuleReport]:
        added = 0
        if self.tests is not None:
            hit = np.flatnonzero(matches(self.tests, cands, ctx))
            rows = hit[:1]
        else:
            idx = ctx.store.index_of(self.item_ids)
            idx = idx[idx >= 0]
            if len(idx):
                idx = idx[ctx.store.gather(idx, ("active",))["active"] > 0]
            present = np.isin(idx, cands.idx)
            new = idx[~present]
            if len(new):  # pinned but not recalled: join the list
                top = float(cands.score.max(initial=1.0))
                cands = cands.concat(Candidates.placed(new, np.full(len(new), top),
                                                       SOURCE_CODE["pinned"]))
                added = len(new)
            rows = np.concatenate([np.flatnonzero(cands.idx == i)[:1] for i in idx]) \
                if len(idx) else np.empty(0, np.int64)
        if len(rows) == 0:
            return cands, RuleReport(self.name)
        rest = np.setdiff1d(np.arange(len(cands)), rows, assume_unique=True)
        at = min(self.position, len(rest))
        order = np.concatenate([rest[:at], rows, rest[at:]]).astype(np.int64)
        return cands.take(order), RuleReport(self.name, moved=_moved(order) - added,
                                             added=added)


def build(spec: FilterRule | BoostRule | BuryRule | QuotaRule | PinRule
          ) -> Filter | Boost | Bury | Quota | Pin:
    """The rule object for one `business:` entry."""
    kinds: dict[type, type] = {FilterRule: Filter, BoostRule: Boost, BuryRule: Bury,
                               QuotaRule: Quota, PinRule: Pin}
    rule: Filter | Boost | Bury | Quota | Pin = kinds[type(spec)](spec)
    return rule
