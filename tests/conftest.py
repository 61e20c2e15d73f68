"""Shared fixtures: a small generated marketplace, and services opened over copies of it."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tuijian.config import Settings
from tuijian.data.generator import generate_marketplace
from tuijian.serving.service import Service

# the public datasets live beside the repository (../shared/datasets), never inside it
DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
N_ITEMS = 20_000
N_USERS = 3_000
NOW = time.time()


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
