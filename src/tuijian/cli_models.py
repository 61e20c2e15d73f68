"""`tuijian models deploy|list|rollback`: the rank model registry from the command line.

A running server polls the registry every few seconds and hot-swaps the CURRENT version; these
commands only touch files, so they work beside a running server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from tuijian.rank.model_registry import ModelStore

models_app = typer.Typer(help="Ranking models: deploy, list, roll back.", no_args_is_help=True)
console = Console(stderr=True)

DataOpt = Annotated[Path, typer.Option("--data", help="Data directory.")]


@contextmanager
def open_registry(data: Path) -> Iterator[ModelStore]:
    """The data directory's registry; its entries in the metadata database when
    TUIJIAN_METADATA_URL is set."""
    from tuijian.config import Settings
    from tuijian.rank.model_registry import open_model_registry

    registry = open_model_registry(data / "rank_models",
                                   Settings.from_env(data_dir=data).metadata_url)
    try:
        yield registry
    finally:
        registry.close()


@models_app.command("deploy")
def deploy(
    path: Annotated[Path, typer.Argument(help="A model directory (model.json, features.json, "
                                              "the model's files).")],
    name: Annotated[str, typer.Option("--name", help="The registry name rankers ask for.")],
    data: DataOpt = Path("data"),
    force: Annotated[bool, typer.Option(
        "--force", help="Deploy without validating (the live loader still checks it).")] = False,
) -> None:
    """Validate a model directory and publish it as the next version; a running server
    swaps it in within seconds."""
    from tuijian.rank.deployed import DeployedModel
    from tuijian.rank.model_registry import RegistryError
    from tuijian.rank.models.base import ModelFileError

    if not force:
        try:
            DeployedModel.load(path)
        except ModelFileError as exc:
            console.print(f"[red]{escape(str(path))} is not a deployable model: "
                          f"{escape(str(exc))}[/red]")
            raise typer.Exit(1) from None
    try:
        with open_registry(data) as registry:
            version = registry.deploy(path, name)
    except (RegistryError, OSError) as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
    console.print(f"{name}: deployed {version} (now CURRENT)")


@models_app.command("list")
def list_models(
    data: DataOpt = Path("data"),
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Every deployed version: which is CURRENT, which serves, which was rejected and why."""
    with open_registry(data) as registry:
        entries = registry.entries()
    if as_json:
        print(json.dumps([asdict(e) for e in entries]))
        return
    if not entries:
        console.print(f"no rank models deployed in {data / 'rank_models'}")
        return
    table = Table(caption="* CURRENT: the version servers load")
    for column in ("name", "version", "status", "kind", "objective", "trained", "auc"):
        table.add_column(column, no_wrap=True)
    colours = {"serving": "green", "rejected": "red", "available": "default"}
    for e in entries:
        trained = (time.strftime("%Y-%m-%d %H:%M", time.localtime(e.trained_at))
                   if e.trained_at is not None else "")
        table.add_row(e.name, e.version + ("*" if e.current else ""),
                      f"[{colours[e.status]}]{e.status}[/]", e.kind or "", e.objective or "",
                      trained, f"{e.auc:.4f}" if e.auc is not None else "")
    out = Console()
    out.print(table)
    # reasons are long: one line each under the table rather than a squeezed column
    for e in entries:
        if e.reason is not None:
            out.print(f"[red]{e.name} {e.version} rejected:[/red] {escape(e.reason)}")


@models_app.command("rollback")
def rollback(
    name: Annotated[str, typer.Argument(help="A deployed model name.")],
    to: Annotated[str | None, typer.Option(
        "--to", help="The version to serve; default: the newest usable one before CURRENT.")]
    = None,
    data: DataOpt = Path("data"),
) -> None:
    """Point CURRENT at an earlier version; a running server swaps it in within seconds."""
    from tuijian.rank.model_registry import RegistryError

    try:
        with open_registry(data) as registry:
            version = registry.rollback(name, to)
    except RegistryError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
    console.print(f"{name}: CURRENT is now {version}")
