"""Experiment statistics, checked against simulation rather than against the formulas.

Users are drawn with Poisson exposures and a per-user CTR from a Beta distribution, so a user's
exposures are correlated the way real ones are; replicates are drawn as 2-D arrays (replicate x
user) so thousands of experiments take well under a second each.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tuijian.experiments.stats import (
    Estimate,
    UnitMetrics,
    compare,
    mean_estimate,
    min_units,
    ratio_estimate,
    relative_lift,
    srm_check,
)

CTR = 0.05
MEAN_EXPOSURES = 20.0
CONCENTRATION = 20.0  # Beta(a, b) with a + b = 20: strong per-user heterogeneity in CTR


def draw(
    rng: np.random.Generator, shape: tuple[int, ...], lift: float = 0.0
) -> dict[str, np.ndarray]:
    """Per-user totals; the population CTR (ratio of expected sums) is CTR * (1 + lift)."""
    mean = CTR * (1.0 + lift)
    exposures = rng.poisson(MEAN_EXPOSURES, shape).astype(np.float64)
    p = rng.beta(mean * CONCENTRATION, (1.0 - mean) * CONCENTRATION, shape)
    clicks = rng.binomial(exposures.astype(np.int64), p).astype(np.float64)
    conversions = rng.binomial(clicks.astype(np.int64), 0.1).astype(np.float64)
    dwell_s = rng.gamma(2.0 * clicks, 15.0)  # shape 0 -> 0 s for users without clicks
    return {
        "exposures": exposures,
        "clicks": clicks,
        "conversions": conversions,
        "dwell_s": dwell_s,
        "dwell_n": clicks.copy(),
    }


def users(rng: np.random.Generator, n: int, lift: float = 0.0) -> UnitMetrics:
    return UnitMetrics(**draw(rng, (n,), lift))


def empty() -> UnitMetrics:
    e = np.zeros(0)
    return UnitMetrics(e, e, e, e, e)


def ctr_lifts(rng: np.random.Generator, reps: int, n: int, lift: float) -> list:
    t, c = draw(rng, (reps, n), lift), draw(rng, (reps, n))
    return [
        relative_lift(
            ratio_estimate(t["clicks"][i], t["exposures"][i]),
            ratio_estimate(c["clicks"][i], c["exposures"][i]),
        )
        for i in range(reps)
    ]


# ratio_estimate / mean_estimate


def test_ratio_variance_matches_empirical_variance_over_replicates() -> None:
    rng = np.random.default_rng(1)
    sim = draw(rng, (2000, 500))
    ests = [ratio_estimate(sim["clicks"][i], sim["exposures"][i]) for i in range(2000)]
    empirical = np.var([e.value for e in ests], ddof=1)
    predicted = np.mean([e.variance for e in ests])
    assert predicted == pytest.approx(empirical, rel=0.15)
    assert np.mean([e.value for e in ests]) == pytest.approx(CTR, rel=0.01)


def test_per_exposure_binomial_variance_understates_the_user_level_one() -> None:
    """Why the unit is the user: correlated exposures make the naive variance too small."""
    m = users(np.random.default_rng(2), 5000)
    est = ratio_estimate(m.clicks, m.exposures)
    naive = est.value * (1 - est.value) / m.exposures.sum()
    assert est.variance > 1.5 * naive


def test_ratio_estimate_degenerate_inputs_give_nan_not_exceptions() -> None:
    none = ratio_estimate(np.zeros(0), np.zeros(0))
    assert math.isnan(none.value) and math.isnan(none.variance) and none.n == 0
    zero_den = ratio_estimate(np.array([1.0, 2.0]), np.zeros(2))
    assert math.isnan(zero_den.value) and math.isnan(zero_den.variance)
    one = ratio_estimate(np.array([1.0]), np.array([4.0]))
    assert one.value == 0.25 and math.isnan(one.variance) and one.n == 1


def test_ratio_estimate_is_ratio_of_sums_not_mean_of_ratios() -> None:
    est = ratio_estimate(np.array([1.0, 0.0, 9.0]), np.array([1.0, 1.0, 18.0]))
    assert est.value == pytest.approx(10.0 / 20.0)
    assert est.n == 3 and est.variance > 0


def test_mean_estimate() -> None:
    v = np.array([1.0, 2.0, 3.0, 6.0])
    est = mean_estimate(v)
    assert est.value == pytest.approx(3.0)
    assert est.variance == pytest.approx(np.var(v, ddof=1) / 4)
    assert math.isnan(mean_estimate(np.zeros(0)).value)
    assert math.isnan(mean_estimate(np.ones(1)).variance)


# relative_lift


def test_aa_ci_coverage_and_false_positive_rate() -> None:
    lifts = ctr_lifts(np.random.default_rng(3), 1000, 1000, 0.0)
    coverage = np.mean([lf.ci_low <= 0.0 <= lf.ci_high for lf in lifts])
    false_pos = np.mean([lf.p_value < 0.05 for lf in lifts])
    assert 0.92 <= coverage <= 0.98
    assert 0.02 <= false_pos <= 0.08


def test_ci_covers_a_true_nonzero_lift() -> None:
    lifts = ctr_lifts(np.random.default_rng(4), 1000, 1000, 0.10)
    coverage = np.mean([lf.ci_low <= 0.10 <= lf.ci_high for lf in lifts])
    assert 0.92 <= coverage <= 0.98


@pytest.mark.parametrize("true_lift", [0.10, -0.10])
def test_true_lift_is_detected_with_right_sign(true_lift: float) -> None:
    rng = np.random.default_rng(5)
    t, c = users(rng, 20_000, true_lift), users(rng, 20_000)
    lf = relative_lift(
        ratio_estimate(t.clicks, t.exposures), ratio_estimate(c.clicks, c.exposures)
    )
    assert lf.p_value < 0.01
    assert lf.lift == pytest.approx(true_lift, abs=0.04)
    if true_lift > 0:
        assert 0.0 < lf.ci_low < lf.lift < lf.ci_high
    else:
        assert lf.ci_low < lf.lift < lf.ci_high < 0.0


def test_relative_lift_arithmetic() -> None:
    lf = relative_lift(Estimate(1.1, 0.01, 100), Estimate(1.0, 0.01, 100), alpha=0.05)
    se = math.sqrt(0.01 / 1.0 + 1.1**2 * 0.01 / 1.0)
    assert lf.lift == pytest.approx(0.1)
    assert lf.ci_high - lf.lift == pytest.approx(1.959964 * se, rel=1e-5)
    assert lf.p_value == pytest.approx(2 * 0.5 * math.erfc(0.1 / math.sqrt(0.02) / math.sqrt(2)))


def test_relative_lift_is_nan_safe() -> None:
    nan = float("nan")
    for t, c in [
        (Estimate(nan, nan, 0), Estimate(0.05, 1e-6, 100)),
        (Estimate(0.05, 1e-6, 100), Estimate(nan, nan, 0)),
        (Estimate(0.05, 0.0, 0), Estimate(0.05, 0.0, 0)),
        (Estimate(0.05, nan, 1), Estimate(0.05, 1e-6, 100)),
    ]:
        lf = relative_lift(t, c)
        assert all(math.isnan(x) for x in (lf.lift, lf.ci_low, lf.ci_high, lf.p_value))
    zero_control = relative_lift(Estimate(0.1, 1e-4, 50), Estimate(0.0, 0.0, 50))
    assert math.isnan(zero_control.lift) and math.isnan(zero_control.ci_low)
    same = relative_lift(Estimate(0.05, 0.0, 10), Estimate(0.05, 0.0, 10))
    assert same.p_value == 1.0 and same.lift == 0.0


# srm_check


def test_srm_flags_a_broken_50_50_split() -> None:
    srm = srm_check({"control": 5300, "treatment": 4700}, {"control": 0.5, "treatment": 0.5})
    assert srm.flagged and srm.p_value < 1e-6
    assert srm.chi2 == pytest.approx(36.0)
    assert srm.expected == {"control": 5000.0, "treatment": 5000.0}


def test_srm_threshold_is_strict_by_default() -> None:
    """chi2 = 9, p ~ 0.0027: suspicious at 0.01, but the default 0.001 must not cry wolf."""
    observed, weights = {"control": 5150, "treatment": 4850}, {"control": 0.5, "treatment": 0.5}
    assert not srm_check(observed, weights).flagged
    assert srm_check(observed, weights, threshold=0.01).flagged


def test_srm_does_not_flag_a_healthy_split() -> None:
    srm = srm_check({"control": 5020, "treatment": 4980}, {"control": 1, "treatment": 1})
    assert not srm.flagged and srm.p_value > 0.5


def test_srm_three_variants_unequal_weights() -> None:
    weights = {"a": 50.0, "b": 25.0, "c": 25.0}  # normalised, so percentages work
    ok = srm_check({"a": 5040, "b": 2470, "c": 2490}, weights)
    assert not ok.flagged
    assert ok.expected == {"a": 5000.0, "b": 2500.0, "c": 2500.0}
    # 1/3 each would fit a 33/33/33 design, not this one
    bad = srm_check({"a": 3334, "b": 3333, "c": 3333}, weights)
    assert bad.flagged


def test_srm_degenerate_cases() -> None:
    one = srm_check({"a": 100}, {"a": 1.0})
    assert not one.flagged and one.p_value == 1.0
    none = srm_check({"a": 0, "b": 0}, {"a": 0.5, "b": 0.5})
    assert not none.flagged and none.p_value == 1.0
    absent = srm_check({"a": 5000}, {"a": 0.5, "b": 0.5})  # configured variant got no users
    assert absent.flagged
    with pytest.raises(ValueError, match="weight"):
        srm_check({"a": 1, "x": 1}, {"a": 1.0})


# min_units


def test_min_units_decreases_as_mde_grows() -> None:
    control = users(np.random.default_rng(6), 20_000)
    sizes = [min_units(control, mde=m) for m in (0.02, 0.05, 0.10, 0.20)]
    assert all(s is not None for s in sizes)
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 4
    assert sizes[1] / sizes[2] == pytest.approx(4.0, rel=0.01)  # n ~ 1 / mde^2


def test_min_units_gives_the_requested_power() -> None:
    rng = np.random.default_rng(7)
    mde = 0.10
    n = min_units(users(rng, 100_000), mde=mde, alpha=0.05, power=0.8)
    assert n is not None and 1000 < n < 20_000
    lifts = ctr_lifts(rng, 300, n, mde)
    detected = np.mean([lf.p_value < 0.05 for lf in lifts])
    assert 0.7 <= detected <= 0.9


def test_min_units_none_when_not_estimable() -> None:
    assert min_units(empty()) is None
    no_clicks = UnitMetrics(np.full(10, 5.0), *(np.zeros(10) for _ in range(4)))
    assert min_units(no_clicks) is None


# compare


def test_compare_report_shape_and_clean_large_balanced_run() -> None:
    rng = np.random.default_rng(8)
    variants = {"control": users(rng, 20_000), "treatment": users(rng, 20_000, 0.10)}
    report = compare(variants, "control", {"control": 0.5, "treatment": 0.5})
    json.dumps(report, allow_nan=False)
    assert report["control"] == "control"
    assert set(report["variants"]) == {"control", "treatment"}
    assert set(report["variants"]["treatment"]) == {
        "units", "exposures", "clicks", "conversions", "ctr", "cvr", "dwell_mean",
        "clicks_per_user", "conversions_per_user", "exposures_per_user", "dwell_per_user",
    }
    assert set(report["lifts"]) == {"treatment"}
    metrics = report["lifts"]["treatment"]
    assert set(metrics) == {
        "ctr", "cvr", "dwell_mean", "clicks_per_user", "conversions_per_user", "dwell_per_user",
    }
    for m in metrics.values():
        assert set(m) == {"lift", "ci_low", "ci_high", "p_value", "significant"}
        assert all(type(m[k]) is float for k in ("lift", "ci_low", "ci_high", "p_value"))
        assert type(m["significant"]) is bool
    assert metrics["ctr"]["significant"] and metrics["clicks_per_user"]["significant"]
    assert metrics["ctr"]["lift"] == pytest.approx(0.10, abs=0.04)
    assert report["variants"]["control"]["units"] == 20_000
    assert report["variants"]["control"]["ctr"] == pytest.approx(CTR, rel=0.05)
    assert set(report["srm"]) == {"chi2", "p_value", "flagged", "observed", "expected"}
    assert report["srm"]["observed"] == {"control": 20_000, "treatment": 20_000}
    assert not report["srm"]["flagged"]
    assert isinstance(report["min_units"], int) and report["min_units"] < 20_000
    assert report["warnings"] == []


def test_compare_warns_on_tiny_samples() -> None:
    rng = np.random.default_rng(9)
    variants = {"control": users(rng, 60), "treatment": users(rng, 60)}
    report = compare(variants, "control", {"control": 0.5, "treatment": 0.5})
    text = "\n".join(report["warnings"])
    assert "'treatment' has 60 units" in text and str(report["min_units"]) in text
    assert "clicks, fewer than the minimum 100" in text
    assert "sample ratio mismatch" not in text


def test_compare_warns_on_sample_ratio_mismatch() -> None:
    rng = np.random.default_rng(10)
    variants = {"control": users(rng, 5300), "treatment": users(rng, 4700)}
    report = compare(variants, "control", {"control": 0.5, "treatment": 0.5}, min_clicks=0)
    srm = [w for w in report["warnings"] if "sample ratio mismatch" in w]
    assert len(srm) == 1
    assert "assignment" in srm[0] and "5300 vs 5000" in srm[0] and "4700 vs 5000" in srm[0]
    assert report["srm"]["flagged"]


def test_compare_unknown_control_raises() -> None:
    with pytest.raises(ValueError, match="control variant 'ctrl'"):
        compare({"control": empty()}, "ctrl", {"control": 1.0})


def test_compare_empty_variant_gives_none_not_nan() -> None:
    rng = np.random.default_rng(11)
    variants = {"control": users(rng, 500), "treatment": empty()}
    report = compare(variants, "control", {"control": 0.5, "treatment": 0.5})
    json.dumps(report, allow_nan=False)
    t = report["variants"]["treatment"]
    assert t["units"] == 0 and t["clicks"] == 0.0
    assert t["ctr"] is None and t["clicks_per_user"] is None
    for m in report["lifts"]["treatment"].values():
        assert m["lift"] is None and m["p_value"] is None and m["significant"] is False
    assert report["srm"]["flagged"]
    assert any("'treatment' has 0 clicks" in w for w in report["warnings"])
