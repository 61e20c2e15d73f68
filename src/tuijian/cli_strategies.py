"""`tuijian strategies list|show|set|import|history`: the stored strategies from the command line.

Commands work on the metadata store (TUIJIAN_METADATA_URL, else the data directory's SQLite
file) directly, so they run beside serving processes, which pick a change up within seconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from tuijian.strategies.store import Check, StrategyStore

T = TypeVar("T")

strategies_app = typer.Typer(help="Strategies (recall, rank, rule, display, scenes, settings) "
                                  "in the metadata store: list, show, set, import, history.",
                             no_args_is_help=True)
console = Console(stderr=True)
DataOpt = Annotated[Path, typer.Option("--data", help="Data directory.")]
ACTOR = "cli"


def _open(data: Path) -> StrategyStore:
    from tuijian.config import Settings
    from tuijian.strategies.live import open_strategies

    return open_strategies(Settings.from_env(data_dir=data))[0]


def _show(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))


@strategies_app.command("list")
def list_(data: DataOpt = Path("data"),
          as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every stored strategy with its version and last change."""
    store = _open(data)
    try:
        rev, entries = store.entries()
    finally:
        store.close()
    if as_json:
        _show([{"stage": e.stage, "id": e.sid, "version": e.version, "actor": e.actor,
                "updated_at": e.updated_at} for e in entries.values()])
        return
    table = Table("stage", "id", "version", "changed", "by", caption=f"revision {rev}")
    for e in entries.values():
        table.add_row(e.stage, e.sid, str(e.version),
                      time.strftime("%Y-%m-%d %H:%M", time.localtime(e.updated_at)),
                      escape(e.actor))
    Console().print(table)


@strategies_app.command("show")
def show(stage: str, sid: Annotated[str, typer.Argument(metavar="ID")],
         data: DataOpt = Path("data")) -> None:
    """One strategy's body (JSON) and version."""
    store = _open(data)
    try:
        entry = store.entries()[1].get((stage, sid))
    finally:
        store.close()
    if entry is None:
        console.print(f"[red]no {escape(stage)} strategy {escape(sid)!r}[/red]")
        raise typer.Exit(1)
    _show({"stage": stage, "id": sid, "version": entry.version, "body": entry.body})


@strategies_app.command("set")
def set_(
    stage: str,
    sid: Annotated[str, typer.Argument(metavar="ID")],
    file: Annotated[Path, typer.Argument(help="The body as YAML or JSON ('-': stdin).")],
    data: DataOpt = Path("data"),
    version: Annotated[int | None, typer.Option(
        "--if-version", help="Only if this is still the stored version (0: a new id).")]
    = None,
) -> None:
    """Create or replace a strategy, validated as the strategy file is and against live
    experiments; refused with the field at fault (exit code 2)."""
    text = typer.get_text_stream("stdin").read() if str(file) == "-" else file.read_text()
    body = yaml.safe_load(text)
    if not isinstance(body, dict):
        console.print("[red]body: expected a mapping (YAML or JSON object)[/red]")
        raise typer.Exit(2)
    entry = _checked(data, lambda store, check: store.put(stage, sid, body, ACTOR, check,
                                                          version))
    console.print(f"{stage}.{sid}: version {entry.version}")


@strategies_app.command("import")
def import_(
    file: Annotated[Path | None, typer.Argument(
        help="A strategy file (default: the settings' TUIJIAN_STRATEGIES).")] = None,
    data: DataOpt = Path("data"),
) -> None:
    """Replace every stored strategy by a file's, as one audited change: the way an edited
    strategy file takes effect once the store is seeded (serving processes follow within
    seconds). Validated as a whole and against live experiments (exit code 2 on refusal)."""
    from tuijian.config import Settings, load_strategies
    from tuijian.strategies.store import Bodies, bodies_of

    path = file or Settings.from_env(data_dir=data).strategies
    try:
        incoming = bodies_of(load_strategies(path))
    except ValueError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None

    def replace(bodies: Bodies) -> str:
        bodies.clear()
        bodies.update(incoming)
        return "import"

    _checked(data, lambda store, check: store.change(replace, f"{ACTOR}:{path}", check))
    console.print(f"imported {path}")


def _checked(data: Path, write: Callable[[StrategyStore, Check], T]) -> T:
    """Run `write` on the store with the live experiments' check; a refusal exits with 2."""
    from tuijian.config import ConfigError, Settings
    from tuijian.experiments.platform import ExperimentPlatform
    from tuijian.experiments.store import SqlExperimentStore
    from tuijian.serving.errors import RequestError

    settings = Settings.from_env(data_dir=data)
    store = _open(data)
    _, strategies = store.load()
    assert strategies is not None  # _open seeds an empty store
    platform = ExperimentPlatform(SqlExperimentStore(settings.experiments_store), strategies)
    try:
        return write(store, platform.check_strategies)
    except (ConfigError, RequestError) as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    finally:
        platform.store.close()
        store.close()


@strategies_app.command("history")
def history(stage: str, sid: Annotated[str, typer.Argument(metavar="ID")],
            data: DataOpt = Path("data"),
            limit: Annotated[int, typer.Option(min=1)] = 50) -> None:
    """A strategy's audit trail, newest first (each version's before and after as JSON)."""
    store = _open(data)
    try:
        rows = store.audit(stage, sid, limit)
    finally:
        store.close()
    _show([{"version": a.version, "ts": a.ts, "actor": a.actor, "action": a.action,
            "before": a.before, "after": a.after} for a in rows])
