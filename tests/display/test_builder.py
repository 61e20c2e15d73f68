"""The creative builder: templates load and validate, and every creative decodes as a PNG."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from tuijian.cli import app
from tuijian.data import vocab
from tuijian.data.items import ColumnarItemStore
from tuijian.display import creative_text as ct
from tuijian.display.builder import (
    Template,
    TemplateError,
    build_creative,
    default_palette,
    load_palette,
    load_template,
    load_templates,
    template_names,
)
from tuijian.serving.api import create_app
from tuijian.serving.service import Service

runner = CliRunner()


@pytest.fixture(scope="module")
def store(generated: Path) -> ColumnarItemStore:
    return ColumnarItemStore(pq.read_table(generated / "items.parquet"))


@pytest.fixture(scope="module")
def templates() -> dict[str, Template]:
    return load_templates()


def _first(store: ColumnarItemStore, line: str, brand: str | None = None) -> dict[str, Any]:
    mask = store.column("line") == vocab.LINES.index(line)
    if brand is not None:
        mask &= store.column("brand") == vocab.BRANDS.index(brand)
    return store.record(int(np.flatnonzero(mask)[0]))


def _decode(png: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(png))
    img.load()
    assert img.format == "PNG"
    return img


def _rgb(colour: str) -> tuple[int, int, int]:
    h = colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def _has_colour(img: Image.Image, colour: str) -> bool:
    return bool((np.asarray(img.convert("RGB")) == _rgb(colour)).all(axis=2).any())


def test_packaged_templates_load() -> None:
    assert {"classic", "bold", "minimal"} <= set(template_names())
    assert "palette" not in template_names()
    assert load_palette().lines.keys() == set(vocab.LINES)


@pytest.mark.parametrize("line", vocab.LINES)
def test_each_line_and_template_decodes_with_a_drawn_title(
        store: ColumnarItemStore, templates: dict[str, Template], line: str) -> None:
    item = _first(store, line)
    for name, tpl in templates.items():
        img = _decode(build_creative(item, tpl))
        assert img.size == (tpl.width, tpl.height) and img.mode == "RGB", name
        title = next(b for b in tpl.blocks if b.format and "{title}" in b.format)
        box = title.box
        crop = np.asarray(img.crop((box.x, box.y, box.x + box.w, box.y + box.h)).convert("L"))
        assert crop.std() > 10, f"{name}: the title area of a {line} item is blank"


def test_branded_car_wears_its_brand_colour(
        store: ColumnarItemStore, templates: dict[str, Template]) -> None:
    palette = default_palette()
    bmw, toyota = _first(store, "car", "BMW"), _first(store, "car", "Toyota")
    blue, red = palette.brands["BMW"][0], palette.brands["Toyota"][0]
    for name in ("classic", "bold"):
        img = _decode(build_creative(bmw, templates[name]))
        assert _has_colour(img, blue) and not _has_colour(img, red), name
        assert _has_colour(_decode(build_creative(toyota, templates[name])), red), name
    # minimal colours by business line, whatever the brand
    img = _decode(build_creative(bmw, templates["minimal"]))
    assert _has_colour(img, palette.lines["car"][0]) and not _has_colour(img, blue)


def test_different_items_give_different_images(
        store: ColumnarItemStore, templates: dict[str, Template]) -> None:
    a, b = store.record(0), store.record(1)
    assert a["title"] != b["title"]
    for tpl in templates.values():
        assert build_creative(a, tpl) != build_creative(b, tpl)
        assert build_creative(a, tpl) == build_creative(a, tpl)  # deterministic


def test_long_titles_wrap_and_end_in_an_ellipsis() -> None:
    d = ImageDraw.Draw(Image.new("RGB", (10, 10)))
    f = ct.font(40, bold=True)
    lines = ct.wrap(d, "Chaoyang 3BR 120m² whole rent near the subway ¥9800/mo " * 4, f, 700, 2)
    assert len(lines) == 2 and lines[-1].endswith(("…", "..."))
    assert all(d.textlength(line, font=f) <= 700 for line in lines)
    assert ct.wrap(d, "short", f, 700, 2) == ["short"]


def test_non_ascii_title_characters_are_drawable() -> None:
    """"m²" and "¥" either render with the chosen font or are spelled in ASCII: never tofu."""
    for bold in (False, True):
        text = ct.printable("Jianye 2BR 81m² ¥4650/mo", bold)
        f = ct.font(20, bold)
        assert all(ct._has_glyph(f, ch) for ch in text)


def test_missing_fields_drop_their_separator() -> None:
    assert ct.fill("{district}, {city}", {"district": None, "city": "Beijing"}) == "Beijing"
    assert ct.fill("{district}, {city}", {"district": "Xuhui", "city": "Shanghai"}) \
        == "Xuhui, Shanghai"
    fields = ct.item_fields({"line": vocab.LINES.index("job"), "salary_band": 3, "job_type": 0,
                             "price": 9000.0, "title": "Cook wanted"})
    assert fields["attributes"] == ["8-12k/month", "full time"]
    assert fields["price"] == "¥9,000/month"


GOOD_BLOCK = """
  - kind: text
    box: {x: 10, y: 10, w: 200, h: 50}
    format: "{title}"
