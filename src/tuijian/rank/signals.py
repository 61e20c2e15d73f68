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
