"""An experiment's report: the event log folded into per-user totals per variant, then the
statistics of `stats.compare` (lifts with delta-method intervals, SRM, sample size).

Events carry their request's assignment (`experiments`: `ID:variant` per layer, copied from
the verified tracking param), so a click counts for the variant its list was served by even if
the user has moved since. Units forced in by a whitelist (`!`) are left out: testers are not
a random sample. A unit seen in more than one variant (traffic weights changed mid-flight) is
left out too and counted, since it belongs to neither arm cleanly.
"""

from __future__ import annotations

from typing import Any

import duckdb
import numpy as np

from tuijian.experiments.model import Experiment
from tuijian.experiments.stats import UnitMetrics, compare

_COLUMNS = ("exposures", "clicks", "conversions", "dwell_s", "dwell_n")


def per_unit(events_sql: str, experiment_id: int) -> dict[str, dict[str, np.ndarray]]:
    """variant -> {user_id, exposures, clicks, conversions, dwell_s, dwell_n} arrays."""
    prefix = f"{int(experiment_id)}:"  # an int: safe to inline
    sql = f"""
        WITH tagged AS (
            SELECT user_id, type, dwell_s,
                   list_filter(experiments, lambda x: starts_with(x, '{prefix}'))[1] AS tag
            FROM {events_sql} WHERE experiments IS NOT NULL)
        SELECT substr(tag, {len(prefix) + 1}) AS variant, user_id,
               count(*) FILTER (WHERE type = 'exposure') AS exposures,
               count(*) FILTER (WHERE type = 'click') AS clicks,
               count(*) FILTER (WHERE type = 'convert') AS conversions,
               coalesce(sum(dwell_s) FILTER (WHERE type = 'dwell'), 0) AS dwell_s,
               count(*) FILTER (WHERE type = 'dwell') AS dwell_n
        FROM tagged WHERE tag IS NOT NULL AND NOT ends_with(tag, '!')
        GROUP BY ALL ORDER BY variant, user_id"""
    table = duckdb.connect().sql(sql).to_arrow_table()
    variants = table.column("variant").to_numpy(zero_copy_only=False)
    out: dict[str, dict[str, np.ndarray]] = {}
    for v in np.unique(variants):
        rows = np.flatnonzero(variants == v)
        out[str(v)] = {c: table.column(c).to_numpy(zero_copy_only=False)[rows]
                       for c in ("user_id", *_COLUMNS)}
    return out


def experiment_report(events_sql: str, exp: Experiment, *, alpha: float = 0.05,
                      mde: float = 0.05) -> dict[str, Any]:
    data = per_unit(events_sql, exp.id)
    seen: dict[str, int] = {}
    for arrays in data.values():
        for u in arrays["user_id"].tolist():
            seen[u] = seen.get(u, 0) + 1
    crossed = {u for u, n in seen.items() if n > 1}
    variants: dict[str, UnitMetrics] = {}
    for v in exp.variants:
        cols = data.get(v.name)
        if cols is None:
            variants[v.name] = UnitMetrics(*(np.zeros(0) for _ in _COLUMNS))
            continue
        keep = np.array([u not in crossed for u in cols["user_id"].tolist()], dtype=bool)
        variants[v.name] = UnitMetrics(*(cols[c][keep] for c in _COLUMNS))
    body = compare(variants, exp.control, {v.name: v.weight for v in exp.variants},
                   alpha=alpha, mde=mde)
    if crossed:
        body["warnings"].append(f"{len(crossed)} units were served by more than one variant "
                                "(traffic weights changed?) and are left out")
    return {
        "experiment": {"id": exp.id, "name": exp.name, "layer": exp.layer,
                       "status": exp.status, "scenes": [s.value for s in exp.scenes],
                       "version": exp.version,
                       "variants": [v.model_dump() for v in exp.variants]},
        "crossover_units": len(crossed), "alpha": alpha, "mde": mde, **body,
    }
