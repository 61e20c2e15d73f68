"""Tracking alarms: the checks that catch broken logging and broken strategies from effect data.

Five checks, each a pure function of aggregated numbers, so the real-time monitor
(`analytics/monitor.py`, over the minute buckets) and the daily check (`check_day`, over the
cube and the event log) judge with the same code:

- orphan clicks: clicks whose list was never logged as shown (a client or the exposure writer
  dropping exposures makes every CTR wrong);
- invalid tracking: events quarantined because their tracking param is missing, forged or
  does not match, as a share of the client events;
- platform CTR: one platform's CTR in a slot far below the other platforms' in the same slot
  (how 58.com found an iPhone detail-page bug);
- silent source: a recall source that placed its usual share of items before and nothing now;
- model drift: a click model whose predictions on what was shown (at the positions shown) no
  longer add up to the clicks observed (COPC, clicks over predicted clicks).

Each alarm needs both a large effect and enough data that chance cannot explain it (a Poisson
or normal tail below `p_max`), so a clean log of any size raises none.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import duckdb
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats

from tuijian.analytics.cube import LOCAL_TZ, day_bounds
from tuijian.analytics.funnel import FunnelQuery, Query, Rows

ALARMS = ("orphan_clicks", "invalid_tracking", "platform_ctr", "silent_source", "model_drift")


@dataclass(frozen=True, slots=True)
class Alarm:
    alarm: str  # one of ALARMS
    key: str  # what it is about: a platform, a reason code, "slot/platform", a source, a rank id
    severity: str  # "warning" or "critical"
    message: str
    value: float  # the measured figure the threshold is about
    threshold: float
    scope: str = "daily"  # "stream" or "daily"
    since: float = 0.0  # unix s: the window's start, or when the stream first raised it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Thresholds(BaseModel):
    """When an alarm fires; the stream's windows. Defaults suit a marketplace's traffic."""

    model_config = ConfigDict(extra="forbid")

    p_max: float = Field(1e-4, gt=0, lt=1)  # what chance alone may explain
    orphan_rate: float = Field(0.01, gt=0, le=1)
    orphan_min: int = Field(10, ge=1)
    invalid_rate: float = Field(0.01, gt=0, le=1)
    invalid_min: int = Field(10, ge=1)
    platform_ratio: float = Field(0.5, gt=0, lt=1)  # platform CTR below this × the others'
    platform_min_expected: float = Field(10.0, gt=0)  # clicks expected at the others' rate
    source_min_expected: float = Field(20.0, gt=0)  # items the source would have placed
    drift_ratio: float = Field(1.5, gt=1)  # clicks / predicted clicks outside [1/x, x]
    drift_min_predicted: float = Field(30.0, gt=0)
    drift_min_coverage: float = Field(0.9, gt=0, le=1)  # exposures carrying a prediction
    # the stream: CTR checks read [now - lag - window, now - lag): clicks trail exposures
    window_s: float = Field(3600.0, gt=0)
    lag_s: float = Field(600.0, ge=0)
    baseline_s: float = Field(86400.0, gt=0)  # what "usual" means for a source
    silence_s: float = Field(1800.0, gt=0)  # how long a source must stay silent
    grace_s: float = Field(120.0, ge=0)  # how late an exposure may be logged after its click


def _poisson_low(observed: float, expected: float) -> float:
    """P(X <= observed) for X ~ Poisson(expected): how likely so few by chance."""
    return float(stats.poisson.cdf(observed, expected))


# -- the checks -------------------------------------------------------------------------------


def orphan_clicks(rows: Iterable[tuple[str | None, int, int]], t: Thresholds) -> list[Alarm]:
    """`rows`: (platform, clicks, clicks whose list has no logged exposure)."""
    out = []
    for platform, clicks, orphans in rows:
        rate = orphans / clicks if clicks else 0.0
        if orphans >= t.orphan_min and rate >= t.orphan_rate:
            out.append(Alarm(
                "orphan_clicks", platform or "(none)", "critical" if rate >= 0.1 else "warning",
                f"{orphans:,} of {clicks:,} clicks ({rate:.1%}) on {platform or 'no platform'} "
                "have no logged exposure: exposures are being lost", rate, t.orphan_rate))
    return out


def invalid_tracking(quarantined: Mapping[str, int], accepted: int,
                     t: Thresholds) -> list[Alarm]:
    """`quarantined`: count per reason code; `accepted`: client events stored in the window."""
    total = accepted + sum(quarantined.values())
    out = []
    for code, n in sorted(quarantined.items()):
        rate = n / total if total else 0.0
        if n >= t.invalid_min and rate >= t.invalid_rate:
            out.append(Alarm(
                "invalid_tracking", code, "critical" if rate >= 0.1 else "warning",
                f"{n:,} events ({rate:.1%} of client events) quarantined for {code}",
                rate, t.invalid_rate))
    return out


def platform_ctr(rows: Rows, t: Thresholds) -> list[Alarm]:
    """`rows`: funnel rows by slot and platform."""
    by_slot: dict[Any, Rows] = {}
    for r in rows:
        if r.get("platform") is not None:
            by_slot.setdefault(r.get("slot"), []).append(r)
    out = []
    for slot, cells in sorted(by_slot.items(), key=lambda kv: str(kv[0])):
        for cell in cells:
            others = [c for c in cells if c is not cell]
            exp_o = sum(c["exposures"] for c in others)
            clicks_o = sum(c["clicks"] for c in others)
            if not exp_o or not clicks_o:
                continue
            ctr_o = clicks_o / exp_o
            expected = cell["exposures"] * ctr_o
            ratio = cell["clicks"] / expected if expected else 1.0
            if (expected >= t.platform_min_expected and ratio < t.platform_ratio
                    and _poisson_low(cell["clicks"], expected) < t.p_max):
                out.append(Alarm(
                    "platform_ctr", f"{slot}/{cell['platform']}",
                    "critical" if ratio < 0.2 else "warning",
                    f"CTR on {cell['platform']} in slot {slot} is {cell['ctr']:.2%}, "
                    f"{ratio:.0%} of the other platforms' {ctr_o:.2%} "
                    f"({cell['clicks']:,} clicks where {expected:.0f} were expected)",
                    ratio, t.platform_ratio))
    return out


def silent_sources(baseline: Rows, recent: Rows, t: Thresholds, since: float = 0.0
                   ) -> list[Alarm]:
    """`baseline`, `recent`: funnel rows by scene and source over a usual period and the
    period checked. A source's usual share is taken within each scene, so a source serving
    one scene is not "silent" while that scene has no traffic."""
    def totals(rows: Rows) -> Counter[Any]:
        c: Counter[Any] = Counter()
        for r in rows:
            c[r["scene"]] += r["exposures"]
        return c

    base_total, now_total = totals(baseline), totals(recent)
    now = {(r["scene"], r["source"]): r["exposures"] for r in recent}
    out: dict[str, Alarm] = {}
    for r in sorted(baseline, key=lambda r: -r["exposures"]):
        scene, source = r["scene"], r["source"]
        if source is None or source in out:
            continue
        share = r["exposures"] / base_total[scene]
        expected = now_total[scene] * share
        if now.get((scene, source), 0) == 0 and expected >= t.source_min_expected:
            out[source] = Alarm(
                "silent_source", source, "critical",
                f"recall source {source} placed no item in {scene} where about "
                f"{expected:.0f} were expected ({share:.1%} of its exposures before)",
                0.0, t.source_min_expected, since=since)
    return list(out.values())


def model_drift(rows: Rows, t: Thresholds) -> list[Alarm]:
    """`rows`: funnel rows by rank_id with the click model's logged predictions."""
    out = []
    for r in rows:
        n, exposures = r.get("pctr_n") or 0, r["exposures"]
        if not n or n < t.drift_min_coverage * exposures:
            continue  # no click model ranked (most of) these lists
        predicted = r["predicted_clicks"] * exposures / n  # over every exposure of the rank id
        if predicted < t.drift_min_predicted:
            continue
        copc = r["clicks"] / predicted
        sd = math.sqrt(max(r["predicted_var"] * exposures / n, 1e-9))
        p = 2 * float(stats.norm.sf(abs(r["clicks"] - predicted) / sd))
        if (copc > t.drift_ratio or copc < 1 / t.drift_ratio) and p < t.p_max:
            out.append(Alarm(
                "model_drift", str(r["rank_id"]),
                "critical" if copc > 2 * t.drift_ratio or copc < 0.5 / t.drift_ratio
                else "warning",
                f"rank {r['rank_id']}: {r['clicks']:,} clicks where its click model predicted "
                f"{predicted:.0f} (clicks / predicted = {copc:.2f}; mean prediction "
                f"{r['pctr_mean']:.2%}, observed CTR {r['ctr']:.2%})", copc, t.drift_ratio))
    return out


