"""HTTP request and response models: every field validated, errors naming the field.

Names are resolved to vocabulary codes here, at the edge, so the pipeline only ever sees codes.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tuijian.data import vocab
from tuijian.domain import Event, RecommendRequest, Scene
from tuijian.serving.errors import RequestError

MAX_N = 200
MAX_BATCH = 1000
MAX_ID = 2**63 - 1  # ids are stored as int64
MAX_TS = 4_102_444_800  # 2100-01-01 UTC: later send times overflow the calendar (time.gmtime)
Platform = Literal["android", "ios", "web", "m"]
Id = Field(min_length=1, max_length=128)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


def district_code(city: str, name: str, field: str) -> int:
    ci = vocab.CITY_NAMES.index(city)
    for code, (c, d) in enumerate(vocab.DISTRICTS):
        if c == ci and d == name:
            return code
    raise ValueError(f"{field}: unknown district {name!r} in {city}")


def _check_vocab(value: str | None, names: tuple[str, ...], what: str) -> str | None:
    if value is not None and value not in names:
        raise ValueError(f"unknown {what} {value!r}")
    return value


class Filters(_In):
    """Search filters (search_fallback): what the user searched for."""

    line: str | None = None
    district: str | None = None
    category: str | None = None
    price_min: float | None = Field(None, ge=0)
    price_max: float | None = Field(None, ge=0)
    rooms: int | None = Field(None, ge=0, le=20)
    brand: str | None = None

    @field_validator("line")
    @classmethod
    def _line(cls, v: str | None) -> str | None:
        return _check_vocab(v, vocab.LINES, "business line")

    @field_validator("category")
    @classmethod
    def _category(cls, v: str | None) -> str | None:
        return _check_vocab(v, vocab.CATEGORIES, "category")

    @field_validator("brand")
    @classmethod
    def _brand(cls, v: str | None) -> str | None:
        return _check_vocab(v, vocab.BRANDS, "brand")

    @model_validator(mode="after")
    def _range(self) -> Filters:
        if self.price_min is not None and self.price_max is not None \
                and self.price_min > self.price_max:
            raise ValueError("price_min must not exceed price_max")
        return self

    def codes(self, city: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.line is not None:
            out["line"] = vocab.LINES.index(self.line)
        if self.category is not None:
            out["category"] = vocab.CATEGORIES.index(self.category)
        if self.brand is not None:
            out["brand"] = vocab.BRANDS.index(self.brand)
        if self.district is not None:
            if city is None:
                raise ValueError("context.filters.district: needs context.city")
            out["district"] = district_code(city, self.district, "context.filters.district")
        for name in ("price_min", "price_max", "rooms"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out


class Context(_In):
    city: str | None = None
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    item_id: int | None = Field(None, gt=0, le=MAX_ID)
    filters: Filters = Field(default_factory=Filters)
    page_token: str | None = Field(None, max_length=64)
    platform: Platform = "android"
    tracking: str | None = Field(None, max_length=4096)
    # where on the client the list shows (e.g. "home_feed", "detail_bottom"); effect data
    # compares funnels by slot. Defaults to the scene.
    slot: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9_.\-]{0,63}$")

    @field_validator("city")
    @classmethod
    def _city(cls, v: str | None) -> str | None:
        return _check_vocab(v, vocab.CITY_NAMES, "city")

    @model_validator(mode="after")
    def _coords(self) -> Context:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon must be given together")
        return self


class RecommendIn(_In):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"scene": "guess_you_like", "user_id": "u1", "n": 10},
        {"scene": "detail_related", "user_id": "u1", "n": 10, "context": {"item_id": 42}},
        {"scene": "search_fallback", "device_id": "d-7f3a", "n": 10, "context": {
            "city": "Beijing", "filters": {"line": "house_rent", "district": "Chaoyang",
                                           "rooms": 2, "price_max": 3000}}},
    ]})

    scene: Scene
    user_id: str | None = Field(None, min_length=1, max_length=128)
    device_id: str | None = Field(None, min_length=1, max_length=128)
    n: int = Field(20, gt=0, le=MAX_N, strict=True)
    context: Context = Field(default_factory=Context)

    @model_validator(mode="after")
    def _who(self) -> RecommendIn:
        if self.user_id is None and self.device_id is None:
            raise ValueError("user_id or device_id is required")
        if self.scene == Scene.DETAIL_RELATED and self.context.item_id is None:
            raise ValueError("context.item_id is required for scene detail_related")
        return self


    def to_request(self, now: float) -> RecommendRequest:
        ctx = self.context
        unit = self.user_id or self.device_id
        assert unit is not None  # guaranteed by _who
        try:
            filters = ctx.filters.codes(ctx.city)
        except ValueError as exc:
            raise RequestError("context.filters.district", str(exc).split(": ", 1)[-1]) \
                from None
        return RecommendRequest(
            scene=self.scene, user_id=unit, n=self.n, now=now, city=ctx.city, lat=ctx.lat,
            lon=ctx.lon, item_id=ctx.item_id, filters=filters, page_token=ctx.page_token,
            platform=ctx.platform, tracking=ctx.tracking, slot=ctx.slot or self.scene.value,
        )


class RecommendOut(BaseModel):
    exposure_id: str
    tracking: str
    scene: Scene
    stage_ids: dict[str, str]
    items: list[dict[str, Any]]
    degraded: list[str]
    next_page_token: str | None = None
    relaxed: list[str] | None = None
    # what each rule of the rule id removed / moved / added in this list
    rules: dict[str, dict[str, int]] = Field(default_factory=dict)
    # the display id's style and the fields each item carries, for the client's renderer
    display: dict[str, Any] = Field(default_factory=dict)
    # per layer the request was in: {"experiment": id, "variant": name}
    experiments: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # parameter layers' settings by layer, for client-side experiments (e.g. a page layout)
    params: dict[str, Any] = Field(default_factory=dict)


class EventIn(_In):
    event_id: str = Id
    type: Literal["exposure", "click", "convert", "dwell"]
    user_id: str = Id
    item_id: int = Field(gt=0, le=MAX_ID)
    tracking: str | None = Field(None, max_length=4096)
    ts: float | None = Field(None, gt=1_000_000_000)
    subtype: Literal["chat", "call", "favorite", "share"] | None = None
    dwell_s: float | None = Field(None, ge=0, le=86_400)

    @model_validator(mode="after")
    def _by_type(self) -> EventIn:
        if self.type == "convert" and self.subtype is None:
            raise ValueError("subtype is required for convert events")
        if self.type == "dwell" and self.dwell_s is None:
            raise ValueError("dwell_s is required for dwell events")
        if self.ts is not None and self.ts > time.time() + 86_400:
            raise ValueError("ts is more than a day in the future")
        return self


    def to_event(self, now: float) -> Event:
        return Event(
            event_id=self.event_id, type=self.type, user_id=self.user_id, item_id=self.item_id,
            ts=self.ts if self.ts is not None else now, tracking=self.tracking,
            subtype=self.subtype, dwell_s=self.dwell_s,
        )


class EventsIn(_In):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"events": [
        {"event_id": "3f9c-1", "type": "click", "user_id": "u1", "item_id": 42,
         "tracking": "v1.<the item's tracking param>"},
        {"event_id": "3f9c-2", "type": "convert", "subtype": "call", "user_id": "u1",
         "item_id": 42, "tracking": "v1.<the item's tracking param>"},
    ]}]})

    events: list[EventIn] = Field(min_length=1, max_length=MAX_BATCH)


class EventResult(BaseModel):
    event_id: str
    status: Literal["accepted", "duplicate", "quarantined"]
    reason: str | None = None


class EventsOut(BaseModel):
    results: list[EventResult]


class ImageIn(_In):
    """One photo (creative) of a listing. Its perceptual hash is computed here, at ingest,
    from the bytes, so dedup at request time compares numbers; an upstream that already
    hashed its photos may send `phash` instead of `data`."""

    id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")
    data: str | None = Field(None, max_length=14_000_000,
                             description="base64 of the image file (JPEG, PNG, WebP…)")
    phash: int | None = Field(None, ge=-(2**63), le=2**63 - 1)
    embedding: list[float] | None = Field(None, min_length=1, max_length=1024)

    @model_validator(mode="after")
    def _hash(self) -> ImageIn:
        if (self.data is None) == (self.phash is None):
            raise ValueError("give exactly one of data (the image) or phash")
        if self.data is not None:
            from tuijian.data.images import ImageError, image_hash

            try:
                raw = base64.b64decode(self.data, validate=True)
            except binascii.Error:
                raise ValueError("data: not valid base64") from None
            try:
                self.phash = image_hash(raw)
            except ImageError as exc:
                raise ValueError(f"data: {exc}") from None
            self.data = None  # hashed; the bytes are not kept
        return self


class ItemIn(_In):
    item_id: int = Field(gt=0, le=MAX_ID)
    line: str
    category: str
    city: str
    district: str
    title: str = Field(min_length=1, max_length=300)
    body: str | None = Field(None, max_length=10_000)
    tags: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=50)
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    price: float | None = Field(None, ge=0, le=1e12, allow_inf_nan=False)
    rooms: int | None = Field(None, ge=0, le=50)
    area: float | None = Field(None, gt=0, le=1e7, allow_inf_nan=False)
    floor: int | None = Field(None, ge=-10, le=300)
    brand: str | None = None
    series: str | None = None
    year: int | None = Field(None, ge=1950, le=2100)
    mileage_km: float | None = Field(None, ge=0, le=1e7, allow_inf_nan=False)
    salary_band: str | None = None
    job_type: str | None = None
    publisher_id: int | None = Field(None, ge=0, le=2**31 - 1)
    quality: float | None = Field(None, ge=0, le=1)
    # photos, the cover first: creative ids with hashes computed at ingest
    images: list[ImageIn] = Field(default_factory=list, max_length=20)
    # hashes without creative ids, for catalogs hashed upstream (ignored when images is given)
    image_hashes: list[Annotated[int, Field(ge=-(2**63), le=MAX_ID)]] = Field(
        default_factory=list, max_length=20)
    status: Literal["active", "inactive"] = "active"
    created_ts: int | None = Field(None, gt=0, le=MAX_ID)
    refreshed_ts: int | None = Field(None, gt=0, le=MAX_ID)

    @model_validator(mode="after")
    def _vocab(self) -> ItemIn:
        horizon = time.time() + 86_400
        for name in ("created_ts", "refreshed_ts"):
            ts = getattr(self, name)
            if ts is not None and ts > horizon:
                raise ValueError(f"{name} is more than a day in the future")
        _check_vocab(self.line, vocab.LINES, "line")
        if self.category not in vocab.CATEGORIES_BY_LINE[self.line]:
            raise ValueError(f"category {self.category!r} is not a category of {self.line}")
        _check_vocab(self.city, vocab.CITY_NAMES, "city")
        district_code(self.city, self.district, "district")
        _check_vocab(self.brand, vocab.BRANDS, "brand")
        _check_vocab(self.series, vocab.SERIES, "series")
        _check_vocab(self.salary_band, vocab.SALARY_BANDS, "salary_band")
        _check_vocab(self.job_type, vocab.JOB_TYPES, "job_type")
        return self

    def row(self, now: float) -> dict[str, Any]:
        """The item as a feature-center row (codes, defaults for what was not given)."""
        city = vocab.CITY_NAMES.index(self.city)
        lat, lon = (self.lat, self.lon) if self.lat is not None and self.lon is not None \
            else vocab.CITIES[city][1:3]
        created = self.created_ts or int(now)
        return {
            **self.model_dump(exclude={"line", "category", "city", "district", "brand",
                                       "series", "salary_band", "job_type", "lat", "lon",
                                       "status", "images", "image_hashes"}),
            "images": [im.id for im in self.images],
            "image_hashes": ([im.phash for im in self.images] if self.images
                             else self.image_hashes),
            "line": vocab.LINES.index(self.line),
            "category": vocab.CATEGORIES.index(self.category),
            "city": city,
            "district": district_code(self.city, self.district, "district"),
            "lat": lat, "lon": lon,
            "brand": vocab.BRANDS.index(self.brand) if self.brand else None,
            "series": vocab.SERIES.index(self.series) if self.series else None,
            "salary_band": (vocab.SALARY_BANDS.index(self.salary_band)
                            if self.salary_band else None),
            "job_type": vocab.JOB_TYPES.index(self.job_type) if self.job_type else None,
            "active": int(self.status == "active"),
            "created_ts": created,
            "refreshed_ts": self.refreshed_ts or created,
        }


class ItemsIn(_In):
    items: list[ItemIn] = Field(min_length=1, max_length=MAX_BATCH)

    @model_validator(mode="after")
    def _unique(self) -> ItemsIn:
        _no_duplicates([i.item_id for i in self.items], "item_id")
        return self


def _no_duplicates(ids: list[Any], name: str) -> None:
    seen: set[Any] = set()
    for i in ids:
        if i in seen:
            raise ValueError(f"duplicate {name} {i!r} in one batch")
        seen.add(i)


class UserIn(_In):
    user_id: str = Id
    device_id: str | None = Field(None, max_length=128)
    city: str | None = None
    district: str | None = None
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    age_band: Literal["<25", "25-34", "35-44", "45+"] | None = None
    gender: Literal["f", "m", "u"] | None = None
    platform: Platform | None = None

    @model_validator(mode="after")
    def _vocab(self) -> UserIn:
        _check_vocab(self.city, vocab.CITY_NAMES, "city")
        if self.district is not None:
            if self.city is None:
                raise ValueError("district needs city")
            district_code(self.city, self.district, "district")
        return self

    def row(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "device_id": self.device_id,
            "city": vocab.CITY_NAMES.index(self.city) if self.city else None,
            "district": (district_code(self.city, self.district, "district")
                         if self.city and self.district else None),
            "lat": self.lat, "lon": self.lon,
            "age_band": vocab.AGE_BANDS.index(self.age_band) if self.age_band else None,
            "gender": vocab.GENDERS.index(self.gender) if self.gender else None,
            "platform": vocab.PLATFORMS.index(self.platform) if self.platform else None,
        }


class UsersIn(_In):
    users: list[UserIn] = Field(min_length=1, max_length=MAX_BATCH)

    @model_validator(mode="after")
    def _unique(self) -> UsersIn:
        _no_duplicates([u.user_id for u in self.users], "user_id")
        return self


class UpsertOut(BaseModel):
    upserted: int


class PushIn(_In):
    """Users to consider for a push now: a list of ids, or "all" known users."""

    users: list[Annotated[str, Field(min_length=1, max_length=128)]] | Literal["all"] = Field(
        max_length=100_000)
    now: float | None = Field(None, gt=1_000_000_000, le=MAX_TS,
                              description="send time (unix s); default: now")
