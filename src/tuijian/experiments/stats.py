"""Statistics behind an A/B experiment report: ratio metrics, lifts, SRM and sample size.

The randomization unit is the user, so every variance here is taken over users. A user's
exposures are correlated (the same person, taste and session produce many of them), so treating
each exposure as an independent Bernoulli trial -- the per-exposure binomial variance of CTR --
understates the uncertainty and produces false positives. Metrics such as CTR are therefore
ratios of per-user sums, sum(clicks) / sum(exposures), whose variance comes from the delta method
over i.i.d. users (Deng et al., "Applying the Delta Method in Metric Analytics", KDD 2018).

Pure numpy/scipy and no I/O: the caller aggregates events into per-user arrays and serialises
the report returned by `compare`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

_RATIOS = (
    ("ctr", "clicks", "exposures"),
    ("cvr", "conversions", "clicks"),
    ("dwell_mean", "dwell_s", "dwell_n"),
)
_MEANS = (
    ("clicks_per_user", "clicks"),
    ("conversions_per_user", "conversions"),
    ("dwell_per_user", "dwell_s"),
)
_NAN = float("nan")


@dataclass(slots=True)
class UnitMetrics:
    """Per-unit (user) totals of one variant; all arrays the same length (one entry per unit)."""

    exposures: np.ndarray  # item exposures per user (float64)
    clicks: np.ndarray
    conversions: np.ndarray
    dwell_s: np.ndarray  # summed dwell seconds per user
    dwell_n: np.ndarray  # number of dwell events per user

    def __post_init__(self) -> None:
        self.exposures = np.asarray(self.exposures, dtype=np.float64)
        self.clicks = np.asarray(self.clicks, dtype=np.float64)
        self.conversions = np.asarray(self.conversions, dtype=np.float64)
        self.dwell_s = np.asarray(self.dwell_s, dtype=np.float64)
        self.dwell_n = np.asarray(self.dwell_n, dtype=np.float64)
        shapes = {a.shape for a in (self.exposures, self.clicks, self.conversions,
                                    self.dwell_s, self.dwell_n)}
        if len(shapes) != 1 or len(next(iter(shapes))) != 1:
            raise ValueError(f"UnitMetrics arrays must be 1-D and equally long, got {shapes}")

    @property
    def units(self) -> int:
        return int(self.exposures.shape[0])


@dataclass(frozen=True, slots=True)
class Estimate:
    """A point estimate, the variance of that estimate (not of a unit), and the unit count."""

    value: float
    variance: float
    n: int


@dataclass(frozen=True, slots=True)
class Lift:
    """Relative lift T/C - 1 with its normal CI and the two-sided p-value of T - C = 0."""

    lift: float
    ci_low: float
    ci_high: float
    p_value: float


@dataclass(frozen=True, slots=True)
class Srm:
    """Sample-ratio-mismatch test; `expected` holds expected unit counts per variant."""

    chi2: float
    p_value: float
    flagged: bool
    expected: dict[str, float]


def ratio_estimate(num: np.ndarray, den: np.ndarray) -> Estimate:
    """sum(num) / sum(den) over units, with its delta-method variance for i.i.d. units.

    Var(R) ~ (sx^2 - 2 R sxy + R^2 sy^2) / (n my^2). The bracket equals the sample variance of
    the residual num - R*den, which is how it is computed: one pass, and never negative from
    cancellation. Never raises: a zero denominator sum gives value nan, n < 2 variance nan.
    """
    x = np.asarray(num, dtype=np.float64)
    y = np.asarray(den, dtype=np.float64)
    n = int(x.shape[0])
    den_sum = float(y.sum()) if n else 0.0
    if den_sum == 0.0:
        return Estimate(_NAN, _NAN, n)
    r = float(x.sum()) / den_sum
    if n < 2:
        return Estimate(r, _NAN, n)
    mean_y = den_sum / n
    resid_var = float(np.var(x - r * y, ddof=1))
    return Estimate(r, resid_var / (n * mean_y * mean_y), n)


def mean_estimate(values: np.ndarray) -> Estimate:
    """Per-unit mean and its variance var/n (ddof=1); nan where undefined instead of raising."""
    v = np.asarray(values, dtype=np.float64)
    n = int(v.shape[0])
    if n == 0:
        return Estimate(_NAN, _NAN, 0)
    mean = float(v.mean())
    if n < 2:
        return Estimate(mean, _NAN, n)
    return Estimate(mean, float(np.var(v, ddof=1)) / n, n)


def _z(alpha: float) -> float:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return float(sps.norm.ppf(1.0 - alpha / 2.0))


def relative_lift(treatment: Estimate, control: Estimate, alpha: float = 0.05) -> Lift:
    """Relative lift of two independent groups, T/C - 1, with a normal CI at 1 - alpha.

    The lift's variance is the delta method on T/C: Var(T)/C^2 + T^2 Var(C)/C^4. The p-value
    tests T - C = 0 with Var(T) + Var(C), which avoids dividing by a noisy C. Undefined inputs
    (nan, no units, C = 0) give nan fields rather than exceptions, because a report with an
    empty variant must still render.
    """
    z = _z(alpha)
    t, c = treatment.value, control.value
    vt, vc = treatment.variance, control.variance
    if treatment.n == 0 or control.n == 0 or not all(map(math.isfinite, (t, c, vt, vc))):
        return Lift(_NAN, _NAN, _NAN, _NAN)
    var_diff = vt + vc
    if var_diff > 0.0:
        p = float(2.0 * sps.norm.sf(abs(t - c) / math.sqrt(var_diff)))
    else:
        # No spread at all: identical values are no evidence of a difference; unequal ones
        # come from a degenerate variance estimate, not from certainty.
        p = 1.0 if t == c else _NAN
    if c == 0.0:
        return Lift(_NAN, _NAN, _NAN, p)
    lift = t / c - 1.0
    half = z * math.sqrt(vt / c**2 + t**2 * vc / c**4)
    return Lift(lift, lift - half, lift + half, p)


def srm_check(
    observed: dict[str, int], weights: dict[str, float], threshold: float = 0.001
) -> Srm:
    """Chi-square goodness of fit of unit counts per variant against the configured split.

    A mismatch means assignment or logging drops users unevenly, which biases every metric, so
    the threshold is strict (0.001): the check runs on every report and must rarely cry wolf.
    Variants with a weight but no observed entry count as 0 units.
    """
    missing = sorted(set(observed) - set(weights))
    if missing:
        raise ValueError(f"no configured weight for variant(s) {missing}")
    if any(w < 0 for w in weights.values()):
        raise ValueError(f"weights must be non-negative, got {weights}")
    names = list(dict.fromkeys([*observed, *weights]))
    w = np.array([float(weights[k]) for k in names])
    if w.sum() <= 0:
        raise ValueError("weights must not all be zero")
    obs = np.array([float(observed.get(k, 0)) for k in names])
    total = float(obs.sum())
    exp = w / w.sum() * total
    expected = {k: float(e) for k, e in zip(names, exp, strict=True)}
    if len(names) < 2 or total == 0.0:
        return Srm(0.0, 1.0, False, expected)
    zero = exp == 0.0
    if np.any(obs[zero] > 0):
        # Units in a variant configured at weight 0: certain mismatch; chisquare would divide by 0.
        return Srm(math.inf, 0.0, True, expected)
    if np.count_nonzero(~zero) < 2:
        return Srm(0.0, 1.0, False, expected)
    chi2, p = sps.chisquare(obs[~zero], exp[~zero])
    return Srm(float(chi2), float(p), bool(p < threshold), expected)


def min_units(
    control: UnitMetrics, mde: float = 0.05, alpha: float = 0.05, power: float = 0.8
) -> int | None:
    """Units per variant to detect a relative CTR lift of `mde` at `power`, two-sided `alpha`.

    n = 2 s^2 (z_{1-alpha/2} + z_power)^2 / (mde * CTR)^2 with s^2 = n Var(R), the per-user
    delta-method variance from the control, assumed equal in both arms. None when the control
    cannot give it (no exposures, fewer than 2 users, zero CTR or zero variance).
    """
    if mde <= 0:
        raise ValueError(f"mde must be positive, got {mde}")
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be in (0, 1), got {power}")
    est = ratio_estimate(control.clicks, control.exposures)
    unit_var = est.n * est.variance
    if not (math.isfinite(est.value) and math.isfinite(unit_var)) or est.value <= 0:
        return None
    if unit_var <= 0:
        return None
    z_sum = _z(alpha) + float(sps.norm.ppf(power))
    return max(2, math.ceil(2.0 * unit_var * z_sum**2 / (mde * est.value) ** 2))


def _num(x: float) -> float | None:
    """A plain Python float, or None where JSON has no number (nan, inf)."""
    x = float(x)
    return x if math.isfinite(x) else None


def _summary(m: UnitMetrics) -> dict[str, Any]:
    out: dict[str, Any] = {"units": m.units}
    for field in ("exposures", "clicks", "conversions"):
        out[field] = round(float(getattr(m, field).sum()))  # counts, whole numbers
    for metric, num, den in _RATIOS:
        out[metric] = _num(ratio_estimate(getattr(m, num), getattr(m, den)).value)
    for metric, field in (*_MEANS, ("exposures_per_user", "exposures")):
        out[metric] = _num(mean_estimate(getattr(m, field)).value)
    return out


def _lifts(t: UnitMetrics, c: UnitMetrics, alpha: float) -> dict[str, dict[str, Any]]:
    pairs: list[tuple[str, Estimate, Estimate]] = [
        (metric, ratio_estimate(getattr(t, num), getattr(t, den)),
         ratio_estimate(getattr(c, num), getattr(c, den)))
        for metric, num, den in _RATIOS
    ]
    pairs += [
        (metric, mean_estimate(getattr(t, field)), mean_estimate(getattr(c, field)))
        for metric, field in _MEANS
    ]
    out: dict[str, dict[str, Any]] = {}
    for metric, te, ce in pairs:
        lift = relative_lift(te, ce, alpha)
        out[metric] = {
            "lift": _num(lift.lift),
            "ci_low": _num(lift.ci_low),
            "ci_high": _num(lift.ci_high),
            "p_value": _num(lift.p_value),
            "significant": bool(lift.p_value < alpha),  # nan compares False
        }
    return out


def compare(
    variants: dict[str, UnitMetrics],
    control: str,
    weights: dict[str, float],
    *,
    alpha: float = 0.05,
    mde: float = 0.05,
    min_clicks: int = 100,
) -> dict[str, Any]:
    """The JSON-ready body of an experiment report: per-variant totals, lifts, SRM, warnings.

    Every float is a plain Python float and every nan/inf is None, so the result serialises
    with any strict JSON encoder. Warnings flag the two ways a report misleads: broken
    assignment (SRM) and samples too small for the lifts to mean anything.
    """
    if control not in variants:
        raise ValueError(f"control variant {control!r} not among variants {sorted(variants)}")
    observed = {name: m.units for name, m in variants.items()}
    srm = srm_check(observed, weights)
    needed = min_units(variants[control], mde=mde, alpha=alpha)
    summaries = {name: _summary(m) for name, m in variants.items()}

    warnings: list[str] = []
    if srm.flagged:
        detail = ", ".join(
            f"{k}: {observed.get(k, 0)} vs {srm.expected[k]:.0f}" for k in srm.expected
        )
        warnings.append(
            f"sample ratio mismatch (chi2={srm.chi2:.1f}, p={srm.p_value:.2g}): assignment or "
            f"logging may be broken, results are not trustworthy; observed vs expected units: "
            f"{detail}"
        )
    if needed is None:
        warnings.append(
            f"minimum sample size cannot be estimated from control {control!r} "
            "(no exposures, no clicks or fewer than 2 users)"
        )
    for name, m in variants.items():
        clicks = summaries[name]["clicks"]
        if needed is not None and m.units < needed:
            warnings.append(
                f"variant {name!r} has {m.units} units, fewer than the {needed} needed per "
                f"variant to detect a {mde:.0%} CTR lift"
            )
        if clicks < min_clicks:
            warnings.append(
                f"variant {name!r} has {clicks:.0f} clicks, fewer than the minimum {min_clicks}"
            )

    return {
        "control": control,
        "variants": summaries,
        "lifts": {
            name: _lifts(m, variants[control], alpha)
            for name, m in variants.items()
            if name != control
        },
        "srm": {
            "chi2": _num(srm.chi2),
            "p_value": _num(srm.p_value),
            "flagged": srm.flagged,
            "observed": observed,
            "expected": {k: _num(v) for k, v in srm.expected.items()},
        },
        "min_units": needed,
        "warnings": warnings,
    }