# -- the daily check --------------------------------------------------------------------------


def orphan_rows(con: duckdb.DuckDBPyConnection, events_sql: str, start: float,
                end: float) -> list[tuple[str | None, int, int]]:
    """Clicks in [start, end) per platform, and those whose list has no exposure logged
    within the day before the click and the hour after it."""
    sql = f"""
        WITH ev AS (SELECT * FROM {events_sql}),
        clicks AS (SELECT platform, exposure_id FROM ev
                   WHERE type = 'click' AND ts >= {start!r} AND ts < {end!r}),
        shown AS (SELECT DISTINCT exposure_id FROM ev WHERE type = 'exposure'
                  AND ts >= {start - 86400!r} AND ts < {end + 3600!r})
        SELECT c.platform, count(*), count(*) FILTER (WHERE s.exposure_id IS NULL)
        FROM clicks c LEFT JOIN shown s ON c.exposure_id = s.exposure_id
        GROUP BY c.platform ORDER BY c.platform"""
    return [(p, int(c), int(o)) for p, c, o in con.sql(sql).fetchall()]


def quarantine_counts(con: duckdb.DuckDBPyConnection, events_sql: str, quarantine_sql: str,
                      start: float, end: float) -> tuple[dict[str, int], int]:
    """Quarantined events per reason code in [start, end) (by arrival), and the client events
    (every type but the server-logged exposures) accepted in it."""
    q = con.sql(f"""SELECT coalesce(code, 'unknown'), count(*) FROM {quarantine_sql}
                    WHERE quarantined_at >= {start!r} AND quarantined_at < {end!r}
                    GROUP BY 1""").fetchall()
    (accepted,), = con.sql(f"""SELECT count(*) FROM {events_sql} WHERE type <> 'exposure'
                              AND ts >= {start!r} AND ts < {end!r}""").fetchall()
    return {str(c): int(n) for c, n in q}, int(accepted)


