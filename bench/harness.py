"""What the load, soak and fault benches share: data, server processes, a private Redis.

The server under test is always a real `tuijian serve` subprocess (or the bare FastAPI app
beside it), configured only through its environment, so a backend that exists tomorrow
(`TUIJIAN_FEATURES_URL=redis://…`) is measured by passing `--env NAME=VALUE` and nothing else.
Generated marketplaces are cached outside the repository (`../bench-data` beside the checkout):
1M items + 1M users take ~10 s to generate but 185 MB on disk.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
CACHE = HERE.parent.parent / "bench-data"  # beside the checkout, never inside it
BARE_APP = HERE / "bare_app.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_env(pairs: Sequence[str]) -> dict[str, str]:
    """`--env NAME=VALUE` options as a dict; a pair without `=` is refused by name."""
    env = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--env: expected NAME=VALUE, got {pair!r}")
        env[name] = value
    return env


def pinned(cmd: list[str], cpus: str) -> list[str]:
    """`cmd` bound to the given CPU list (taskset), or unchanged when cpus is empty."""
    return ["taskset", "-c", cpus, *cmd] if cpus else cmd


def generated_data(items: int, users: int, seed: int = 7, cache: Path = CACHE) -> Path:
    """A generated marketplace of this size, made once and reused from the cache."""
    out = cache / f"items{items}-users{users}-seed{seed}" / "generated"
    if (out / "items.parquet").exists() and (out / "users.parquet").exists():
        return out
    from tuijian.data.generator import generate_marketplace

    t0 = time.perf_counter()
    tmp = out.with_name(f".generated-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    generate_marketplace(tmp, items, users, seed, now=time.time())
    tmp.rename(out)  # whole or not at all: an interrupted run leaves no half cache
    print(f"generated {items:,} items / {users:,} users in {time.perf_counter() - t0:.1f} s "
          f"→ {out}", file=sys.stderr)
    return out


def data_dir(generated: Path, root: Path) -> Path:
    """A fresh data directory whose `generated/` is the (read-only) cached marketplace: each
    server gets its own events, catalog and secret, the 185 MB of Parquet is shared."""
    data = Path(tempfile.mkdtemp(prefix="data-", dir=root))
    (data / "generated").symlink_to(generated.resolve(), target_is_directory=True)
    return data


def add_data_args(parser: argparse.ArgumentParser, items: int, users: int) -> None:
    parser.add_argument("--items", type=int, default=items)
    parser.add_argument("--users", type=int, default=users)
    parser.add_argument("--generated", type=Path, default=None,
                        help="An existing generated/ directory to serve (default: generate "
                             f"and cache under {CACHE})")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="Environment for the server processes, e.g. "
                             "TUIJIAN_STREAM_URL=redis://127.0.0.1:6379/0?prefix=bench")
    parser.add_argument("--role", default="all", choices=("all", "api"),
                        help="The server's role: `api` (a stateless replica: needs "
                             "TUIJIAN_STREAM_URL; no ingest worker in the process) or `all`")


def resolve_generated(args: argparse.Namespace) -> Path:
    return Path(args.generated) if args.generated else generated_data(args.items, args.users)


@dataclass
class Server:
    """One HTTP server subprocess on a loopback port; `start` waits until it is ready."""

    cmd: list[str]
    port: int
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    ready_path: str = "/readyz"
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def start(self, timeout_s: float = 300.0) -> Server:
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env})
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.cmd[:6]} exited with {self.proc.returncode} before "
                                   f"it was ready (log: {self.log_path})")
            with suppress(httpx.HTTPError):
                if httpx.get(self.url + self.ready_path, timeout=1.0).status_code == 200:
                    return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.url}{self.ready_path} not ready after {timeout_s:.0f} s")

    def rss_mb(self) -> float:
        """Resident memory from /proc (the serving process itself, not taskset)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"no VmRSS for pid {self.pid}")

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill9()


def tuijian_server(data: Path, *, role: str = "all", env: dict[str, str] | None = None,
                   cpus: str = "", port: int | None = None) -> Server:
    """`tuijian serve` over `data` (exec'd by taskset when pinned, so pid is the server's)."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "tuijian.cli", "serve", "--data", str(data), "--port",
           str(port), "--role", role]
    return Server(pinned(cmd, cpus), port, env or {}, data / "server.log")


def bare_server(root: Path, *, cpus: str = "", port: int | None = None) -> Server:
    """The one-route FastAPI app: the ceiling of the framework and server on this machine."""
    port = port or free_port()
    return Server(pinned([sys.executable, str(BARE_APP), "--port", str(port)], cpus), port,
                  log_path=root / "bare.log", ready_path="/healthz")


@dataclass
class PrivateRedis:
    """A redis-server of our own on a free port, durable per write (AOF, fsync always), so a
    fault bench can kill it without touching the shared one on 6379."""

    root: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0?prefix=bench"

    def start(self) -> PrivateRedis:
        if shutil.which("redis-server") is None:
            raise SystemExit("redis-server not found: apt-get install -y redis-server")
        self.port = self.port or free_port()
        self.root.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.root)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait()
