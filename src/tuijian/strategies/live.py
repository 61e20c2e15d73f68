"""The stored strategies inside one process: seeded from the strategy file into an empty
store, then followed by revision.

A serving process polls `refresh` (every second or so, with the experiments): when the
revision moved, the whole set is loaded and handed to the service, which makes each changed
strategy servable (Pipeline.add_strategy) and recompiles the experiment assignment, so a
change made by any replica or the CLI serves within seconds, without a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from tuijian.config import Settings, StrategyFile, load_strategies
from tuijian.data.metadb import AuditEntry
from tuijian.serving.errors import RequestError
from tuijian.strategies.store import (
    Check,
    SqlStrategyStore,
    StrategyEntry,
    StrategyStore,
)

log = logging.getLogger(__name__)


def open_strategies(settings: Settings, seed: StrategyFile | None = None
                    ) -> tuple[StrategyStore, int, StrategyFile]:
    """The metadata store's strategies (store, revision, strategies). An empty store is
    seeded first from `seed`, else from the settings' strategy file; a non-empty one is the
    truth, whatever the file now says."""
    store = SqlStrategyStore(settings.metadata_store)
    try:
        rev, strategies = store.load()
        if strategies is None:
            if store.seed(seed or load_strategies(settings.strategies), "seed"):
                log.info("strategies: seeded the metadata store from %s",
                         "the given strategies" if seed else settings.strategies)
            rev, strategies = store.load()
        assert strategies is not None  # seeded just now, by us or a concurrent starter
    except BaseException:
        store.close()
        raise
    return store, rev, strategies


class LiveStrategies:
    def __init__(self, store: StrategyStore, revision: int,
                 apply: Callable[[StrategyFile], None], check: Check | None = None) -> None:
        """`apply` makes a newly loaded set serve; `check` refuses a change the rest of the
        service cannot take (e.g. a live experiment's variant that would no longer derive)."""
        self.store, self.revision = store, revision
        self._apply, self._check = apply, check

    def refresh(self) -> bool:
        """Load and apply the stored strategies if their revision moved."""
        if self.store.revision() == self.revision:
            return False
        rev, strategies = self.store.load()
        if strategies is None:  # emptied behind our back: keep serving what we have
            return False
        self._apply(strategies)
        self.revision = rev
        return True

    def entries(self) -> list[StrategyEntry]:
        return list(self.store.entries()[1].values())

    def get(self, stage: str, sid: str) -> StrategyEntry:
        entry = self.store.entries()[1].get((stage, sid))
        if entry is None:
            raise RequestError("id", f"no {stage} strategy {sid!r}", 404)
        return entry

    def put(self, stage: str, sid: str, body: dict[str, Any], actor: str,
            expect_version: int | None = None) -> StrategyEntry:
        entry = self.store.put(stage, sid, body, actor, self._check, expect_version)
        self.refresh()
        return entry

    def audit(self, stage: str | None = None, sid: str | None = None,
              limit: int = 200) -> list[AuditEntry]:
        return self.store.audit(stage, sid, limit)
