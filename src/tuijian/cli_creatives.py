"""`tuijian creatives build|templates`: listing images generated from templates.

Building one creative needs only the item table, so this opens the item store (snapshot plus
upsert journal) read-only rather than the whole service: it works beside a running server and
takes a second, not a catalog-sized startup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

creatives_app = typer.Typer(help="Generated listing images (creatives) for items without one.",
                            no_args_is_help=True)
console = Console(stderr=True)

DataOpt = Annotated[Path, typer.Option("--data", help="Data directory.")]


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]{escape(message)}[/red]")
    return typer.Exit(2)


@creatives_app.command("build")
def build(
    item: Annotated[int, typer.Option("--item", help="The item id.")],
    out: Annotated[Path, typer.Option("--out", help="The PNG file to write.")],
    template: Annotated[str, typer.Option(
        "--template", help="A template name (see `tuijian creatives templates`) or a "
                           "template file (.yaml).")] = "classic",
    data: DataOpt = Path("data"),
) -> None:
    """Draw ITEM's listing image with TEMPLATE and write it to OUT as PNG."""
    from tuijian.data.items import ColumnarItemStore
    from tuijian.display.builder import TemplateError, build_creative, load_template
    from tuijian.serving.service import snapshot_and_journal

    try:
        tpl = load_template(template)
    except TemplateError as exc:
        raise _fail(f"--template: {exc}") from None
    try:
        store = ColumnarItemStore.open(*snapshot_and_journal(data, "items"))
    except FileNotFoundError as exc:
        raise _fail(str(exc)) from None
    pos = store.position(item)
    if pos < 0:
        raise _fail(f"--item: unknown item {item} in {data}")
    png = build_creative(store.record(pos), tpl)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(png)
    except OSError as exc:
        raise _fail(f"--out: {exc}") from None
    console.print(f"wrote {out} ({len(png):,} bytes, {tpl.width}x{tpl.height}, "
                  f"template {template})")


@creatives_app.command("templates")
def templates() -> None:
    """The packaged templates, each validated, with its size and description."""
    from tuijian.display.builder import TemplateError, load_template, template_names

    for name in template_names():
        try:
            t = load_template(name)
        except TemplateError as exc:
            console.print(f"[red]{escape(str(exc))}[/red]")
            raise typer.Exit(1) from None
        print(f"{name}\t{t.width}x{t.height}\t{t.description}")
