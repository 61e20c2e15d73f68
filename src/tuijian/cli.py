"""The `tuijian` command: thin entry points over the same service, pipeline and jobs."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from tuijian.cli_creatives import creatives_app
from tuijian.cli_engine import EngineOpt, batch_engine
from tuijian.cli_experiments import experiments_app
from tuijian.cli_models import models_app
from tuijian.cli_report import report
from tuijian.cli_strategies import strategies_app
from tuijian.config import ConfigError, Settings

if TYPE_CHECKING:
    from tuijian.serving.service import Service

app = typer.Typer(help="Tuijian (推荐): a recommendation service for marketplaces.",
                  no_args_is_help=True, add_completion=False)
bench_app = typer.Typer(help="Benchmarks, run as a user would.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
jobs_app = typer.Typer(help="Batch jobs that feed recall sources.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
eval_app = typer.Typer(help="Offline evaluation on public data.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
app.add_typer(models_app, name="models")
app.add_typer(creatives_app, name="creatives")
app.add_typer(experiments_app, name="experiments")
app.add_typer(strategies_app, name="strategies")
app.command("report")(report)
console = Console(stderr=True)

ROLES = ("all", "api", "recall", "rank")
DataOpt = Annotated[Path, typer.Option("--data", help="Data directory.")]


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None]]:
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/"
                  "{task.total}"), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _settings(data: Path) -> Settings:
    try:
        return Settings.from_env(data_dir=data)
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def _open_service(data: Path, now: float | None = None) -> Service:
    from tuijian.serving.service import Service

    try:
        return Service(_settings(data), now=now)
    except (ConfigError, FileNotFoundError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    except RuntimeError as exc:  # the event log's lock: a server is running on this data
        console.print(f"[red]{exc}: a running server owns it — stop it, or for push use "
                      f"--server http://HOST:PORT[/red]")
        raise typer.Exit(2) from None


@app.command()
def generate(
    items: Annotated[int, typer.Option(min=1)] = 100_000,
    users: Annotated[int, typer.Option(min=1)] = 50_000,
    seed: int = 7,
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("data/generated"),
    now: Annotated[float | None, typer.Option(help="Catalog 'now' (unix s).")] = None,
) -> None:
    """Generate a demo marketplace (items, users, publishers) as Parquet."""
    from tuijian.data.generator import generate_marketplace

    with _progress("generate") as update:
        summary = generate_marketplace(
            out, items, users, seed, time.time() if now is None else now,
            progress=lambda stage, frac: update(int(frac * 100), 100),
        )
    console.print(f"generated {summary.n_items:,} items ({summary.n_duplicates:,} re-posts), "
                  f"{summary.n_users:,} users in {summary.seconds:.1f}s → {out}")


@app.command()
def simulate(
    data: DataOpt = Path("data"),
    days: Annotated[float, typer.Option(min=0.01)] = 3.0,
    requests_per_day: Annotated[int, typer.Option(min=1)] = 3000,
    seed: int = 11,
    start: Annotated[float | None, typer.Option(help="Start (unix s); default: days ago.")]
    = None,
) -> None:
    """Drive simulated users through the real pipeline and log their events."""
    from tuijian.jobs.simulate import simulate as run_sim

    t0 = time.time() - days * 86400 if start is None else start
    service = _open_service(data, now=t0)
    try:
        with _progress("simulate") as update:
            s = run_sim(service, data / "generated", t0, days, requests_per_day, seed, update)
    finally:
        service.close()
    console.print(f"simulated {s.requests:,} requests: {s.exposures:,} exposures, "
                  f"{s.clicks:,} clicks (CTR {s.ctr:.2%}), {s.conversions:,} conversions")


@app.command()
def build(data: DataOpt = Path("data")) -> None:
    """Rebuild counters, profiles and recall lists from the event log; save snapshots."""
    service = _open_service(data)
    try:
        service.snapshot()
    finally:
        service.close()
    console.print(f"built: {len(service.store):,} items, "
                  f"{len(service.profiles.active_users()):,} active users")


@app.command()
def join(data: DataOpt = Path("data"), as_json: Annotated[bool, typer.Option("--json")] = False,
         engine: EngineOpt = None) -> None:
    """Join the event log into samples (samples/samples.parquet) and print the funnel."""
    from tuijian.jobs.join import join as run_join

    with closing(batch_engine(data, engine)) as batch:
        result = run_join(batch, data / "samples")
    if as_json:
        print(json.dumps(result, default=float))
        return
    console.print(f"{result['samples']:,} samples → {result['path']} "
                  f"({result['unmatched_clicks']} clicks without exposure)")
    for dim in ("scene", "recall_id", "rank_id"):
        for row in result["funnel"][dim]:
            console.print(f"  {dim}={row['value']}: {row['exposures']:,} exp, "
                          f"{row['clicks']:,} clk, CTR {row['ctr']:.2%}, "
                          f"{row['conversions']:,} conv")


@app.command()
def push(
    users: Annotated[str, typer.Option(help="A file of user ids (one per line) or 'all'.")],
    data: DataOpt = Path("data"),
    now: Annotated[float | None, typer.Option(help="Send time (unix s); default: now.")] = None,
    server: Annotated[str | None, typer.Option(
        help="A running server to push through (it owns the event log), e.g. "
             "http://127.0.0.1:8000")] = None,
) -> None:
    """Run the push scene in batch; notify only above the threshold, capped, outside quiet
    hours. Notifications go to DATA/push/notifications.jsonl."""
    ids: list[str] | str = "all"
    if users != "all":
        path = Path(users)
        if not path.exists():
            console.print(f"[red]--users: {path} not found[/red]")
            raise typer.Exit(2)
        ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if server is not None:
        import httpx

        try:
            r = httpx.post(f"{server.rstrip('/')}/v1/push", json={"users": ids, "now": now},
                           headers={"X-API-Key": _settings(data).admin_key}, timeout=None)
        except httpx.HTTPError as exc:
            console.print(f"[red]--server: {exc}[/red]")
            raise typer.Exit(2) from None
        if r.status_code != 200:
            console.print(f"[red]{r.status_code}: {r.text}[/red]")
            raise typer.Exit(2)
        print(json.dumps(r.json()))
        return
    from tuijian.jobs.push import run_push

    service = _open_service(data)
    try:
        with _progress("push") as update:
            summary = run_push(service, service.profiles.table.keys() if ids == "all" else ids,
                               now=now, progress=update)
    finally:
        service.close()
    print(json.dumps(summary))


@app.command()
def serve(
    data: DataOpt = Path("data"),
    host: str = "127.0.0.1",
    port: Annotated[int | None, typer.Option(
        help="Default: 8000 for all/api, 50051 for recall, 50052 for rank")] = None,
    role: Annotated[str, typer.Option(
        help="all: the HTTP API, background jobs and (with TUIJIAN_STREAM_URL) the ingest "
             "worker; api: a stateless HTTP replica that publishes events to the stream "
             "(and calls TUIJIAN_RECALL_URL / TUIJIAN_RANK_URL when set); recall, rank: "
             "that pipeline stage as a gRPC service")
    ] = "all",
) -> None:
    """Serve prepared data: the HTTP API, or one pipeline stage over gRPC."""
    if role not in ROLES:
        raise typer.BadParameter(f"expected one of {', '.join(ROLES)}", param_hint="--role")
    service = _open_service(data)
    if role == "api" and service.event_stream is None:
        service.close()
        raise typer.BadParameter("role api needs TUIJIAN_STREAM_URL (events go to the stream)",
                                 param_hint="--role")
    from tuijian.serving.service import serving_threads, settle_heap

    serving_threads()
    settle_heap()
    try:
        if role in ("recall", "rank"):
            import asyncio

            from tuijian.serving.rpc_server import DEFAULT_PORTS, serve_stage

            address = f"{host}:{port or DEFAULT_PORTS[role]}"
            console.print(f"serving {role} over {len(service.store):,} items on grpc {address}")
            asyncio.run(serve_stage(service, role, address))
            return
        import uvicorn

        from tuijian.serving.api import create_app

        port = port or 8000
        remote = [f"{s}@{u}" for s, u in (("recall", service.settings.recall_url),
                                          ("rank", service.settings.rank_url)) if u]
        console.print(f"serving {len(service.store):,} items on http://{host}:{port} ({role}"
                      f"{'; ' + ', '.join(remote) if remote else ''})")
        uvicorn.run(create_app(service, rebuild=role == "all", consume=role == "all"),
                    host=host, port=port, log_level="warning")
    finally:
        service.close()


@app.command()
def run(
    data: DataOpt = Path("data"),
    host: str = "127.0.0.1",
    port: int = 8000,
    items: int = 100_000,
    users: int = 50_000,
    days: float = 3.0,
    requests_per_day: int = 3000,
) -> None:
    """All in one: generate if missing, simulate traffic, run the batch jobs, train and deploy
    the ranking models the default strategy names, start the demo A/B tests and simulate
    their last day of traffic, serve."""
    from tuijian.cli_experiments import open_platform
    from tuijian.experiments.demo import seed_demo

    start = time.time() - days * 86400
    warm = days - min(1.0, days / 2)  # the last day runs through the demo experiments
    generated = data / "generated"
    if not (generated / "items.parquet").exists():
        generate(items=items, users=users, seed=7, out=generated, now=start)
    if not (data / "sim").exists():
        simulate(data=data, days=warm, requests_per_day=requests_per_day, seed=11,
                 start=start)
        jobs_run(name="all", data=data, as_json=False)
    if not (data / "rank_models").exists():
        for kind, objective, name in (("gbdt_lr", "click", "ctr_gbdt_lr"),
                                      ("gbdt", "convert", "cvr_gbdt")):
            train(model=kind, objective=objective, cvr_mode="clicks", negative_rate=1.0,
                  params="{}", features=None, data=data, out=None, deploy=name,
                  as_json=False)
    platform = open_platform(data)
    try:
        seeded = seed_demo(platform)
    finally:
        platform.store.close()
    if seeded:
        console.print("demo experiments: " + ", ".join(f"{e.id} ({e.name})" for e in seeded))
        simulate(data=data, days=days - warm, requests_per_day=requests_per_day, seed=12,
                 start=start + warm * 86400)
    serve(data=data, host=host, port=port)


@jobs_app.command("list")
def jobs_list(data: DataOpt = Path("data")) -> None:
    """The jobs, and the version each has published."""
    from tuijian.jobs.artifacts import ArtifactStore
    from tuijian.jobs.registry import JOBS

    store = ArtifactStore(data)
    for name in JOBS:
        current = store.current(name)
        console.print(f"{name}: {current.version if current else '(never run)'}")


@jobs_app.command("run")
def jobs_run(
    name: Annotated[str, typer.Argument(help="A job name, or 'all'.")],
    data: DataOpt = Path("data"),
    as_json: Annotated[bool, typer.Option("--json")] = False,
    engine: EngineOpt = None,
) -> None:
    """Run batch jobs over the event log; each publishes a new version that a running server
    reloads within seconds. mf and two_tower read through the engine but train locally."""
    from tuijian.jobs.base import JobContext
    from tuijian.jobs.registry import JOBS

    names = list(JOBS) if name == "all" else [name]
    unknown = [n for n in names if n not in JOBS]
    if unknown:
        console.print(f"[red]unknown job {unknown[0]!r} (known: {', '.join(JOBS)}, all)[/red]")
        raise typer.Exit(2)
    results = {}
    with closing(batch_engine(data, engine)) as batch:
        for job_name in names:
            with _progress(job_name) as update:
                ctx = JobContext(data, batch, time.time(),
                                 progress=lambda stage, frac: update(int(frac * 100), 100))
                t0 = time.perf_counter()
                artifact = JOBS[job_name].run(ctx)
                update(100, 100)
            results[job_name] = {**artifact.meta(),
                                 "seconds": round(time.perf_counter() - t0, 2)}
    if as_json:
        print(json.dumps(results, default=str))
    else:
        for job_name, meta in results.items():
            console.print(f"{job_name}: published {meta['version']} in {meta['seconds']}s")


@eval_app.command("recall")
def eval_recall(
    dataset: Annotated[str, typer.Option(help="ml-100k, ml-1m, ml-latest(-small), or a "
                                              "CSV/Parquet interactions file")] = "ml-100k",
    data_dir: Annotated[Path | None, typer.Option(help="Where the dataset folder is.")] = None,
    k: Annotated[int, typer.Option(min=1, max=1000)] = 10,
    models: Annotated[str | None, typer.Option(help="Comma-separated; default all.")] = None,
    seed: int = 42,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Every recall model and fused strategy under the Microsoft Recommenders protocol."""
    from tuijian.eval.runner import evaluate

    chosen = [m.strip() for m in models.split(",")] if models else None
    try:
        with _progress("eval recall") as update:
            result = evaluate(dataset, data_dir, k, chosen, seed,
                              progress=lambda msg, frac: update(int(frac * 100), 100))
    except (FileNotFoundError, KeyError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps(result))
        return
    for name, m in result["models"].items():
        if "skipped" in m:
            console.print(f"{name:32s} skipped: {m['skipped']}")
            continue
        console.print(f"{name:32s} nDCG@{k} {m[f'ndcg@{k}']:.4f}  P@{k} "
                      f"{m[f'precision@{k}']:.4f}  R@{k} {m[f'recall@{k}']:.4f}  "
                      f"MAP@{k} {m[f'map@{k}']:.4f}  coverage {m['coverage']:.3f}  "
                      f"train {m['train_s']}s")


