"""Online learning: a live FTRL model updated from the service's own exposures and clicks.

The pipeline hands over the raw inputs of every shown item as it logs the exposure (the same
rows the exposure events snapshot); clicks mark them positive as they are ingested. An exposure
waits `delay_s` for its clicks, then `tick` learns every due exposure as one minibatch. So a
click reaches the model's weights within seconds, without a training job or a reload.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tuijian.domain import IntArray
from tuijian.rank.deployed import DeployedModel
from tuijian.rank.features.featureset import Raw
from tuijian.rank.models.ftrl import FTRLModel

MAX_PENDING_ROWS = 200_000
# exposures remembered after they are learnt, so a late click can still find its row
MAX_COMMITTED_ROWS = 200_000


@dataclass(slots=True)
class LearnerStats:
    updates: int = 0  # minibatches learnt
    rows: int = 0  # rows learnt, late positives included
    positives: int = 0
    late_clicks: int = 0  # clicks that arrived after their exposure was learnt
    dropped: int = 0  # pending rows dropped at the memory cap, never learnt
    unmatched_clicks: int = 0  # clicks on exposures this learner never saw or has forgotten


@dataclass(slots=True)
class _Exposure:
    t: float
    item_ids: IntArray
    raw: Raw
    clicked: npt.NDArray[np.bool_]

    def row(self, j: int) -> Raw:
        return {k: v[j:j + 1] for k, v in self.raw.items()}


class OnlineLearner:
    """Pending exposures → labelled minibatches → `partial_fit` of a deployed FTRL model.

    Thread safety: `add_exposures` and `mark_click` (request and ingest path) and `tick` (a
    background thread) share the pending state under one lock; `tick` holds it only to take
    the due rows, and transforms and learns outside it. The model's own copy-on-write update
    keeps concurrent `predict` calls consistent.
    """

    def __init__(self, model: DeployedModel, delay_s: float = 5.0,
                 clock: Callable[[], float] = time.time,
                 max_pending_rows: int = MAX_PENDING_ROWS,
                 max_committed_rows: int = MAX_COMMITTED_ROWS) -> None:
        if not isinstance(model.model, FTRLModel):
            raise TypeError(f"online learning needs an ftrl model, not {model.manifest.kind!r}")
        self.model, self.ftrl = model, model.model
        self.delay_s, self.clock = delay_s, clock
        self.max_pending_rows, self.max_committed_rows = max_pending_rows, max_committed_rows
        self.stats = LearnerStats()
        self._inputs = model.features.config.inputs
        # a model trained with negatives kept at rate r predicts odds inflated by 1/r, which
        # serving corrects for; weighting every online negative by r keeps that true (in
        # expectation it is the same as sampling the negatives at rate r)
        self._negative_weight = model.manifest.negative_rate
        self._lock = threading.Lock()
        self._pending: OrderedDict[str, _Exposure] = OrderedDict()
        self._committed: OrderedDict[str, _Exposure] = OrderedDict()
        self._pending_rows = self._committed_rows = 0
        self._late: list[Raw] = []

    @property
    def pending_rows(self) -> int:
        return self._pending_rows + len(self._late)

    def add_exposures(self, exposure_id: str, item_ids: npt.ArrayLike, raw_rows: Raw) -> None:
        """These items were shown (row j of `raw_rows` is item_ids[j]); learnt after delay_s.
        Only the inputs the feature config reads are kept."""
        ids = np.asarray(item_ids, np.int64)
        raw = {k: np.asarray(raw_rows[k]) for k in self._inputs}
        if any(len(v) != len(ids) for v in raw.values()):
            raise ValueError("add_exposures: raw rows and item ids differ in length")
        with self._lock:
            e = self._pending.get(exposure_id)
            if e is None:
                self._pending[exposure_id] = _Exposure(self.clock(), ids, raw,
                                                       np.zeros(len(ids), bool))
            else:  # more positions of one list, logged later
                e.item_ids = np.concatenate([e.item_ids, ids])
                e.raw = {k: np.concatenate([e.raw[k], raw[k]]) for k in e.raw}
                e.clicked = np.concatenate([e.clicked, np.zeros(len(ids), bool)])
            self._pending_rows += len(ids)
            while self._pending_rows > self.max_pending_rows and self._pending:
                _, old = self._pending.popitem(last=False)
                self._pending_rows -= len(old.item_ids)
                self.stats.dropped += len(old.item_ids)

    def mark_click(self, exposure_id: str | None, item_id: int) -> bool:
        """Label the item's row of that exposure positive; False if it is unknown. A repeated
        click on the same row is a no-op.

        A click on an exposure already learnt (as a negative) is learnt at the next tick as an
        extra positive row rather than lost: a late click is the strongest signal there is, and
        the negative already in the weights cannot be taken back. (The "fake negative" scheme
        of delayed-feedback CTR training, e.g. Ktena et al., RecSys 2019.)"""
        if exposure_id is None:
            return False
        with self._lock:
            pending = self._pending.get(exposure_id)
            e = pending or self._committed.get(exposure_id)
            hit = np.flatnonzero(e.item_ids == item_id) if e is not None else np.empty(0)
            if e is None or hit.size == 0:
                self.stats.unmatched_clicks += 1
                return False
            j = int(hit[0])
            if not e.clicked[j]:
                e.clicked[j] = True
                if pending is None:
                    self._late.append(e.row(j))
                    self.stats.late_clicks += 1
            return True

    def tick(self, now: float | None = None) -> int:
        """Learn every exposure older than delay_s, and the late clicks since the last tick, as
        one minibatch; returns the number of rows learnt."""
        now = self.clock() if now is None else now
        with self._lock:
            due: list[_Exposure] = []
            while self._pending:
                eid, e = next(iter(self._pending.items()))
                if e.t > now - self.delay_s:
                    break
                self._pending.popitem(last=False)
                self._pending_rows -= len(e.item_ids)
                self._remember(eid, e)
                due.append(e)
            late, self._late = self._late, []
            # labels are read now: a click from here on is a late click
            y = np.concatenate([*(e.clicked.astype(np.float64) for e in due),
                                np.ones(len(late))])
        if len(y) == 0:
            return 0
        parts = [e.raw for e in due] + late
        raw = {k: np.concatenate([p[k] for p in parts]) for k in self._inputs}
        weight = None
        if self._negative_weight < 1.0:
            weight = np.where(y > 0, 1.0, self._negative_weight)
        self.ftrl.partial_fit(self.model.features.transform(raw), y, weight)
        with self._lock:
            s = self.stats
            s.updates += 1
            s.rows += len(y)
            s.positives += int(y.sum())
        return len(y)

    def _remember(self, eid: str, e: _Exposure) -> None:
        self._committed[eid] = e
        self._committed_rows += len(e.item_ids)
        while self._committed_rows > self.max_committed_rows and self._committed:
            _, old = self._committed.popitem(last=False)
            self._committed_rows -= len(old.item_ids)
