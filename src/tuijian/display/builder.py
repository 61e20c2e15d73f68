"""Creative builder: a listing image drawn from a template file, for items without a photo.

A listing with no image loses most of its clicks in an image-led feed; a card carrying the
title, price, key attributes and tags in the brand's (or the business line's) colour is a
cheap stand-in. Templates are YAML files validated at load (pydantic, extra fields forbidden)
so a typo fails at startup naming the file and field, not as a blank card in production.
Drawing uses Pillow; its built-in font lacks "¥" and "²", which every generated title has, so
a system TrueType font that draws them is preferred (see `creative_text`).
"""

from __future__ import annotations

import io
import re
import string
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Self, TypeVar

import yaml
from PIL import Image, ImageDraw
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tuijian.data import vocab
from tuijian.display import creative_text as ct

TEMPLATE_DIR = Path(__file__).parent / "templates"
PALETTE_FILE = TEMPLATE_DIR / "palette.yaml"
DEFAULT_TEMPLATE = "classic"
TOKENS = ("accent", "accent2", "on_accent", "on_accent2")
_HEX = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
BlockKind = Literal["text", "price", "attributes", "tags", "band"]


class TemplateError(ValueError):
    """A template or palette file that cannot be used; the message names the file and field."""


def _hex(value: str) -> str:
    if not _HEX.fullmatch(value):
        raise ValueError(f"bad colour {value!r}: expected #rgb or #rrggbb")
    return value


def _paint(value: str) -> str:
    """A colour, or a palette token resolved per item (accent, accent2, on_accent...)."""
    return value if value in TOKENS else _hex(value)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Box(_Strict):
    x: int = Field(ge=0)
    y: int = Field(ge=0)
    w: int = Field(gt=0)
    h: int = Field(gt=0)


