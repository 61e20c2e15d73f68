"""Every batch job by name, and how the service loads what each publishes.

Add a job: one module, one line in JOBS, and a loader if a recall source reads its output.
"""

from __future__ import annotations

from tuijian.jobs.association import AssociationJob
from tuijian.jobs.base import Job, Loader
from tuijian.recall.neighbors import NeighborTable

JOBS: dict[str, Job] = {
    "association": AssociationJob(),
}

LOADERS: dict[str, Loader] = {
    "association": lambda artifact, store: NeighborTable.from_table(
        artifact.table("neighbors"), store),
}
