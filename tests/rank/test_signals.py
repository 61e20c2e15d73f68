import numpy as np

from tuijian.rank.signals import (
    default_position_ctr,
    position_ctr,
    smoothed_coec,
    smoothed_ctr,
)


def test_coec_credits_clicks_earned_in_poor_positions() -> None:
    # same clicks; the first item was shown low (few expected clicks), the second at the top
    coec = smoothed_coec(np.array([10.0, 10.0]), np.array([2.0, 20.0]))
    assert coec[0] > 1.0 > coec[1]
    assert smoothed_coec(np.zeros(1), np.zeros(1))[0] == 1.0  # no data: as expected


def test_position_curve_falls_with_position_and_follows_data() -> None:
    prior = default_position_ctr(0.05)
    assert np.all(np.diff(prior) < 0)
    exposures = np.full(prior.shape[0], 1e6)
    clicks = exposures * 0.02
    learned = position_ctr(clicks, exposures, prior)
    assert np.allclose(learned, 0.02, atol=1e-4)  # plenty of data: the data wins
    assert np.allclose(position_ctr(np.zeros_like(prior), np.zeros_like(prior), prior), prior)


def test_smoothed_ctr_moves_from_quality_prior_to_observed_rate() -> None:
    q = np.array([0.9, 0.1])
    cold = smoothed_ctr(np.zeros(2), np.zeros(2), q, 0.04)
    assert cold[0] > cold[1]
    warm = smoothed_ctr(np.array([5000.0, 5000.0]), np.array([1e5, 1e5]), q, 0.04)
    assert np.allclose(warm, 0.05, atol=0.002)
