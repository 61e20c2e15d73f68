"""The words on a generated creative: an item's fields as display strings, and fonts to draw
them with.

Kept apart from the template models and drawing (builder.py) because both the template
validator (which fields a format string may name) and the painter need it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import ImageDraw, ImageFont

from tuijian.display.render import display_value

# The names a template's format string may use; every value is a display string (or missing).
FIELDS: tuple[str, ...] = (
    "item_id", "title", "body", "price", "line", "category", "city", "district", "brand",
    "series", "rooms", "area", "floor", "year", "mileage_km", "salary_band", "job_type", "tags",
)
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

# Debian/Ubuntu (fonts-dejavu-core), Fedora, macOS; fc-match is asked after these.
_FONT_FILES: dict[bool, tuple[str, ...]] = {
    False: ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
            "/Library/Fonts/Arial Unicode.ttf"),
    True: ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
           "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans-Bold.ttf",
           "/Library/Fonts/Arial Bold.ttf"),
}
_PROBE = "¥m²…·"  # what generated titles and prices need beyond ASCII
# Stand-ins for when no font with these glyphs is found (Pillow's built-in font has none).
_ASCII = {"¥": "CNY ", "²": "2", "…": "...", "·": "-", "€": "EUR ", "—": "-", "–": "-"}
_NOTDEF = "\uffff"


def item_fields(item: dict[str, Any]) -> dict[str, Any]:
    """The item's FIELDS as display strings (None if missing), plus what the painter needs:
    `line_code`, `tag_list` and `attributes` (the line's key attributes)."""
    v = {k: display_value(k, item.get(k)) for k in FIELDS if k != "price"}
    line = v["line"]
    price = item.get("price")
    price = None if price is None or price != price else float(price)
    out: dict[str, Any] = {k: None if x is None else str(x) for k, x in v.items()}
    out.update(
        line=_human(line), category=_human(v["category"]), job_type=_human(v["job_type"]),
        price=price_text(line, price), tags=", ".join(_human(t) or "" for t in v["tags"] or ()),
        area=_num(v["area"]), mileage_km=_num(v["mileage_km"]),
        line_code=line, tag_list=[_human(t) or "" for t in v["tags"] or ()],
    )
    out["attributes"] = key_attributes(line, v, out)
    return out


def price_text(line: str | None, price: float | None) -> str | None:
    """A price as the line quotes it: rent per month, sale in millions, salary per month."""
    if price is None:
        return None
    if line == "house_sale" and price >= 1e6:
        return f"¥{price / 1e6:.1f}M"
    suffix = {"house_rent": "/mo", "job": "/month", "service": " per job"}.get(line or "", "")
    return f"¥{price:,.0f}{suffix}"


def key_attributes(line: str | None, v: dict[str, Any], out: dict[str, Any]) -> list[str]:
    """What a buyer scans for first, per line: houses rooms/area/floor, cars year/mileage,
    jobs salary/type, goods brand and series, services their kind."""
    parts: list[str | None]
    if line in ("house_rent", "house_sale"):
        rooms = v["rooms"]
        parts = [None if rooms is None else f"{rooms} room{'' if rooms == 1 else 's'}",
                 out["area"] and f"{out['area']} m²",
                 None if v["floor"] is None else f"floor {v['floor']}"]
    elif line == "car":
        parts = [out["year"], out["mileage_km"] and f"{out['mileage_km']} km", out["series"]]
    elif line == "job":
        parts = [out["salary_band"] and f"{out['salary_band']}/month", out["job_type"]]
    elif line == "goods":
        parts = [" ".join(p for p in (out["brand"], out["series"]) if p) or None,
                 out["category"]]
    else:  # services: the price has its own block, so repeating it here would only crowd
        parts = [out["category"] and f"{out['category']} service"]
    return [p for p in parts if p]


def _human(value: Any) -> str | None:
    return None if value is None else str(value).replace("_", " ")


def _num(value: Any) -> str | None:
    return None if value is None else f"{float(value):,.0f}"


@lru_cache(maxsize=2)
def _font_file(bold: bool) -> str | None:
    """A TrueType file that draws _PROBE: known paths, then fontconfig; None if none does."""
    candidates = list(_FONT_FILES[bold])
    if fc := shutil.which("fc-match"):
        try:
            out = subprocess.run([fc, "-f", "%{file}", "sans:bold" if bold else "sans"],
                                 capture_output=True, text=True, timeout=5, check=False)
            candidates.append(out.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    for path in candidates:
        if path and Path(path).is_file():
            try:
                probe = ImageFont.truetype(path, 16)
            except OSError:
                continue
            if all(_has_glyph(probe, ch) for ch in _PROBE):
                return path
    return None


@lru_cache(maxsize=128)
def font(size: int, bold: bool = False) -> Font:
    """A font at `size` px: a system font that has ¥ and ², else Pillow's scalable default."""
    path = _font_file(bold)
    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size=size)


def _has_glyph(f: Font, ch: str) -> bool:
    """Whether `f` draws `ch` as itself rather than as its missing-glyph box."""
    return bytes(f.getmask(ch)) != bytes(f.getmask(_NOTDEF)) or not ch.strip()


@lru_cache(maxsize=4096)
def _drawable(ch: str, bold: bool) -> bool:
    return ch.isascii() or _has_glyph(font(16, bold), ch)


def printable(text: str, bold: bool = False) -> str:
    """`text` with characters the font lacks spelled in ASCII where a stand-in is known."""
    if text.isascii():
        return text
    return "".join(ch if _drawable(ch, bold) else _ASCII.get(ch, ch) for ch in text)


def ellipsize(draw: ImageDraw.ImageDraw, text: str, f: Font, width: float,
              force: bool = False) -> str:
    """`text` cut to fit `width` with a trailing ellipsis (always one if `force`)."""
    if not force and draw.textlength(text, font=f) <= width:
        return text
    dots = "…" if _has_glyph(f, "…") else "..."
    cut = len(text)
    while cut > 0:
        head = text[:cut].rstrip(" ,·|/-")
        if draw.textlength(head + dots, font=f) <= width:
            return head + dots
        cut -= 1
    return dots


def wrap(draw: ImageDraw.ImageDraw, text: str, f: Font, width: float, max_lines: int,
         bold: bool = False) -> list[str]:
    """Greedy word wrap into at most `max_lines` lines; what does not fit ends in "…"."""
    words = printable(text, bold).split()
    lines = [""]
    for i, word in enumerate(words):
        trial = f"{lines[-1]} {word}".strip()
        if not lines[-1] or draw.textlength(trial, font=f) <= width:
            lines[-1] = trial
        elif len(lines) < max_lines:
            lines.append(word)
        else:
            rest = " ".join([lines[-1], *words[i:]])
            lines[-1] = ellipsize(draw, rest, f, width)
            return lines
    return [ellipsize(draw, line, f, width) for line in lines if line]


def fill(fmt: str, fields: dict[str, Any]) -> str:
    """Format over the item's fields; a missing field takes its separator with it, so
    "{district}, {city}" without a district reads "Beijing", not ", Beijing"."""
    gap = "\x00"
    text = fmt.format(**{k: gap if v in (None, "") else v for k, v in fields.items()})
    text = re.sub(r"\s*[,·|/]?\s*\x00", "", text)
    return text.strip(" ,·|/")


def pack(draw: ImageDraw.ImageDraw, parts: list[str], f: Font, width: int, room: int,
         bold: bool) -> list[str]:
    """Attributes on up to `room` lines, " · " between; ones that no longer fit are dropped."""
    lines: list[str] = []
    for part in (printable(p, bold) for p in parts):
        trial = f"{lines[-1]}{printable('  ·  ', bold)}{part}" if lines else part
        if lines and draw.textlength(trial, font=f) <= width:
            lines[-1] = trial
        elif len(lines) < room:
            lines.append(ellipsize(draw, part, f, width))
    return lines
