"""Faults against live server processes, each with a verdict and the numbers behind it.

    redis-outage   the stream's Redis (a private redis-server, never the shared 6379) is killed
                   under load and restarted on the same port: how requests fare during the
                   outage (target: they degrade, none fail) and how long after the restart the
                   service is whole again (readiness, events accepted, answers as before).
    kill-api       stream mode: an API replica (`--role api`) is kill -9'd while a client posts
                   click events; it is restarted, the worker (`--role all`) drains, and every
                   event the API acknowledged must be in the worker's event log.
                   `--target worker` kills the ingest worker instead.
    corrupt-model  a rank model serves; a corrupt new version is deployed with `tuijian models
                   deploy --force`; the server must mark it REJECTED and keep serving the old
                   one (every request 200, the version in /metrics unchanged).
    all            the three in turn.

`--env NAME=VALUE` is passed to every server process; `{redis}` in a value is replaced by the
private Redis URL (`redis://127.0.0.1:PORT/0`), e.g.
`--env 'TUIJIAN_FEATURES_URL={redis}?prefix=f'`.
Exits 1 if any scenario fails its verdict.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import httpx
import numpy as np

from harness import (
    PrivateRedis,
    add_data_args,
    data_dir,
    parse_env,
    resolve_generated,
    tuijian_server,
)
from traffic import Sample, Traffic, counts, first_after

SECRET = "bench-faults-shared-secret"  # API replicas and the worker verify the same params
Result = dict[str, Any]


def _env(args: argparse.Namespace, redis: PrivateRedis | None) -> dict[str, str]:
    env = {"TUIJIAN_SECRET": SECRET, **parse_env(args.env)}
    if redis is None:  # a scenario without the private Redis: settings that name it go too
        return {k: v for k, v in env.items() if "{redis}" not in v}
    base = redis.url.split("?")[0]
    env.setdefault("TUIJIAN_STREAM_URL", f"{base}?prefix=bench")
    return {k: v.replace("{redis}", base) for k, v in env.items()}


def _ok(status: str) -> bool:
    return status.startswith("2")


def redis_outage(args: argparse.Namespace, generated: Path, root: Path) -> Result:
    redis = PrivateRedis(root / "redis").start()
    server = tuijian_server(data_dir(generated, root), env=_env(args, redis)).start()
    traffic = Traffic(server.url, args.users, threads=2, rate=args.rate, events=True)
    try:
        traffic.start()
        time.sleep(args.before)
        killed = time.monotonic()
        redis.kill()
        time.sleep(args.outage)
        restarted = time.monotonic()
        redis.start()  # same port, same AOF directory
        time.sleep(args.after)
        traffic.stop()
        alive = server.proc is not None and server.proc.poll() is None
    finally:
        traffic.stop()
        server.stop()
        redis.kill()
    samples = traffic.samples
    baseline = {s.degraded for s in samples if s.kind == "recommend" and s.t < killed
                and s.outcome == "200"}

    def whole(s: Sample) -> bool:
        """Answered as before the outage: recommendations as degraded as then (no more), and
        readiness naming no backend down."""
        if s.kind == "recommend":
            return _ok(s.outcome) and s.degraded in baseline
        return _ok(s.outcome) and not (s.kind == "readyz" and s.degraded)

    phases = {"before": (float("-inf"), killed), "outage": (killed, restarted),
              "after": (restarted, float("inf"))}
    by_phase = {name: {kind: counts(samples, kind, *span)
                       for kind in ("recommend", "events", "readyz")}
                for name, span in phases.items()}
    degraded_in_outage = sorted({d for s in samples if s.kind == "recommend"
                                 and killed <= s.t < restarted for d in s.degraded})
    recovery = {kind: first_after([s for s in samples if s.kind == kind], restarted, whole)
                for kind in ("recommend", "events", "readyz")}
    outage_failures = sum(n for kind in ("recommend", "events")
                          for status, n in by_phase["outage"][kind].items() if not _ok(status))
    failed = []
    if outage_failures:
        failed.append(f"{outage_failures} requests failed during the outage")
    if not alive:
        failed.append("the server process died")
    if any(v is None or v > args.recovery_s for v in recovery.values()):
        failed.append(f"not whole within {args.recovery_s:g} s of the restart")
    return {"scenario": "redis-outage", "outage_s": args.outage, "by_phase": by_phase,
            "degraded_during_outage": degraded_in_outage, "recovery_s": recovery,
            "server_alive": alive, "verdict": "fail: " + "; ".join(failed) if failed else "pass"}


def logged_ids(events_dir: Path) -> list[str]:
    """Event ids in an event log, read beside the process that owns it (no lock taken)."""
    from tuijian.data.eventlog import snapshot_sql

    con = duckdb.connect()
    try:
        rows = con.execute(f"SELECT event_id FROM {snapshot_sql(events_dir)} "
                           "WHERE type = 'click'").fetchall()
    finally:
        con.close()
    return [r[0] for r in rows]


def kill_api(args: argparse.Namespace, generated: Path, root: Path) -> Result:
    redis = PrivateRedis(root / "redis").start()
    env = _env(args, redis)
    worker_data = data_dir(generated, root)
    worker = tuijian_server(worker_data, role="all", env=env).start()
    api = tuijian_server(data_dir(generated, root), role="api", env=env).start()
    victim = api if args.target == "api" else worker
    traffic = Traffic(api.url, args.users, threads=1, rate=args.rate, events=True)
    try:
        traffic.start()
        time.sleep(args.before)
        acked_before_kill = len(traffic.acked)
        killed = time.monotonic()
        victim.kill9()
        t0 = time.perf_counter()
        victim.start()
        restart_s = round(time.perf_counter() - t0, 2)
        time.sleep(args.after)
        traffic.stop()
        acked = set(traffic.acked)
        deadline = time.monotonic() + args.drain_s
        missing = acked - set(logged_ids(worker.log_path.parent / "events"))  # type: ignore[union-attr]
        while missing and time.monotonic() < deadline:
            time.sleep(0.5)
            missing = acked - set(logged_ids(worker.log_path.parent / "events"))  # type: ignore[union-attr]
        drained_s = round(args.drain_s - max(0.0, deadline - time.monotonic()), 1)
        logged = logged_ids(worker_data / "events")
    finally:
        traffic.stop()
        api.stop()
        worker.stop()
        redis.kill()
    failed = [f"{len(missing)} acknowledged events missing from the log"] if missing else []
    if acked_before_kill == 0:
        failed.append("no event was acknowledged before the kill: nothing was tested")
    return {"scenario": f"kill-{args.target}", "events_posted": counts(traffic.samples,
                                                                      "events"),
            "acked": len(acked), "acked_before_kill": acked_before_kill,
            "outcomes_after_kill": counts(traffic.samples, "events", killed),
            "restart_s": restart_s, "drain_s": drained_s, "missing": len(missing),
            "missing_sample": sorted(missing)[:5], "logged": len(logged),
            "logged_duplicates": len(logged) - len(set(logged)),
            "verdict": "fail: " + "; ".join(failed) if failed else "pass"}


def rank_model(path: Path, objective: str, seed: int) -> Path:
    """A real LR model over marketplace inputs (price, category, hour), fitted on random rows:
    what matters here is that it loads, serves, and can be told from a corrupt copy."""
    from tuijian.rank.deployed import DeployedModel, Manifest
    from tuijian.rank.features.featureset import FeatureSet
    from tuijian.rank.features.spec import FeatureConfig, FeatureSpec
    from tuijian.rank.models.base import TrainSet
    from tuijian.rank.models.linear import LogisticRegressionModel

    config = FeatureConfig(name="faults", features=[
        FeatureSpec(name="price", side="item", inputs=["item_price"], transform="normalize",
                    log1p=True),
        FeatureSpec(name="category", side="item", inputs=["item_category"],
                    transform="categorical", size=64),
        FeatureSpec(name="hour", side="context", inputs=["ctx_hour"], transform="bucketize",
                    boundaries=[6.0, 12.0, 18.0])])
    rng = np.random.default_rng(seed)
    raw = {"item_price": rng.lognormal(6, 1, 2000), "item_category": rng.integers(0, 64, 2000),
           "ctx_hour": rng.integers(0, 24, 2000).astype(float)}
    features = FeatureSet.fit(config, raw)
    model = LogisticRegressionModel(features.layout, "binary", {"C": 1.0})
    model.fit(TrainSet(features.transform(raw), (rng.random(2000) < 0.1).astype(float)))
    layout = features.layout
    DeployedModel(Manifest(kind="lr", objective=objective, task="binary",
                           n_dense=layout.n_dense, field_sizes=list(layout.field_sizes),
                           train_rows=2000), features, model).save(path)
    return path


def corrupt(path: Path) -> Path:
    """Truncate the weights file to half (as tests/rank/test_model_registry.py does)."""
    from tuijian.rank.models.linear import WEIGHTS

    weights = path / WEIGHTS
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return path


def tuijian(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tuijian.cli", *argv], capture_output=True,
                          text=True, timeout=120)


def _wait(check: Callable[[], bool], timeout_s: float) -> float | None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if check():
            return round(time.monotonic() - t0, 2)
        time.sleep(0.25)
    return None


def corrupt_model(args: argparse.Namespace, generated: Path, root: Path) -> Result:
    data = data_dir(generated, root)
    models = root / "models"
    names = {"ctr_gbdt_lr": "click", "cvr_gbdt": "convert"}  # what rk_ctr_cvr asks for
    for i, (name, objective) in enumerate(names.items()):
        deployed = tuijian("models", "deploy", str(rank_model(models / name, objective, i)),
                           "--name", name, "--data", str(data))
        if deployed.returncode != 0:
            raise RuntimeError(deployed.stderr)
    server = tuijian_server(data, env=_env(args, None)).start()
    serving = 'tuijian_model_version_info{model="ctr_gbdt_lr",version="v0001"} 1.0'

    def metrics() -> str:
        return httpx.get(server.url + "/metrics", timeout=5).text

    def listed() -> dict[str, Any]:
        out = tuijian("models", "list", "--data", str(data), "--json")
        return {r["version"]: r for r in json.loads(out.stdout) if r["name"] == "ctr_gbdt_lr"}

    traffic = Traffic(server.url, args.users, threads=2, rate=args.rate)
    try:
        loaded_s = _wait(lambda: serving in metrics(), 30)
        traffic.start()
        time.sleep(args.before)
        bad = corrupt(rank_model(models / "bad", "click", 7))
        deployed_at = time.monotonic()
        out = tuijian("models", "deploy", str(bad), "--name", "ctr_gbdt_lr", "--force",
                      "--data", str(data))
        rejected_s = _wait(lambda: listed().get("v0002", {}).get("status") == "rejected", 30)
        time.sleep(args.after)
        traffic.stop()
        text = metrics()
        rows = listed()
    finally:
        traffic.stop()
        server.stop()
    after = [s for s in traffic.samples if s.kind == "recommend" and s.t >= deployed_at]
    model_missing = sum("rank.model_missing" in s.degraded for s in after)
    still_serving = serving in text
    failed = [why for bad_, why in (
        (loaded_s is None, "the first version never served"),
        (out.returncode != 0, f"deploy --force failed: {out.stderr}"),
        (rejected_s is None, "the corrupt version was not marked rejected"),
        (not still_serving, "v0001 is no longer the version serving"),
        (any(s.outcome != "200" for s in after), "requests failed after the deploy"),
        (model_missing > 0, f"{model_missing} answers fell back to the rule order"),
    ) if bad_]
    return {"scenario": "corrupt-model", "first_version_loaded_s": loaded_s,
            "rejected_after_s": rejected_s,
            "v0002": {k: rows.get("v0002", {}).get(k) for k in ("status", "current", "reason")},
            "v0001_status": rows.get("v0001", {}).get("status"),
            "metrics_serving_v0001": still_serving,
            "load_failures_metric": [ln for ln in text.splitlines()
                                     if ln.startswith("tuijian_model_load_failures_total")],
            "recommend_after_deploy": counts(after, "recommend"),
            "answers_without_model": model_missing,
            "verdict": "fail: " + "; ".join(failed) if failed else "pass"}


SCENARIOS: dict[str, Callable[[argparse.Namespace, Path, Path], Result]] = {
    "redis-outage": redis_outage, "kill-api": kill_api, "corrupt-model": corrupt_model}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=[*SCENARIOS, "all"])
    add_data_args(parser, items=100_000, users=100_000)
    parser.add_argument("--rate", type=float, default=20.0, help="Requests/s per client thread")
    parser.add_argument("--before", type=float, default=4.0, help="Seconds of load before")
    parser.add_argument("--outage", type=float, default=5.0, help="Seconds Redis stays down")
    parser.add_argument("--after", type=float, default=8.0, help="Seconds of load after")
    parser.add_argument("--recovery-s", type=float, default=5.0,
                        help="redis-outage: whole again within this long of the restart")
    parser.add_argument("--target", choices=["api", "worker"], default="api",
                        help="kill-api: the process to kill -9")
    parser.add_argument("--drain-s", type=float, default=60.0,
                        help="kill-api: how long the worker may take to store every event")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    generated = resolve_generated(args)
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    results = []
    for name in names:
        root = Path(tempfile.mkdtemp(prefix=f"tuijian-{name}-"))
        try:
            results.append(SCENARIOS[name](args, generated, root))
        finally:
            shutil.rmtree(root, ignore_errors=True)
        print(json.dumps(results[-1]) if args.json else
              "\n".join(f"{k:26s} {v}" for k, v in results[-1].items()) + "\n", flush=True)
    return 0 if all(r["verdict"] == "pass" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