class Block(_Strict):
    """One thing drawn in `box`: a text over item fields, the price, the line's key
    attributes, tag chips, or a band (filled rectangle)."""

    kind: BlockKind
    box: Box
    size: int = Field(24, ge=6, le=400)
    color: str = "#000000"
    fill: str | None = None  # tag chips' fill (default: accent)
    format: str | None = None  # text only: "{title}", "{district}, {city}"
    max_lines: int = Field(1, ge=1, le=20)
    bold: bool = False
    align: Literal["left", "center", "right"] = "left"
    radius: int = Field(0, ge=0)

    @field_validator("color", "fill")
    @classmethod
    def _colour(cls, v: str | None) -> str | None:
        return None if v is None else _paint(v)

    @field_validator("format")
    @classmethod
    def _fields(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            names = [f for _, f, _, _ in string.Formatter().parse(v) if f is not None]
        except ValueError as exc:
            raise ValueError(f"bad format string {v!r}: {exc}") from None
        unknown = [n for n in names if n not in ct.FIELDS]
        if unknown or "" in names:
            raise ValueError(f"unknown field {{{(unknown or [''])[0]}}} in {v!r} "
                             f"(known: {', '.join(ct.FIELDS)})")
        return v

    @model_validator(mode="after")
    def _format_for_text(self) -> Self:
        if (self.kind == "text") != (self.format is not None):
            raise ValueError(f"a {self.kind} block " + (
                "needs a format" if self.kind == "text" else "takes no format"))
        return self


class Template(_Strict):
    """A canvas, its background, which palette colours it (brand or line), and its blocks."""

    description: str = ""
    width: int = Field(ge=16, le=4096)
    height: int = Field(ge=16, le=4096)
    background: str = "#ffffff"
    palette: Literal["brand", "line"] = "brand"
    blocks: list[Block] = Field(min_length=1)

    @field_validator("background")
    @classmethod
    def _background(cls, v: str) -> str:
        return _paint(v)

    @model_validator(mode="after")
    def _inside(self) -> Self:
        for i, b in enumerate(self.blocks):
            x, y, w, h = b.box.x, b.box.y, b.box.w, b.box.h
            if x + w > self.width or y + h > self.height:
                raise ValueError(f"blocks.{i}.box (x={x}, y={y}, w={w}, h={h}) is outside "
                                 f"the {self.width}x{self.height} canvas")
        return self


class Palette(_Strict):
    """Accent colours: brand → [primary, secondary?], business line → the same."""

    brands: dict[str, list[str]]
    lines: dict[str, list[str]]

    @field_validator("brands", "lines", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return {k: [c] if isinstance(c, str) else c for k, c in v.items()} \
            if isinstance(v, dict) else v

    @field_validator("brands", "lines")
    @classmethod
    def _colours(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, colours in v.items():
            if not 1 <= len(colours) <= 2:
                raise ValueError(f"{name}: one colour or [primary, secondary]")
            for c in colours:
                _hex(c)
        return v

    @model_validator(mode="after")
    def _names(self) -> Self:
        if unknown := sorted(set(self.brands) - set(vocab.BRANDS)):
            raise ValueError(f"brands: unknown brand(s) {', '.join(unknown)}")
        if missing := sorted(set(vocab.LINES) - set(self.lines)):
            raise ValueError(f"lines: missing {', '.join(missing)}")
        if unknown := sorted(set(self.lines) - set(vocab.LINES)):
            raise ValueError(f"lines: unknown line(s) {', '.join(unknown)}")
        return self

    def accents(self, brand: str | None, line: str | None, by_brand: bool) -> tuple[str, str]:
        """(accent, accent2) for an item: its brand's colours if asked and known, else its
        line's, else a neutral grey."""
        colours = (self.brands.get(brand or "") if by_brand else None) \
            or self.lines.get(line or "") or ["#555555"]
        return colours[0], colours[-1]


M = TypeVar("M", bound=BaseModel)


def _load(model: type[M], path: Path) -> M:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TemplateError(f"{path}: {exc}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{loc}: {msg}" if loc else msg)
        raise TemplateError(f"{path}: " + "; ".join(problems)) from None


def template_names() -> list[str]:
    """The packaged templates' names (file stems), sorted."""
    return sorted(p.stem for p in TEMPLATE_DIR.glob("*.yaml") if p != PALETTE_FILE)


def load_template(name_or_path: str | Path) -> Template:
    """A packaged template by name ("classic"), or any template file by path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        if str(name_or_path) not in template_names():
            raise TemplateError(f"unknown template {str(name_or_path)!r} "
                                f"(known: {', '.join(template_names())})")
        path = TEMPLATE_DIR / f"{name_or_path}.yaml"
    return _load(Template, path)


def load_templates() -> dict[str, Template]:
    """Every packaged template, validated: call once at startup so a bad file fails there."""
    return {name: load_template(name) for name in template_names()}


def load_palette(path: Path = PALETTE_FILE) -> Palette:
    return _load(Palette, path)


@lru_cache(maxsize=1)
def default_palette() -> Palette:
    return load_palette()


def build_creative(item: dict[str, Any], template: Template,
                   palette: Palette | None = None) -> bytes:
    """PNG bytes of `item` (a `store.record` dict: codes or names) drawn with `template`."""
    fields = ct.item_fields(item)
    a1, a2 = (palette or default_palette()).accents(
        fields["brand"], fields["line_code"], template.palette == "brand")
    paints = {"accent": a1, "accent2": a2, "on_accent": _on(a1), "on_accent2": _on(a2)}
    img = Image.new("RGB", (template.width, template.height),
                    paints.get(template.background, template.background))
    draw = ImageDraw.Draw(img)
    for block in template.blocks:
        _draw(draw, block, fields, paints)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _on(colour: str) -> str:
    """Near-black or white, whichever reads better on `colour` (WCAG relative luminance)."""
    h = colour.lstrip("#")
    h = "".join(c * 2 for c in h) if len(h) == 3 else h
    lin = [(v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4)
           for v in (int(h[i:i + 2], 16) / 255 for i in (0, 2, 4))]
    lum = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    return "#111111" if lum > 0.4 else "#ffffff"


def _draw(draw: ImageDraw.ImageDraw, b: Block, fields: dict[str, Any],
          paints: dict[str, str]) -> None:
    box, colour = b.box, paints.get(b.color, b.color)
    if b.kind == "band":
        xy = (box.x, box.y, box.x + box.w - 1, box.y + box.h - 1)
        draw.rounded_rectangle(xy, radius=b.radius, fill=colour)
        return
    if b.kind == "tags":
        _chips(draw, b, fields["tag_list"], colour, paints.get(b.fill or "accent", b.fill))
        return
    f, line_h = ct.font(b.size, b.bold), round(b.size * 1.25)
    room = min(b.max_lines, max(1, box.h // line_h))
    if b.kind == "price":
        text = ct.printable(fields["price"] or "", b.bold)
        f = ct.font(_price_size(draw, b, text), b.bold)
        lines = [ct.ellipsize(draw, text, f, box.w)]
    elif b.kind == "text":
        lines = ct.wrap(draw, ct.fill(b.format or "", fields), f, box.w, room, b.bold)
    else:
        lines = ct.pack(draw, fields["attributes"], f, box.w, room, b.bold)
    for i, text in enumerate(lines):
        width = draw.textlength(text, font=f)
        x = box.x + {"left": 0, "center": (box.w - width) / 2, "right": box.w - width}[b.align]
        draw.text((x, box.y + i * line_h), text, font=f, fill=colour, anchor="la")


def _price_size(draw: ImageDraw.ImageDraw, b: Block, text: str) -> int:
    """The largest size down to 60% of the block's at which the price fits its box."""
    for size in range(b.size, max(6, int(b.size * 0.6)) - 1, -2):
        if draw.textlength(text, font=ct.font(size, b.bold)) <= b.box.w:
            return size
    return max(6, int(b.size * 0.6))


def _chips(draw: ImageDraw.ImageDraw, b: Block, tags: list[str], colour: str,
           fill: str | None) -> None:
    """Tags as rounded chips, left to right, wrapping; chips past the box are left out."""
    f, pad, gap = ct.font(b.size, b.bold), round(b.size * 0.6), round(b.size * 0.4)
    chip_h = round(b.size * 1.6)
    x, y = b.box.x, b.box.y
    for tag in tags:
        text = ct.ellipsize(draw, ct.printable(tag, b.bold), f, b.box.w - 2 * pad)
        w = round(draw.textlength(text, font=f)) + 2 * pad
        if x > b.box.x and x + w > b.box.x + b.box.w:
            x, y = b.box.x, y + chip_h + gap
        if y + chip_h > b.box.y + b.box.h:
            return
        radius = min(b.radius, chip_h // 2) if b.radius else chip_h // 2
        draw.rounded_rectangle((x, y, x + w - 1, y + chip_h - 1), radius=radius, fill=fill)
        draw.text((x + w / 2, y + chip_h / 2), text, font=f, fill=colour, anchor="mm")
        x += w + gap
