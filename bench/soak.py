"""Soak: `tuijian serve` at a steady request rate for `--minutes`, memory sampled as it runs.

wrk sends the recommendation mix on a few connections, each pausing `connections / rate`
between requests (wrk's delay hook), so the offered rate is steady and below saturation; the
achieved rate is reported. The server's RSS is read from /proc every `--sample-s`. The slope is
a least-squares line through the samples after the first `--settle` fraction of the run
(start-up allocations and the first cube build are not a leak). Exits 1 on any 5xx or socket
error, or a slope above `--max-slope`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness import add_data_args, data_dir, parse_env, resolve_generated, tuijian_server
from loadgen import MIX, Load, run_wrk


def slope_mb_per_min(samples: list[tuple[float, float]], settle: float) -> float:
    """Least-squares RSS slope over the samples after the settling share of the run."""
    if len(samples) < 3:
        return 0.0
    t_end = samples[-1][0]
    kept = [s for s in samples if s[0] >= settle * t_end] or samples
    if len(kept) < 3:
        kept = samples[-3:]
    t, rss = np.array(kept).T
    return float(np.polyfit(t / 60.0, rss, 1)[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(parser, items=1_000_000, users=1_000_000)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=100.0, help="Requests per second offered")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--sample-s", type=float, default=5.0)
    parser.add_argument("--settle", type=float, default=0.1,
                        help="Share of the run left out of the slope (warm-up)")
    parser.add_argument("--max-slope", type=float, default=5.0, help="MB/min that fails")
    parser.add_argument("--mix", default=MIX)
    parser.add_argument("--server-cpus", default="0")
    parser.add_argument("--client-cpus", default="1")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    env = parse_env(args.env)
    generated = resolve_generated(args)
    load = Load(users=args.users, items=args.items, mix=args.mix)
    seconds = args.minutes * 60
    samples: list[tuple[float, float]] = []
    wrk_result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tuijian-soak-") as tmp:
        server = tuijian_server(data_dir(generated, Path(tmp)), role=args.role, env=env,
                                cpus=args.server_cpus).start()
        try:
            def drive() -> None:
                wrk_result.update(run_wrk(server.url, load, args.connections, seconds,
                                          cpus=args.client_cpus,
                                          delay_ms=1000 * args.connections / args.rate))

            driver = threading.Thread(target=drive)
            t0 = time.monotonic()
            driver.start()
            while driver.is_alive():
                samples.append((time.monotonic() - t0, server.rss_mb()))
                driver.join(args.sample_s)
            samples.append((time.monotonic() - t0, server.rss_mb()))
        finally:
            server.stop()
    if not wrk_result:
        raise SystemExit("the load generator failed (see above)")
    rss = [s[1] for s in samples]
    slope = slope_mb_per_min(samples, args.settle)
    result = {
        "bench": "soak", "minutes": args.minutes, "items": args.items, "users": args.users,
        "offered_rps": args.rate, "achieved_rps": wrk_result["rps"],
        "requests": wrk_result["requests"], "p50_ms": wrk_result["p50_ms"],
        "p99_ms": wrk_result["p99_ms"], "statuses": wrk_result["statuses"],
        "5xx": wrk_result["5xx"], "socket_errors": wrk_result["errors"],
        "rss_start_mb": round(rss[0], 1), "rss_end_mb": round(rss[-1], 1),
        "rss_max_mb": round(max(rss), 1), "rss_slope_mb_per_min": round(slope, 2),
        "samples": len(samples), "env": sorted(env),
    }
    failed = [why for bad, why in (
        (result["5xx"] > 0, f"{result['5xx']} responses were 5xx"),
        (result["socket_errors"] > 0, f"{result['socket_errors']} socket errors"),
        (slope > args.max_slope, f"RSS grows {slope:.2f} MB/min > {args.max_slope}"),
    ) if bad]
    result["verdict"] = "fail: " + "; ".join(failed) if failed else "pass"
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:22s} {value}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
