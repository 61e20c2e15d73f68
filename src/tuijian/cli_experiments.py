"""`tuijian experiments …`: the experiment platform from the command line.

Commands work on the data directory's experiment store (or TUIJIAN_EXPERIMENTS_URL) directly,
so they run beside a serving process, which picks the change up within a second or so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tuijian.domain import Scene

if TYPE_CHECKING:
    from tuijian.experiments.platform import ExperimentPlatform

experiments_app = typer.Typer(help="A/B experiments: create, start, stop, report.",
                              no_args_is_help=True)
console = Console(stderr=True)
DataOpt = Annotated[Path, typer.Option("--data", help="Data directory.")]
ACTOR = "cli"


def open_platform(data: Path) -> ExperimentPlatform:
    from tuijian.config import Settings
    from tuijian.experiments.platform import ExperimentPlatform
    from tuijian.experiments.store import SqlExperimentStore
    from tuijian.strategies.live import open_strategies

    settings = Settings.from_env(data_dir=data)
    store, _, strategies = open_strategies(settings)
    store.close()
    return ExperimentPlatform(SqlExperimentStore(settings.experiments_store), strategies)


def _run(data: Path, fn: Any) -> Any:
    """Call fn(platform); a refused change is printed (field: reason) with exit code 2."""
    from tuijian.experiments.model import ExperimentError

    platform = open_platform(data)
    try:
        return fn(platform)
    except ExperimentError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    finally:
        platform.store.close()


def _show(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))


@experiments_app.command("list")
def list_(data: DataOpt = Path("data"),
          as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every experiment, newest first."""
    exps = _run(data, lambda p: sorted(p.config.experiments.values(), key=lambda e: -e.id))
    if as_json:
        _show([e.model_dump(mode="json") for e in exps])
        return
    table = Table("id", "name", "layer", "status", "traffic", "variants", "scenes")
    for e in exps:
        table.add_row(str(e.id), escape(e.name), e.layer, e.status, f"{e.size} buckets",
                      ", ".join(f"{v.name}={v.stage_id}" for v in e.variants),
                      ", ".join(s.value for s in e.scenes))
    Console().print(table)


@experiments_app.command("create")
def create(
    file: Annotated[Path, typer.Argument(help="A YAML or JSON experiment (fields as in "
                                              "POST /v1/experiments).")],
    data: DataOpt = Path("data"),
) -> None:
    """Create an experiment from a file (a draft unless it says `status: running`)."""
    try:
        body = yaml.safe_load(file.read_text())
    except (OSError, yaml.YAMLError) as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    if not isinstance(body, dict):
        console.print("[red]the file must hold one experiment (a mapping)[/red]")
        raise typer.Exit(2)
    percent = body.pop("percent", None)
    exp = _run(data, lambda p: p.create(body, ACTOR, percent))
    _show(exp.model_dump(mode="json"))


@experiments_app.command("start")
def start(exp_id: int, data: DataOpt = Path("data")) -> None:
    """Start serving an experiment's variants."""
    _show(_run(data, lambda p: p.start(exp_id, ACTOR)).model_dump(mode="json"))


@experiments_app.command("stop")
def stop(exp_id: int, data: DataOpt = Path("data")) -> None:
    """Stop an experiment (its units go back to the defaults; its buckets are freed)."""
    _show(_run(data, lambda p: p.stop(exp_id, ACTOR)).model_dump(mode="json"))


@experiments_app.command("traffic")
def traffic(exp_id: int, percent: Annotated[float, typer.Argument(min=0, max=100)],
            data: DataOpt = Path("data")) -> None:
    """Set an experiment's share of its layer (units that stay keep their variant)."""
    _show(_run(data, lambda p: p.set_traffic(exp_id, ACTOR, percent=percent))
          .model_dump(mode="json"))


@experiments_app.command("launch")
def launch(exp_id: int, variant: str,
           percent: Annotated[float, typer.Option(min=0.1, max=100)] = 100.0,
           data: DataOpt = Path("data")) -> None:
    """Roll a variant out to everyone through the launch layer; the experiment stops."""
    _show(_run(data, lambda p: p.launch(exp_id, variant, ACTOR, percent))
          .model_dump(mode="json"))


@experiments_app.command("assign")
def assign(unit: str, scene: Scene = Scene.GUESS_YOU_LIKE,
           data: DataOpt = Path("data")) -> None:
    """Where a unit is in every layer (as GET /v1/experiments/assignment answers)."""
    from dataclasses import asdict

    out = _run(data, lambda p: {k: asdict(v) for k, v in p.assigner.explain(unit,
                                                                             scene).items()})
    _show({"unit": unit, "scene": scene.value, "layers": out})


@experiments_app.command("report")
def report(
    exp_id: int,
    data: DataOpt = Path("data"),
    as_json: Annotated[bool, typer.Option("--json")] = False,
    alpha: Annotated[float, typer.Option(min=0.0001, max=0.5)] = 0.05,
    mde: Annotated[float, typer.Option(min=0.001, max=10)] = 0.05,
) -> None:
    """Per-variant metrics, lifts with confidence intervals, p-values, SRM and sample size,
    from the event log."""
    from tuijian.data.eventlog import snapshot_sql
    from tuijian.experiments.report import experiment_report

    body = _run(data, lambda p: experiment_report(snapshot_sql(data / "events"),
                                                  p.get(exp_id), alpha=alpha, mde=mde))
    if as_json:
        _show(body)
        return
    _print_report(body)


def _print_report(body: dict[str, Any]) -> None:
    exp = body["experiment"]
    out = Console()
    out.print(f"[bold]experiment {exp['id']}: {escape(exp['name'])}[/bold] "
              f"({exp['layer']} layer, {exp['status']})")
    table = Table("variant", "units", "exposures", "clicks", "CTR", "conversions", "CVR",
                  "dwell (s)")
    for name, v in body["variants"].items():
        table.add_row(name, str(v["units"]), f"{v['exposures']:.0f}", f"{v['clicks']:.0f}",
                      _pct(v["ctr"]), f"{v['conversions']:.0f}", _pct(v["cvr"]),
                      f"{v['dwell_mean']:.1f}" if v["dwell_mean"] is not None else "-")
    out.print(table)
    lifts = Table("variant", "metric", "lift", f"{1 - body['alpha']:.0%} CI", "p", "")
    for name, metrics in body["lifts"].items():
        for metric, lift in metrics.items():
            if lift["lift"] is None:
                continue
            lifts.add_row(name, metric, _pct(lift["lift"], signed=True),
                          f"[{_pct(lift['ci_low'], True)}, {_pct(lift['ci_high'], True)}]",
                          f"{lift['p_value']:.4f}", "significant" if lift["significant"] else "")
    out.print(lifts)
    srm = body["srm"]
    out.print(f"SRM: chi² {srm['chi2']}, p {srm['p_value']}"
              f"{' [red]MISMATCH[/red]' if srm['flagged'] else ''}")
    for w in body["warnings"]:
        out.print(f"[yellow]warning: {escape(w)}[/yellow]")


def _pct(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:+.2%}" if signed else f"{x:.2%}"
