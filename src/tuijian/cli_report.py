"""`tuijian report`: the effect-data funnel from a shell, as `GET /v1/analytics/funnel`
answers it, or with `--daily` the day's report as `GET /v1/analytics/daily` does; `--build`
first rebuilds the offline cube from the event log."""

from __future__ import annotations

import json
from contextlib import closing
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tuijian.cli_engine import EngineOpt, batch_engine

if TYPE_CHECKING:
    from tuijian.analytics.funnel import Query
    from tuijian.data.items import ItemFeatureCenter

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
    daily: Annotated[str | None, typer.Option(
        "--daily", metavar="DATE",
        help="The daily report of this local date (YYYY-MM-DD) instead of the funnel.")] = None,
    fmt: Annotated[str | None, typer.Option(
        "--format", help="Daily report format: json, csv (default) or html.")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write the daily report to this file (default stdout).")] = None,
    engine: EngineOpt = None,
) -> None:
    """The funnel by any dimensions: exposures, clicks, conversions, dwell, users, CTR, CVR;
    with --daily, a day's report as CSV, JSON or a self-contained HTML file."""
    from tuijian.analytics.daily import FORMATS, daily_report, parse_day
    from tuijian.analytics.funnel import FunnelQuery
    from tuijian.data.items import ColumnarItemStore
    from tuijian.serving.service import snapshot_and_journal

    try:
        if daily is None and (fmt or out):
            raise ValueError("--format and --out go with --daily")
        if fmt is not None and fmt not in FORMATS:
            raise ValueError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
        day = parse_day(daily) if daily is not None else None
        q = FunnelQuery.parse(dims, filters, start, end)
        items = ColumnarItemStore.open(*snapshot_and_journal(data, "items"))
    except (ValueError, FileNotFoundError) as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    query = _open_funnel(data, items, build, engine)
    if day is not None:
        from tuijian.analytics.alarms import check_day
        from tuijian.data.eventlog import quarantine_snapshot_sql, snapshot_sql

        render, _ = FORMATS[fmt or "csv"]
        rep = daily_report(query, day)
        rep.alarms = [a.to_dict() for a in check_day(
            query, snapshot_sql(data / "events"), quarantine_snapshot_sql(data / "events"), day)]
        text = render(rep)
        if out is None:
            typer.echo(text, nl=False)
        else:
            out.write_text(text, encoding="utf-8")
            console.print(f"wrote {escape(str(out))}")
        return
    rows = query(q)
    if as_json:
        typer.echo(json.dumps({"rows": rows}, default=str))
        return
    cols = [*q.dims, "exposures", "clicks", "ctr", "conversions", "cvr", "dwell_mean", "users"]
    table = Table(*cols)
    for r in rows:
        table.add_row(*(_fmt(c, r.get(c)) for c in cols))
    Console().print(table)


def _open_funnel(data: Path, items: ItemFeatureCenter, build: bool, engine: str | None
                 ) -> Query:
    """The funnel over the data directory's offline cube and event log, as the server runs
    it; `build` first rebuilds the cube on the batch engine."""
    from tuijian.analytics.build import build_cube
    from tuijian.analytics.funnel import connect, funnel, items_table, live_facts
    from tuijian.analytics.store import ParquetCubeStore
    from tuijian.cli_experiments import open_platform
    from tuijian.data.eventlog import snapshot_sql

    platform = open_platform(data)
    layers = {e.id: e.layer for e in platform.config.experiments.values()}
    platform.store.close()
    events = snapshot_sql(data / "events")
    cube = ParquetCubeStore(data / "cube")
    if build:
        with closing(batch_engine(data, engine)) as batch:
            res = build_cube(batch, cube, items_table(items), layers)
        console.print(f"cube: {res.facts:,} facts in {res.seconds:.1f} s")
    con = connect(items)
    return partial(funnel, con, cube, live_facts(events, layers))


def _fmt(col: str, v: object) -> str:
    if v is None:
        return "-"
    if col in ("ctr", "cvr") and isinstance(v, float):
        return f"{v:.2%}"
    if isinstance(v, float):
        return f"{v:.1f}"
    return escape(str(v))
