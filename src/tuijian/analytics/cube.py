"""The effect-data cube, declared once: its dimensions, its measures, and the SQL that turns
the event log into facts.

Every report, rollup, minute bucket and dashboard chart is computed from these declarations,
so adding a dimension is one line here. A fact is one event with its dimensions resolved
(the item's line and city from the catalog, each layer's experiment from the experiment
configuration); a measure is an aggregate over facts. Additive measures can be summed across
cells and minutes (rollups, the real-time buckets); the others (unique users, median dwell)
are computed exactly from the facts of the cell they describe.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from tuijian.data.vocab import CITY_NAMES, CONVERT_SUBTYPES, LINES
from tuijian.experiments.model import LAUNCH, STAGES
from tuijian.jobs.engine import DUCKDB, Dialect

# the business day starts at local midnight: dates and hours are in this UTC offset
UTC_OFFSET_H = 8
LOCAL_TZ = dt.timezone(dt.timedelta(hours=UTC_OFFSET_H))


def local_date(ts: float) -> dt.date:
    return dt.datetime.fromtimestamp(ts, LOCAL_TZ).date()


def last_closed_day(now: float) -> dt.date:
    """Yesterday, in the cube's time zone: the last whole business day."""
    return local_date(now) - dt.timedelta(days=1)


def day_bounds(day: dt.date) -> tuple[float, float]:
    """[local midnight, next local midnight) of a date, in unix seconds."""
    start = dt.datetime.combine(day, dt.time(), LOCAL_TZ).timestamp()
    return start, start + 86400


@dataclass(frozen=True, slots=True)
class Dimension:
    name: str
    sql: str  # an expression over the `ev` relation (the event log joined to `items`)
    description: str


@dataclass(frozen=True, slots=True)
class Measure:
    """An aggregate over facts. A non-additive one says how a minute bucket keeps it
    (`bucket_sql`, over facts) and how buckets combine (`merge_sql`, over bucket rows), so the
    real-time numbers are the offline ones exactly."""

    name: str
    sql: str
    description: str
    bucket_sql: str | None = None  # None: additive (kept as `sql`, combined by sum)
    merge_sql: str | None = None

    @property
    def additive(self) -> bool:
        return self.bucket_sql is None


def _names(codes: tuple[str, ...], column: str) -> str:
    """SQL: a code column → its name (a CASE, which every engine spells the same)."""
    whens = " ".join(f"WHEN {i} THEN '" + c.replace("'", "''") + "'"
                     for i, c in enumerate(codes))
    return f"CASE {column} {whens} END"


# local wall time from epoch seconds by arithmetic, which every engine spells the same
_LOCAL_S = f"(ev.ts + {UTC_OFFSET_H * 3600})"

DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("date", f"DATE '1970-01-01' + CAST(floor({_LOCAL_S} / 86400) AS INTEGER)",
              f"local date (UTC+{UTC_OFFSET_H})"),
    Dimension("hour", f"CAST(floor({_LOCAL_S} / 3600) AS BIGINT) % 24",
              "local hour of day, 0-23"),
    Dimension("line", _names(LINES, "items.line"), "the item's business line"),
    Dimension("platform", "ev.platform", "client platform: android, ios, web, m"),
    Dimension("slot", "coalesce(ev.slot, ev.scene)", "the client placement (else the scene)"),
    Dimension("scene", "ev.scene", "the scene"),
    Dimension("recall_id", "ev.recall_id", "recall strategy id"),
    Dimension("source", "ev.source", "the recall source that placed the item"),
    Dimension("rank_id", "ev.rank_id", "rank strategy id"),
    Dimension("rule_id", "ev.rule_id", "rule strategy id"),
    Dimension("display_id", "ev.display_id", "display strategy id"),
    Dimension("creative", "ev.creative", "the photo shown"),
    Dimension("city", _names(CITY_NAMES, "items.city"), "the item's city"),
    *(Dimension(f"exp_{layer}", f"ev.exp_{layer}", f"experiment:variant in the {layer} layer")
      for layer in (*STAGES, LAUNCH)),
)
DIMENSION = {d.name: d for d in DIMENSIONS}

_SUBTYPES = tuple(
    Measure(f"conversions_{s}", f"count(*) FILTER (WHERE type = 'convert' AND subtype = '{s}')",
            f"conversions by {s}") for s in CONVERT_SUBTYPES)
