"""`tuijian report`: the effect-data funnel from a shell, as `GET /v1/analytics/funnel`
answers it; `--build` first rebuilds the offline cube from the event log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console(stderr=True)
DataOpt = Annotated[Path, typer.Option("--data", help="Data directory.")]


def report(
    dims: Annotated[str, typer.Option(help="Comma-separated dimensions, e.g. slot,platform.")]
    = "scene",
    filters: Annotated[str | None, typer.Option(help="dim:v1|v2,dim2:v")] = None,
    start: Annotated[str | None, typer.Option("--from", help="Unix s or ISO date.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Unix s or ISO date.")] = None,
    data: DataOpt = Path("data"),
    build: Annotated[bool, typer.Option("--build", help="Rebuild the offline cube first.")]
    = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The funnel by any dimensions: exposures, clicks, conversions, dwell, users, CTR, CVR."""
    from tuijian.analytics.build import build_cube
    from tuijian.analytics.funnel import FunnelQuery, connect, funnel, live_facts
    from tuijian.analytics.store import ParquetCubeStore
    from tuijian.cli_experiments import open_platform
    from tuijian.data.eventlog import snapshot_sql
    from tuijian.data.items import ColumnarItemStore
    from tuijian.serving.service import snapshot_and_journal

    try:
        q = FunnelQuery.parse(dims, filters, start, end)
        items = ColumnarItemStore.open(*snapshot_and_journal(data, "items"))
    except (ValueError, FileNotFoundError) as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    platform = open_platform(data)
    layers = {e.id: e.layer for e in platform.config.experiments.values()}
    platform.store.close()
    events = snapshot_sql(data / "events")
    cube = ParquetCubeStore(data / "cube")
    con = connect(items)
    if build:
        res = build_cube(con, cube, events, layers)
        console.print(f"cube: {res.facts:,} facts in {res.seconds:.1f} s")
    rows = funnel(con, cube, live_facts(events, layers), q)
    if as_json:
        typer.echo(json.dumps({"rows": rows}, default=str))
        return
    cols = [*q.dims, "exposures", "clicks", "ctr", "conversions", "cvr", "dwell_mean", "users"]
    table = Table(*cols)
    for r in rows:
        table.add_row(*(_fmt(c, r.get(c)) for c in cols))
    Console().print(table)


def _fmt(col: str, v: object) -> str:
    if v is None:
        return "-"
    if col in ("ctr", "cvr") and isinstance(v, float):
        return f"{v:.2%}"
    if isinstance(v, float):
        return f"{v:.1f}"
    return escape(str(v))
