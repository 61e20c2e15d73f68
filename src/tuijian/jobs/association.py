"""Association rules: items co-clicked within users' recent sessions, time-decayed.

For every pair of items clicked by one user within one session (clicks no further apart than
`session_gap_s`), the pair's support grows by 2^(-age / half_life) of the later click, so last
week's co-clicks outweigh last quarter's. A pair's score is its support over the geometric mean
of the two items' own decayed click mass (a cosine on decayed co-occurrence), kept when the
support clears `min_support`; each item keeps its top `k` partners. All in one query, on
whichever engine runs it.
"""

from __future__ import annotations

from tuijian.jobs.artifacts import Artifact
from tuijian.jobs.base import JobContext

DEFAULTS = {"window_days": 30.0, "session_gap_s": 86_400.0, "half_life_days": 7.0,
            "min_support": 0.5, "k": 50, "max_user_clicks": 200}


def association_sql(now: float, p: dict[str, float]) -> str:
    since = now - p["window_days"] * 86_400
    half_life = p["half_life_days"] * 86_400
    return f"""
    WITH c AS (
        SELECT DISTINCT user_id, item_id, ts FROM events
        WHERE type = 'click' AND ts >= {since} AND ts <= {now}),
    g AS (
        SELECT *, CASE WHEN ts - lag(ts) OVER (PARTITION BY user_id ORDER BY ts)
                  > {p["session_gap_s"]} THEN 1 ELSE 0 END AS new_session FROM c),
    s AS (
        SELECT *, sum(new_session) OVER (PARTITION BY user_id ORDER BY ts) AS sid,
               row_number() OVER (PARTITION BY user_id ORDER BY ts DESC, item_id) AS recency
        FROM g),
    recent AS (SELECT * FROM s WHERE recency <= {int(p["max_user_clicks"])}),
    mass AS (
        SELECT item_id, sum(pow(2.0, -({now} - ts) / {half_life})) AS m FROM recent
        GROUP BY item_id),
    pairs AS (
        SELECT a.item_id AS i, b.item_id AS j,
               sum(pow(2.0, -({now} - greatest(a.ts, b.ts)) / {half_life})) AS support
        FROM recent a JOIN recent b
          ON a.user_id = b.user_id AND a.sid = b.sid AND a.item_id <> b.item_id
        GROUP BY a.item_id, b.item_id),
    scored AS (
        SELECT i AS item_id, j AS neighbor_id, support, support / sqrt(mi.m * mj.m) AS score
        FROM pairs JOIN mass mi ON mi.item_id = i JOIN mass mj ON mj.item_id = j
        WHERE support >= {p["min_support"]}),
    ranked AS (
        SELECT *, row_number() OVER (PARTITION BY item_id ORDER BY score DESC, neighbor_id)
                  AS r FROM scored)
    SELECT item_id, neighbor_id, support, score FROM ranked WHERE r <= {int(p["k"])}
    ORDER BY item_id, score DESC, neighbor_id
    """


class AssociationJob:
    name = "association"

    def run(self, ctx: JobContext) -> Artifact:
        p = {**DEFAULTS, **ctx.params}
        ctx.progress("co-clicks", 0.1)
        table = ctx.engine.table(association_sql(ctx.now, p))
        ctx.progress("publish", 0.9)
        items = len(set(table.column("item_id").to_pylist())) if table.num_rows else 0
        return ctx.artifacts.write(self.name, {"neighbors": table},
                                   {"params": p, "pairs": table.num_rows, "items": items,
                                    "now": ctx.now})
