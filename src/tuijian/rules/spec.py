"""What a rule id means: the validated `rule:` entries of the strategy file.

A rule id runs, in this fixed order: business filters / boosts / burials (in file order),
dedup, quotas, scatter, pins. The order is fixed because each step needs the one before: quotas
and scatter count what dedup left, and a pin is a promise about the final positions.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tuijian.data import vocab

# The item attributes conditions may test, with the vocabulary that names their codes.
NAMED: dict[str, tuple[str, ...]] = {
    "line": vocab.LINES, "category": vocab.CATEGORIES, "city": vocab.CITY_NAMES,
    "brand": vocab.BRANDS, "series": vocab.SERIES, "salary_band": vocab.SALARY_BANDS,
    "job_type": vocab.JOB_TYPES,
}
NUMERIC = ("price", "rooms", "area", "floor", "year", "mileage_km", "quality", "publisher_id",
           "district", "price_band", "exposures", "clicks", "converts")
DERIVED = ("age_days", "item_id")
CONDITION_FIELDS = (*NAMED, *NUMERIC, *DERIVED)
SCATTER_FIELDS = ("publisher_id", "category", "district", "line", "city", "brand")
OPS = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in")
Scalar = float | int | str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _code(field: str, value: Scalar) -> float:
    """A condition value as the stored number: names of coded fields become their codes."""
    if field in NAMED:
        if not isinstance(value, str) or value not in NAMED[field]:
            raise ValueError(f"{field}: unknown {field} {value!r}")
        return float(NAMED[field].index(value))
    if isinstance(value, str | bool):
        raise ValueError(f"{field}: expected a number, got {value!r}")
    return float(value)


class Test(_Strict):
    """One field's test: `op` against `values` (stored codes)."""

    field: str
    op: Literal["eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in"]
    values: tuple[float, ...]


def parse_when(raw: dict[str, Any]) -> list[Test]:
    """`{line: job, price: {lt: 1000}, city: {in: [Beijing, Shanghai]}}` as tests, with every
    field, operator and name checked."""
    if not raw:
        raise ValueError("when: needs at least one condition")
    tests = []
    for field, cond in raw.items():
        if field not in CONDITION_FIELDS:
            raise ValueError(f"when.{field}: unknown field (known: {', '.join(CONDITION_FIELDS)})")
        ops = cond if isinstance(cond, dict) else {"in" if isinstance(cond, list) else "eq": cond}
        for op, value in ops.items():
            if op not in OPS:
                raise ValueError(f"when.{field}.{op}: unknown operator (known: {', '.join(OPS)})")
            many = op in ("in", "not_in")
            if many != isinstance(value, list):
                raise ValueError(f"when.{field}.{op}: "
                                 + ("expects a list" if many else "expects a single value"))
            values = value if many else [value]
            try:
                codes = tuple(_code(field, v) for v in values)
            except ValueError as exc:
                raise ValueError(f"when.{exc}") from None
            tests.append(Test(field=field, op=op, values=codes))
    return tests


class _Conditional(_Strict):
    name: str | None = None
    when: dict[str, Any]

    @field_validator("when")
    @classmethod
    def _check(cls, v: dict[str, Any]) -> dict[str, Any]:
        parse_when(v)
        return v

    def tests(self) -> list[Test]:
        return parse_when(self.when)


class FilterRule(_Conditional):
    action: Literal["filter"]


class BoostRule(_Conditional):
    action: Literal["boost"]
    factor: float = Field(gt=0)


class BuryRule(_Conditional):
    action: Literal["bury"]


class QuotaRule(_Strict):
    """At most `max[value]` (a count) or `share[value]` (of the n shown) items per value of
    `field` in the list; the excess moves below the fold rather than out, so lists stay full."""

    name: str | None = None
    action: Literal["quota"]
    field: Literal["line", "category", "city", "brand"] = "line"
    max: dict[str, int] = Field(default_factory=dict)
    share: dict[str, Annotated[float, Field(gt=0, le=1)]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> QuotaRule:
        if not self.max and not self.share:
            raise ValueError("quota: give max or share")
        for name in (*self.max, *self.share):
            if name not in NAMED[self.field]:
                raise ValueError(f"quota: unknown {self.field} {name!r}")
        for name, count in self.max.items():
            if count < 0:
                raise ValueError(f"quota.max.{name}: must be >= 0")
        return self


class PinRule(_Strict):
    """Put items at a fixed position: listed ids (added if not recalled, when active) or the
    best-ranked candidate matching `when`."""

    name: str | None = None
    action: Literal["pin"]
    position: int = Field(0, ge=0, le=1000)
    item_ids: list[int] = Field(default_factory=list)
    when: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> PinRule:
        if bool(self.item_ids) == (self.when is not None):
            raise ValueError("pin: give exactly one of item_ids or when")
        if self.when is not None:
            parse_when(self.when)
        return self

    def tests(self) -> list[Test]:
        return parse_when(self.when) if self.when is not None else []


BusinessRule = Annotated[FilterRule | BoostRule | BuryRule | QuotaRule | PinRule,
                         Field(discriminator="action")]


class TextDedup(_Strict):
    min_jaccard: float = Field(0.7, gt=0, le=1)


class ImageDedup(_Strict):
    # pHash bits: a re-uploaded photo (re-encoded, rescaled, cropped) is within 10 bits for
    # 97.6% of copies, different photos at least 12 apart (data/images.py REPOST_HAMMING)
    max_distance: int = Field(10, ge=0, le=31)
    # how many leading images of each item to compare: the cover is what a list shows
    images: int = Field(1, ge=1, le=20)


class Weights(_Strict):
    """Weighted mode: duplicate when text·J + image·(1 − d/64) ≥ threshold."""

    text: float = Field(0.5, ge=0)
    image: float = Field(0.5, ge=0)
    threshold: float = Field(0.8, gt=0)


class DedupSpec(_Strict):
    exact: bool = True
    text: TextDedup | None = Field(default_factory=TextDedup)
    image: ImageDedup | None = Field(default_factory=ImageDedup)
    mode: Literal["any", "weighted"] = "any"
    weights: Weights = Field(default_factory=Weights)
    # near-duplicates are looked for among the best `depth` × n items (at least 100): deeper
    # items are only reached when scatter runs out of the ones above, and each checked item
    # costs request time (exact copies are removed at any depth)
    depth: int = Field(3, ge=1, le=100)


class ScatterSpec(_Strict):
    field: Literal["publisher_id", "category", "district", "line", "city", "brand"] = \
        "publisher_id"
    k: int = Field(1, gt=0)
    window: int = Field(4, gt=1, le=100)

    @model_validator(mode="after")
    def _check(self) -> ScatterSpec:
        if self.k >= self.window:
            raise ValueError(f"scatter: k={self.k} >= window={self.window} constrains nothing")
        return self


class RuleStrategy(_Strict):
    dedup: DedupSpec | None = Field(default_factory=DedupSpec)
    scatter: list[ScatterSpec] = Field(default_factory=list)
    business: list[BusinessRule] = Field(default_factory=list)

    @field_validator("dedup", mode="before")
    @classmethod
    def _dedup_flag(cls, v: Any) -> Any:
        """`dedup: true` keeps the defaults, `false` turns dedup off."""
        if v is True:
            return {}
        return None if v is False else v

    @field_validator("scatter", mode="before")
    @classmethod
    def _one_scatter(cls, v: Any) -> Any:
        return [v] if isinstance(v, dict) else ([] if v is None else v)
