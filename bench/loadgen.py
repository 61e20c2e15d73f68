"""The load generator: wrk (C, epoll, Debian's `wrk` package) driving recommend_mix.lua.

Why wrk and not Python: the machine has 2 cores and the server is a Python process; a Python
client would need most of a core to reach the rates a C client reaches in a fraction of one,
and would share its GIL-bound slowness with the thing it measures. wrk is pinned to its own
core (taskset) with one thread. Its latencies are per request, closed loop (each connection
sends its next request when the previous answer arrives), as the concurrency levels intend.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import pinned

SCRIPT = Path(__file__).resolve().parent / "recommend_mix.lua"
MIX = "guess_you_like:50,detail_related:30,feed:20"
MARKER = "WRKJSON "


def require_wrk() -> str:
    """wrk's path; installed with apt-get when missing and we are root, else a clear stop."""
    path = shutil.which("wrk")
    if path:
        return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        path = shutil.which("wrk")
        if path:
            return path
    raise SystemExit("the load generator is wrk: install it with `apt-get install -y wrk` "
                     "(Debian package) and run again")


@dataclass(slots=True)
class Load:
    """What to send: id ranges the zipf draws cover, the scene mix, list size, cold share."""

    users: int
    items: int
    mix: str = MIX
    n: int = 20
    cold: float = 0.05


def run_wrk(url: str, load: Load, connections: int, seconds: float, *, cpus: str = "",
            delay_ms: float = 0.0, timeout_s: float = 10.0) -> dict[str, Any]:
    """One wrk run; returns rps, p50/p90/p99/max ms, 2xx / non-2xx / 5xx and socket errors."""
    cmd = pinned([require_wrk(), "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
                  f"--timeout={timeout_s:g}s", "--latency", "-s", str(SCRIPT), url], cpus)
    env = {**os.environ, "WRK_USERS": str(load.users), "WRK_ITEMS": str(load.items),
           "WRK_MIX": load.mix, "WRK_N": str(load.n), "WRK_COLD": str(load.cold),
           "WRK_DELAY_MS": str(delay_ms)}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True,
                          timeout=seconds + timeout_s + 30)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(MARKER)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr[-1000:]}"
                           f"{done.stdout[-1000:]}")
    raw = json.loads(lines[-1][len(MARKER):])
    statuses = {int(k): v for k, v in raw["statuses"].items()}
    ok = sum(v for k, v in statuses.items() if 200 <= k < 300)
    return {
        "connections": connections, "rps": round(ok / raw["seconds"], 1),
        "requests": raw["requests"], "seconds": raw["seconds"],
        "p50_ms": round(raw["p50_ms"], 2), "p90_ms": round(raw["p90_ms"], 2),
        "p99_ms": round(raw["p99_ms"], 2), "max_ms": round(raw["max_ms"], 2),
        "ok": ok, "non_2xx": sum(statuses.values()) - ok,
        "5xx": sum(v for k, v in statuses.items() if k >= 500),
        "errors": sum(raw["socket_errors"].values()), "socket_errors": raw["socket_errors"],
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }
