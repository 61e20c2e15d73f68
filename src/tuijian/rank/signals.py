"""Item signals shared by recall (hot lists) and ranking: smoothed CTR and freshness.

One definition, so a hot list and the rule ranker never disagree about what "hot" means.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from tuijian.domain import FloatArray

PRIOR_STRENGTH = 200.0  # pseudo-exposures behind the prior; larger = slower to trust counts
DEFAULT_PRIOR_CTR = 0.03


def prior_ctr(clicks: FloatArray, exposures: FloatArray) -> float:
    """The marketplace-wide CTR, the mean of the Beta prior (default until traffic exists)."""
    exp = float(exposures.sum())
    return float(clicks.sum()) / exp if exp >= 1000 else DEFAULT_PRIOR_CTR


def smoothed_ctr(
    clicks: FloatArray, exposures: FloatArray, quality: npt.NDArray[Any], prior: float
) -> FloatArray:
    """Bayesian CTR with a Beta prior whose mean leans on listing quality.

    (clicks + a) / (exposures + a + b) with a + b = PRIOR_STRENGTH and mean prior × (0.5 +
    quality), so an item with no traffic starts from what its quality suggests and converges to
    its observed CTR as exposures accumulate.
    """
    mean = np.clip(prior * (0.5 + quality.astype(np.float64)), 1e-4, 0.9)
    alpha = mean * PRIOR_STRENGTH
    return (clicks + alpha) / (exposures + PRIOR_STRENGTH)


def freshness(refreshed_ts: npt.NDArray[Any], now: float, half_life_h: float) -> FloatArray:
    """Exponential decay by age since the listing was last refreshed, 1.0 when brand new."""
    age_h = np.maximum(now - refreshed_ts.astype(np.float64), 0.0) / 3600.0
    return np.exp2(-age_h / half_life_h)


MAX_POSITION = 100
COEC_STRENGTH = 3.0  # pseudo expected-clicks behind COEC's prior of 1 (as clicked as expected)


def default_position_ctr(prior: float = DEFAULT_PRIOR_CTR) -> FloatArray:
    """A position-bias curve to start from before the log has enough traffic."""
    return np.asarray(prior * 1.6 * (1.0 + np.arange(MAX_POSITION)) ** -0.7, np.float64)


def position_ctr(clicks: FloatArray, exposures: FloatArray, prior: FloatArray) -> FloatArray:
    """CTR by list position, each smoothed toward `prior` (the default curve) with 1,000
    pseudo-exposures so sparse deep positions stay sensible."""
    strength = 1000.0
    return (clicks + prior * strength) / (exposures + strength)


def smoothed_coec(clicks: FloatArray, expected: FloatArray) -> FloatArray:
    """Clicks over expected clicks (COEC): how an item is clicked relative to what its
    positions predict, which removes the rich-get-richer bias of items always shown first.
    Smoothed toward 1 with COEC_STRENGTH pseudo expected clicks."""
    return (clicks + COEC_STRENGTH) / (expected + COEC_STRENGTH)
