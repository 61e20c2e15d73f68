"""HTTP load: `tuijian serve` and a bare FastAPI endpoint, in one run, at rising concurrency.

Starts the service as a subprocess over a cached generated marketplace (1M items / 1M users by
default) with the environment given by `--env` (the backends: `TUIJIAN_STREAM_URL=…`,
`TUIJIAN_FEATURES_URL=…`), waits for /readyz, warms it, then drives the recommendation mix
(recommend_mix.lua: guess_you_like / detail_related / feed, zipf users and items) through wrk
at each concurrency level for `--seconds`. The bare app (bare_app.py: same route, same body,
a response of the same size, same uvicorn settings) runs the same levels afterwards, as the
ceiling. By default the server is pinned to CPU 0 and wrk to CPU 1, so the generator never
takes the server's core; `--server-cpus '' --client-cpus ''` turns pinning off.

Targets (issue 8): p99 ≤ 30 ms at the best throughput; best throughput ≥ 25% of the bare one.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import (
    Server,
    add_data_args,
    bare_server,
    data_dir,
    parse_env,
    resolve_generated,
    tuijian_server,
)
from loadgen import MIX, Load, run_wrk

P99_TARGET_MS = 30.0
RATIO_TARGET = 0.25


def sweep(server: Server, load: Load, levels: list[int], seconds: float, warmup_s: float,
          cpus: str) -> list[dict[str, Any]]:
    if warmup_s > 0:
        run_wrk(server.url, load, max(levels), warmup_s, cpus=cpus)
    rows = []
    for c in levels:
        rows.append(run_wrk(server.url, load, c, seconds, cpus=cpus))
        print(f"  {c:4d} conn: {rows[-1]['rps']:8.1f} rps  p50 {rows[-1]['p50_ms']:7.2f}  "
              f"p99 {rows[-1]['p99_ms']:7.2f} ms  non-2xx {rows[-1]['non_2xx']}  "
              f"errors {rows[-1]['errors']}", file=sys.stderr)
    return rows


def best(rows: list[dict[str, Any]], p99_ms: float | None = None) -> dict[str, Any] | None:
    """The level with the highest throughput (within the p99 bound, if one is given)."""
    ok = [r for r in rows if p99_ms is None or r["p99_ms"] <= p99_ms]
    return max(ok, key=lambda r: r["rps"]) if ok else None


def table(name: str, rows: list[dict[str, Any]]) -> str:
    head = f"{name}\n  conn      rps    p50 ms    p99 ms    max ms  non-2xx   5xx  errors"
    return "\n".join([head, *(
        f"  {r['connections']:4d} {r['rps']:8.1f} {r['p50_ms']:9.2f} {r['p99_ms']:9.2f} "
        f"{r['max_ms']:9.2f} {r['non_2xx']:8d} {r['5xx']:5d} {r['errors']:7d}" for r in rows)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(parser, items=1_000_000, users=1_000_000)
    parser.add_argument("--levels", default="1,2,4,8,16,32",
                        help="Concurrency levels (connections), comma-separated")
    parser.add_argument("--seconds", type=float, default=15.0, help="Per level")
    parser.add_argument("--warmup", type=float, default=5.0, help="Seconds before the sweep")
    parser.add_argument("--mix", default=MIX)
    parser.add_argument("--n", type=int, default=20, help="List size per request")
    parser.add_argument("--server-cpus", default="0", help="taskset CPU list ('' = any)")
    parser.add_argument("--client-cpus", default="1", help="taskset CPU list for wrk")
    parser.add_argument("--no-bare", action="store_true", help="Skip the bare ceiling")
    parser.add_argument("--json", action="store_true", help="One JSON object on stdout")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    env = parse_env(args.env)
    generated = resolve_generated(args)
    load = Load(users=args.users, items=args.items, mix=args.mix, n=args.n)
    result: dict[str, Any] = {
        "bench": "http_load", "items": args.items, "users": args.users, "mix": args.mix,
        "n": args.n, "seconds_per_level": args.seconds, "server_cpus": args.server_cpus,
        "client_cpus": args.client_cpus, "env": sorted(env)}
    with tempfile.TemporaryDirectory(prefix="tuijian-load-") as tmp:
        root = Path(tmp)
        service = tuijian_server(data_dir(generated, root), role=args.role, env=env,
                                 cpus=args.server_cpus)
        t0 = time.perf_counter()
        service.start()
        result["service_start_s"] = round(time.perf_counter() - t0, 1)
        try:
            result["service_rss_mb"] = round(service.rss_mb())
            print(f"service ready in {result['service_start_s']} s", file=sys.stderr)
            result["service"] = sweep(service, load, levels, args.seconds, args.warmup,
                                      args.client_cpus)
        finally:
            service.stop()
        if not args.no_bare:
            bare = bare_server(root, cpus=args.server_cpus).start()
            try:
                print("bare FastAPI endpoint", file=sys.stderr)
                result["bare"] = sweep(bare, load, levels, args.seconds, args.warmup,
                                       args.client_cpus)
            finally:
                bare.stop()
    top = best(result["service"])
    within = best(result["service"], P99_TARGET_MS)
    result["best"] = top
    result["best_within_p99_target"] = within
    if "bare" in result:
        bare_top = best(result["bare"])
        assert bare_top is not None and top is not None
        result["ratio_best_rps"] = round(top["rps"] / bare_top["rps"], 3)
    result["errors_total"] = sum(r["non_2xx"] + r["errors"] for r in result["service"])
    if args.json:
        print(json.dumps(result))
    else:
        print(table("service", result["service"]))
        if "bare" in result:
            print(table("bare FastAPI", result["bare"]))
            print(f"best throughput ratio service / bare: {result['ratio_best_rps']:.3f} "
                  f"(target ≥ {RATIO_TARGET})")
        if within:
            print(f"best throughput with p99 ≤ {P99_TARGET_MS:g} ms: {within['rps']} rps at "
                  f"{within['connections']} connections (p99 {within['p99_ms']} ms)")
        else:
            print(f"no level kept p99 ≤ {P99_TARGET_MS:g} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
