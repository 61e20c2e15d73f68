"""A service with a day of simulated traffic through a running recall experiment."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tuijian.jobs.simulate import simulate
from tuijian.serving.service import Service

from ..conftest import NOW

START = NOW - 86400


@pytest.fixture
def traffic(service: Service, data_dir: Path) -> Service:
    service.experiments.create({
        "name": "fusion", "layer": "recall", "scenes": ["guess_you_like", "feed"],
        "status": "running", "variants": [{"name": "control", "stage_id": "r_default"},
                                          {"name": "rrf", "stage_id": "r_rrf"}]}, "t",
        percent=100)
    # in a thread of its own: the simulator runs an event loop, and a browser test's
    # Playwright already runs one in this thread
    with ThreadPoolExecutor(1) as pool:
        pool.submit(simulate, service, data_dir / "generated", START, 1.0, 600, seed=9).result()
    service.exposures.flush()
    return service
