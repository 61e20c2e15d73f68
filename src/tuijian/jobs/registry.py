"""Every batch job by name, and how the service loads what each publishes.

Add a job: one module, one line in JOBS, and a loader if a recall source reads its output.
"""

from __future__ import annotations

from tuijian.data.items import ItemFeatureCenter
from tuijian.jobs.artifacts import Artifact
from tuijian.jobs.association import AssociationJob
from tuijian.jobs.base import Job, Loader
from tuijian.jobs.cf import ItemCFJob, MFJob, TwoTowerJob, UserCFJob
from tuijian.jobs.hot import HotJob, RecentStats
from tuijian.recall.cf import UserLists
from tuijian.recall.mf import FactorRecall
from tuijian.recall.models.two_tower import TwoTower
from tuijian.recall.neighbors import NeighborTable
from tuijian.recall.two_tower import TowerRecall

JOBS: dict[str, Job] = {
    "hot": HotJob(),
    "association": AssociationJob(),
    "item_cf": ItemCFJob(),
    "user_cf": UserCFJob(),
    "mf": MFJob(),
    "two_tower": TwoTowerJob(),
}


def _neighbors(artifact: Artifact, store: ItemFeatureCenter) -> object:
    return NeighborTable.from_table(artifact.table("neighbors"), store)


LOADERS: dict[str, Loader] = {
    "hot": lambda artifact, store: RecentStats.from_table(artifact.table("items"), store),
    "association": _neighbors,
    "item_cf": _neighbors,
    "user_cf": lambda artifact, store: UserLists.from_table(
        artifact.table("recommendations"), store),
    "mf": lambda artifact, store: FactorRecall(
        artifact.table("items"), artifact.table("users"),
        float(artifact.meta()["params"]["regularization"]),
        float(artifact.meta()["params"]["alpha"]), store),
    "two_tower": lambda artifact, store: TowerRecall(
        TwoTower.load(artifact.path / "model"), artifact.table("items"), store),
}