MEASURES: tuple[Measure, ...] = (
    Measure("exposures", "count(*) FILTER (WHERE type = 'exposure')", "items shown"),
    Measure("lists", "count(*) FILTER (WHERE type = 'exposure' AND position = 0)",
            "lists shown (counted at their first item)"),
    Measure("clicks", "count(*) FILTER (WHERE type = 'click')", "clicks"),
    Measure("conversions", "count(*) FILTER (WHERE type = 'convert')", "conversions"),
    *_SUBTYPES,
    # whole milliseconds: integer sums are the same in whatever order they are added
    Measure("dwell_ms", "coalesce(sum(CAST(round(dwell_s * 1000) AS BIGINT)) "
                        "FILTER (WHERE type = 'dwell'), 0)", "milliseconds of dwell"),
    Measure("dwell_n", "count(*) FILTER (WHERE type = 'dwell')", "dwell events"),
    # the click model's predictions on the exposures it ranked, in millionths: the
    # calibration alarm compares predicted with observed clicks
    Measure("pctr_n", "count(pctr) FILTER (WHERE type = 'exposure')",
            "exposures with a logged click prediction"),
    Measure("pctr_micros", "coalesce(sum(CAST(round(pctr * 1e6) AS BIGINT)) "
                           "FILTER (WHERE type = 'exposure'), 0)", "predicted clicks × 10⁶"),
    Measure("pctr_var_micros", "coalesce(sum(CAST(round(pctr * (1 - pctr) * 1e6) AS BIGINT)) "
                               "FILTER (WHERE type = 'exposure'), 0)",
            "variance of the predicted clicks × 10⁶"),
    Measure("users", "count(DISTINCT user_id)", "unique users",
            "list(DISTINCT user_id)", "len(list_distinct(flatten(list(users))))"),
    Measure("dwell_p50", "median(dwell_s) FILTER (WHERE type = 'dwell')",
            "median dwell seconds",
            "coalesce(list(dwell_s) FILTER (WHERE type = 'dwell'), [])",
            "list_aggregate(flatten(list(dwell_p50)), 'median')"),
)
MEASURE = {m.name: m for m in MEASURES}
# derived after aggregation: integer measures back in their units, then ratios
SCALED: tuple[tuple[str, str, float], ...] = (
    ("dwell_sum", "dwell_ms", 1000.0),
    ("predicted_clicks", "pctr_micros", 1e6),
    ("predicted_var", "pctr_var_micros", 1e6),
)
RATIOS: tuple[tuple[str, str, str], ...] = (
    ("ctr", "clicks", "exposures"),
    ("cvr", "conversions", "clicks"),
    ("dwell_mean", "dwell_sum", "dwell_n"),
    ("pctr_mean", "predicted_clicks", "pctr_n"),
)


def facts_sql(events_sql: str, items_sql: str, experiment_layers: Mapping[int, str],
              dialect: Dialect = DUCKDB) -> str:
    """One row per event: its timestamp, every dimension, and the columns measures read.

    `items_sql` is a relation (item_id, line, city) with codes; `experiment_layers` maps an
    experiment id to its layer, so each layer's tag (`id:variant`) becomes its own column."""
    tags = ",\n".join(f"{_layer_tag(experiment_layers, layer, dialect)} AS exp_{layer}"
                       for layer in (*STAGES, LAUNCH))
    dims = ",\n".join(f"{d.sql} AS {d.name}" for d in DIMENSIONS)
    return f"""
        WITH ev AS (SELECT *, {tags} FROM {events_sql})
        SELECT ev.ts, ev.type, ev.subtype, ev.dwell_s, ev.user_id, ev.position, ev.pctr,
               {dims}
        FROM ev LEFT JOIN ({items_sql}) AS items USING (item_id)"""


def _layer_tag(experiment_layers: Mapping[int, str], layer: str, dialect: Dialect) -> str:
    ids = ", ".join(f"'{i}'" for i, name in experiment_layers.items() if name == layer)
    if not ids:
        return "CAST(NULL AS STRING)"
    return dialect.first("experiments", "t", f"split_part(t, ':', 1) IN ({ids})")


def facts_version() -> str:
    """Changes whenever the facts' SQL does: a cube stored by another version is not read."""
    return hashlib.sha256(facts_sql("events", "items", {}).encode()).hexdigest()[:12]


def check_dims(names: list[str], where: str = "dims") -> None:
    unknown = [n for n in names if n not in DIMENSION]
    if unknown:
        raise ValueError(f"{where}: unknown dimension {unknown[0]!r} "
                         f"(known: {', '.join(DIMENSION)})")