"""


@pytest.mark.parametrize(("block", "problem"), [
    (GOOD_BLOCK.replace("{title}", "{colour}"), "unknown field {colour}"),
    (GOOD_BLOCK.replace("w: 200", "w: 900"), "outside the 400x300 canvas"),
    (GOOD_BLOCK + "    color: '#12345g'\n", "bad colour '#12345g'"),
    (GOOD_BLOCK.replace("kind: text", "kind: video"), "blocks.0.kind"),
    (GOOD_BLOCK + "    colour: red\n", "blocks.0.colour: Extra inputs are not permitted"),
    (GOOD_BLOCK.replace("kind: text", "kind: price"), "a price block takes no format"),
])
def test_bad_templates_fail_at_load_naming_file_and_problem(
        tmp_path: Path, block: str, problem: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(f"width: 400\nheight: 300\nblocks:{block}")
    with pytest.raises(TemplateError) as err:
        load_template(path)
    assert str(path) in str(err.value) and problem in str(err.value)
    path.write_text(f"width: 400\nheight: 300\nblocks:{GOOD_BLOCK}")
    assert load_template(path).width == 400


def test_bad_palette_and_unknown_template_are_named(tmp_path: Path) -> None:
    path = tmp_path / "palette.yaml"
    lines = "".join(f"  {line}: '#123456'\n" for line in vocab.LINES)
    path.write_text(f"brands:\n  Tesle: '#000000'\nlines:\n{lines}")
    with pytest.raises(TemplateError, match="unknown brand.*Tesle"):
        load_palette(path)
    with pytest.raises(TemplateError, match=r"unknown template 'fancy' \(known: bold, "):
        load_template("fancy")


def test_cli_writes_a_decodable_png(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "card.png"
    r = runner.invoke(app, ["creatives", "build", "--item", "7", "--template", "bold",
                            "--out", str(out), "--data", str(data_dir)])
    assert r.exit_code == 0, r.output
    assert _decode(out.read_bytes()).size == (800, 800)
    r = runner.invoke(app, ["creatives", "build", "--item", "99999999", "--out", str(out),
                            "--data", str(data_dir)])
    assert r.exit_code == 2 and "unknown item 99999999" in r.output
    r = runner.invoke(app, ["creatives", "build", "--item", "7", "--template", "fancy",
                            "--out", str(out), "--data", str(data_dir)])
    assert r.exit_code == 2 and "fancy" in r.output and "classic" in r.output
    r = runner.invoke(app, ["creatives", "templates"])
    assert r.exit_code == 0 and "classic" in r.stdout and "minimal" in r.stdout


@pytest.fixture
def client(service: Service) -> Iterator[TestClient]:
    with TestClient(create_app(service, rebuild=False)) as c:
        yield c


def test_api_returns_a_png_and_names_bad_input(client: TestClient) -> None:
    r = client.get("/v1/items/3/creative.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert _decode(r.content).size == (800, 600)  # classic by default
    r = client.get("/v1/items/3/creative.png", params={"template": "minimal"})
    assert r.status_code == 200 and _decode(r.content).size == (800, 400)
    r = client.get("/v1/items/99999999/creative.png")
    assert r.status_code == 404 and "unknown item" in r.json()["error"]
    r = client.get("/v1/items/3/creative.png", params={"template": "fancy"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "template" and "fancy" in r.json()["error"]