@bench_app.command("serve")
def bench_serve(
    items: int = 100_000,
    users: int = 100_000,
    requests: int = 2000,
    simulate: Annotated[int, typer.Option(
        help="Simulated requests + all batch jobs first, so every recall source works")] = 0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """In-process guess_you_like latency on a freshly generated marketplace."""
    from tuijian.serving.bench import run_bench

    result = run_bench(items, users, requests, simulate_requests=simulate)
    if as_json:
        print(json.dumps(result))
    else:
        console.print(result)


@bench_app.command("features")
def bench_features(
    backend: Annotated[str | None, typer.Option(
        help="Feature center to measure: redis://HOST:PORT/DB (default: the embedded store)")
    ] = None,
    items: int = 1_000_000,
    batch: int = 150,
    rounds: int = 5000,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Batch read of `batch` random items' ranking features, p50/p99 in ms."""
    from tuijian.data.feature_bench import run_features_bench

    try:
        result = run_features_bench(backend, items, batch, rounds)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--backend") from None
    if as_json:
        print(json.dumps(result))
    else:
        console.print(result)


@app.command()
def train(
    model: Annotated[str, typer.Option(help="Model kind: lr, ftrl, gbdt, fm, gbdt_lr, gbdt_fm, "
                                            "fnn, wide_deep, deepfm, esmm.")] = "gbdt_lr",
    objective: Annotated[str, typer.Option(help="click, convert or dwell.")] = "click",
    cvr_mode: Annotated[str, typer.Option(help="convert over clicks, or over exposures "
                                               "ESMM-style (model esmm).")] = "clicks",
    negative_rate: Annotated[float, typer.Option(min=0.001, max=1.0, help=(
        "Keep each negative with this probability (predictions are corrected)."))] = 1.0,
    params: Annotated[str, typer.Option(help="Model params as JSON.")] = "{}",
    features: Annotated[Path | None, typer.Option(help="Feature config (YAML).")] = None,
    data: DataOpt = Path("data"),
    out: Annotated[Path | None, typer.Option(help="Model directory to write.")] = None,
    deploy: Annotated[str | None, typer.Option(help="Deploy to the registry as NAME.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Train a ranking model from the joined logs (exposure → click → conversion → dwell)."""
    import pyarrow.parquet as pq

    from tuijian.data.items import ColumnarItemStore
    from tuijian.data.users import UserTable
    from tuijian.jobs.engine import DuckDBEngine
    from tuijian.jobs.join import join as run_join
    from tuijian.rank.features.spec import load_features
    from tuijian.rank.training import TrainOptions, load_rows
    from tuijian.rank.training import train as train_model
    from tuijian.serving.service import snapshot_and_journal

    try:
        opts = TrainOptions(model=model, objective=objective,  # type: ignore[arg-type]
                            cvr_mode=cvr_mode,  # type: ignore[arg-type]
                            negative_rate=negative_rate, params=json.loads(params))
        if objective not in ("click", "convert", "dwell") or cvr_mode not in ("clicks", "esmm"):
            raise ValueError(f"objective {objective!r} / cvr mode {cvr_mode!r} unknown")
        config = load_features(features) if features else None
        with closing(DuckDBEngine.over_log(data / "events")) as batch:
            joined = run_join(batch, data / "samples")
        store = ColumnarItemStore.open(*snapshot_and_journal(data, "items"))
        users = UserTable.open(*snapshot_and_journal(data, "users"))
        rows = load_rows(pq.read_table(joined["path"]), store, users)
        with _progress(f"train {model} ({objective})") as update:
            deployed, metrics = train_model(
                rows, opts, config, lambda msg, frac: update(int(frac * 100), 100))
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    target = out or data / "trained" / f"{objective}-{model}-{int(time.time())}"
    deployed.save(target)
    result: dict[str, Any] = {"path": str(target), "samples": rows.report, "metrics": metrics}
    if deploy:
        from tuijian.cli_models import open_registry

        with open_registry(data) as registry:
            result["deployed"] = {"name": deploy, "version": registry.deploy(target, deploy)}
    if as_json:
        print(json.dumps(result))
        return
    console.print(f"wrote {target}  (rows {rows.report})")
    console.print("  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    if deploy:
        console.print(f"deployed as {deploy} {result['deployed']['version']}")


@eval_app.command("rank")
def eval_rank(
    datasets: Annotated[str, typer.Option(help="Comma-separated: synthetic, ml-100k.")] =
    "synthetic,ml-100k",
    models: Annotated[str | None, typer.Option(help="Comma-separated kinds; default all "
                                                    "click models.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Where public datasets are.")] = None,
    workdir: Annotated[Path | None, typer.Option(help="Keep (and reuse) the simulated logs "
                                                      "here.")] = None,
    items: int = 4_000,
    users: int = 800,
    requests: int = 40_000,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Every ranking model's AUC / GAUC / log loss on simulated logs (beside the oracle AUC)
    and on public CTR data."""
    from tuijian.rank.eval_runner import CLICK_KINDS, SyntheticSpec, run

    kinds = [m.strip() for m in models.split(",")] if models else list(CLICK_KINDS)
    spec = SyntheticSpec(items=items, users=users, requests=requests)
    try:
        result = run(kinds, [d.strip() for d in datasets.split(",")],
                     data_dir or Path("../shared/datasets"), spec, workdir,
                     log=lambda msg: console.print(msg))
    except (FileNotFoundError, KeyError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps(result))
        return
    for name, ds in result["datasets"].items():
        oracle = f"  (oracle AUC {ds['oracle_auc']:.4f})" if "oracle_auc" in ds else ""
        console.print(f"[bold]{name}[/bold]{oracle}")
        for kind, m in ds["models"].items():
            console.print(f"  {kind:10s} AUC {m['auc']:.4f}  GAUC {m['gauc']:.4f}  "
                          f"logloss {m['logloss']:.4f}  calibration {m['calibration']:.3f}  "
                          f"train {m['train_s']:.1f}s")


if __name__ == "__main__":
    app()


@eval_app.command("rules")
def eval_rules(
    items: Annotated[int, typer.Option(min=50, help="Generated listings (with photos).")] = 3000,
    lists: Annotated[int, typer.Option(min=1, help="Ranked lists the rule chain runs on.")] = 500,
    size: Annotated[int, typer.Option(min=2, help="Items per ranked list.")] = 500,
    shown: Annotated[int, typer.Option(min=1, help="Items a list shows (n).")] = 50,
    rule_id: Annotated[str, typer.Option("--rule", help="Rule id of the strategy file.")] =
    "ru_default",
    seed: int = 7,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Dedup precision / recall (text, image, mixed) against a generated marketplace's planted
    re-posts, scatter violations, and the rule stage's latency on ranked lists."""
    from tuijian.config import load_strategies
    from tuijian.rules.evaluate import run as run_rules

    try:
        strategies = load_strategies(Settings.from_env().strategies)
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if rule_id not in strategies.rule:
        console.print(f"[red]--rule: unknown rule id {rule_id!r} "
                      f"(known: {', '.join(strategies.rule)})[/red]")
        raise typer.Exit(2)
    result = run_rules(strategies.rule[rule_id], items, lists, size, shown, seed)
    if as_json:
        print(json.dumps(result))
        return
    for kind, m in result["dedup"].items():
        console.print(f"dedup {kind:6s} precision {m['precision']:.4f}  recall {m['recall']:.4f}"
                      f"  ({m['pairs']} pairs found, {m['true_pairs']} planted)")
    console.print(f"scatter violations {result['scatter']['violations']} in "
                  f"{result['scatter']['lists']} lists; rules p50 {result['rules_p50_ms']} ms, "
                  f"p99 {result['rules_p99_ms']} ms")