def check_day(query: Query, events_sql: str, quarantine_sql: str, day: dt.date,
              t: Thresholds | None = None) -> list[Alarm]:
    """Every check over one local day. Sources are checked hour by hour against the 24 hours
    before each hour, so a source that died at 15:00 is caught although the day has its
    morning's items."""
    t = t or Thresholds()
    start, end = day_bounds(day)
    con = duckdb.connect(config={"threads": 1})  # a background check: serving keeps a core
    try:
        alarms = orphan_clicks(orphan_rows(con, events_sql, start, end), t)
        alarms += invalid_tracking(*quarantine_counts(con, events_sql, quarantine_sql,
                                                      start, end), t)
    finally:
        con.close()
    alarms += platform_ctr(query(FunnelQuery(["slot", "platform"], start=start, end=end)), t)
    alarms += model_drift(query(FunnelQuery(["rank_id"], start=start, end=end)), t)
    alarms += _silent_hours(query(FunnelQuery(["date", "hour", "scene", "source"],
                                              start=start - 86400, end=end)), start, t)
    return [replace(a, since=a.since or start) for a in alarms]


def _silent_hours(rows: Rows, start: float, t: Thresholds) -> list[Alarm]:
    """The first silent hour of each source in the day (rows by date, hour, source over the
    day and the 24 hours before it)."""
    def hour_start(r: dict[str, Any]) -> float:
        d = dt.date.fromisoformat(r["date"]) if isinstance(r["date"], str) else r["date"]
        return dt.datetime.combine(d, dt.time(int(r["hour"])), LOCAL_TZ).timestamp()

    by_hour: dict[float, Rows] = {}
    for r in rows:
        by_hour.setdefault(hour_start(r), []).append(r)
    found: dict[str, Alarm] = {}
    for h in range(24):
        at = start + h * 3600
        base: Counter[tuple[Any, Any]] = Counter()
        for hs, hour_rows in by_hour.items():
            if at - 86400 <= hs < at:
                for r in hour_rows:
                    base[(r["scene"], r["source"])] += r["exposures"]
        baseline = [{"scene": sc, "source": so, "exposures": n}
                    for (sc, so), n in base.items()]
        for a in silent_sources(baseline, by_hour.get(at, []), t, since=at):
            found.setdefault(a.key, a)
    return list(found.values())
