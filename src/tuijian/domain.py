"""The shared vocabulary as typed records.

Records that cross a boundary (an event, a request, a stage's output) are slotted dataclasses;
anything per-item inside a stage is a numpy array over dense item indexes, never a list of
records. See DESIGN.md for what each term means.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class EventType(StrEnum):
    EXPOSURE = "exposure"
    CLICK = "click"
    CONVERT = "convert"
    DWELL = "dwell"


class Scene(StrEnum):
    GUESS_YOU_LIKE = "guess_you_like"
    DETAIL_RELATED = "detail_related"
    SEARCH_FALLBACK = "search_fallback"
    PUSH = "push"
    FEED = "feed"


class EventStatus(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    QUARANTINED = "quarantined"


@dataclass(slots=True)
class Event:
    """One behavior event as stored in the event log.

    The tracking columns (exposure_id … source) are copied from the verified tracking param at
    ingest, so joins and effect data never need to decode params again.
    """

    event_id: str
    type: str
    user_id: str
    item_id: int
    ts: float
    tracking: str | None = None
    subtype: str | None = None
    dwell_s: float | None = None
    exposure_id: str | None = None
    scene: str | None = None
    recall_id: str | None = None
    rank_id: str | None = None
    rule_id: str | None = None
    display_id: str | None = None
    position: int | None = None
    source: str | None = None
    platform: str | None = None
    sources: int | None = None  # bit per recall source code that found the item
    # exposures only: the ranking inputs that change over time, as they were when the item
    # was shown (see rank/features/marketplace.py), so training reads what serving saw
    features: dict[str, float] | None = None
    creative: str | None = None  # the image the display stage chose for the item
    # the list's first exposure only: what each rule removed / moved / added in this list
    rules: dict[str, dict[str, int]] | None = None
    # every layer's experiment and variant (`ID:variant`, `!` when a whitelist forced it)
    experiments: list[str] | None = None
    slot: str | None = None  # the client placement the list was shown in
    # exposures ranked by a click model: its P(click) at the position shown (calibration alarms)
    pctr: float | None = None


@dataclass(slots=True, frozen=True)
class ExperimentTag:
    """One layer's assignment of a request: the experiment and variant it is in (`forced`:
    by a whitelist, so reports leave it out)."""

    layer: str
    experiment: int
    variant: str
    forced: bool = False

    @property
    def tag(self) -> str:
        """How it travels in tracking params and the event log: `ID:variant[!]`."""
        return f"{self.experiment}:{self.variant}{'!' if self.forced else ''}"


@dataclass(slots=True)
class StageIds:
    """Which configured strategy serves each of the four stages of one request, and the
    experiments (one per layer at most) that chose them."""

    recall: str
    rank: str
    rule: str
    display: str
    experiments: tuple[ExperimentTag, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)  # parameter layers' settings


@dataclass(slots=True)
class RecommendRequest:
    """A validated request, as the pipeline sees it (the HTTP schema lives in serving/)."""

    scene: Scene
    user_id: str
    n: int
    now: float
    city: str | None = None
    lat: float | None = None
    lon: float | None = None
    item_id: int | None = None
    filters: dict[str, Any] = field(default_factory=dict)
    page_token: str | None = None
    platform: str = "android"
    tracking: str | None = None
    slot: str | None = None  # the client's placement; None: the scene


@dataclass(slots=True)
class Candidates:
    """A stage's working set: dense item indexes, a score, the recall source that placed each
    one (`source`, a source code) and every source that found it (`sources`, a bit per code)."""

    idx: IntArray
    score: FloatArray
    source: npt.NDArray[np.int16]
    sources: IntArray

    @staticmethod
    def placed(idx: IntArray, score: FloatArray, source: int) -> Candidates:
        """Candidates all placed by one source."""
        return Candidates(idx, score, np.full(idx.shape[0], source, np.int16),
                          np.full(idx.shape[0], 1 << source, np.int64))

    def __len__(self) -> int:
        return int(self.idx.shape[0])

    def take(self, order: npt.NDArray[np.intp] | IntArray) -> Candidates:
        return Candidates(self.idx[order], self.score[order], self.source[order],
                          self.sources[order])

    def rescored(self, score: FloatArray) -> Candidates:
        return Candidates(self.idx, score, self.source, self.sources)

    def concat(self, other: Candidates) -> Candidates:
        return Candidates(
            np.concatenate([self.idx, other.idx]), np.concatenate([self.score, other.score]),
            np.concatenate([self.source, other.source]),
            np.concatenate([self.sources, other.sources]),
        )

    @staticmethod
    def empty() -> Candidates:
        return Candidates(np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.int16),
                          np.empty(0, np.int64))
