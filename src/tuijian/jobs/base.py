"""The batch-job boundary: a job reads the event log and publishes a versioned artifact.

Jobs read the log through an `Engine` (embedded DuckDB or Spark) over its segment files (never
taking the serving process's lock), so `tuijian jobs run` works beside a running server, which
then picks the new version up without a restart. A job is one module plus one line in
`jobs/registry.py`, its SQL written once for every engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tuijian.data.items import ItemFeatureCenter
from tuijian.jobs.artifacts import Artifact, ArtifactStore
from tuijian.jobs.engine import Engine

Progress = Callable[[str, float], None]


@dataclass(slots=True)
class JobContext:
    data_dir: Path
    engine: Engine  # holds the event log as the view `events`
    now: float
    params: dict[str, Any] = field(default_factory=dict)
    progress: Progress = lambda stage, frac: None  # noqa: E731

    @property
    def artifacts(self) -> ArtifactStore:
        return ArtifactStore(self.data_dir)


class Job(Protocol):
    name: str

    def run(self, ctx: JobContext) -> Artifact: ...


class Loader(Protocol):
    """Turns a published artifact into the object recall sources read (`Catalog.models`)."""

    def __call__(self, artifact: Artifact, store: ItemFeatureCenter) -> object: ...
