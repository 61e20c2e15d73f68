"""Server-rendered pages: the home page and a demo view of one user's recommendations.

Plain HTML with escaped values and no scripts: these pages exist so a new user can see the
service work without a client, not as the product's UI.
"""

from __future__ import annotations

import html
import time
from typing import Any

from tuijian.data import vocab
from tuijian.domain import RecommendRequest, Scene
from tuijian.serving.service import Service

_STYLE = """<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3rem .6rem}
th{background:#f4f4f4;text-align:left}</style>"""
_CODES = {
    "line": vocab.LINES, "category": vocab.CATEGORIES, "city": vocab.CITY_NAMES,
    "brand": vocab.BRANDS, "series": vocab.SERIES, "salary_band": vocab.SALARY_BANDS,
    "job_type": vocab.JOB_TYPES,
}


def item_public(record: dict[str, Any]) -> dict[str, Any]:
    """A stored item with its codes spelled out as the names the API accepts."""
    out = dict(record)
    for name, names in _CODES.items():
        code = out.get(name)
        out[name] = names[code] if code is not None else None
    d = out.get("district")
    out["district"] = vocab.DISTRICTS[d][1] if d is not None else None
    out.pop("content_key", None)
    return out


def profile_public(service: Service, user_id: str) -> dict[str, Any]:
    """A user's profile as the pipeline sees it: location, recent clicks, interest tags."""
    prof = service.profiles.peek(user_id)
    names = {**_CODES, "district": tuple(d for _, d in vocab.DISTRICTS),
             "price_band": ("lowest", "low", "middle", "high", "highest")}
    item_ids = service.store.column("item_id")
    return {
        "user_id": prof.user_id,
        "known": prof.known,
        "city": vocab.CITY_NAMES[prof.city] if prof.city >= 0 else None,
        "district": vocab.DISTRICTS[prof.district][1] if prof.district >= 0 else None,
        "recent_clicks": [int(item_ids[i]) for i in prof.recent_clicks],
        "shown": len(prof.shown),
        "interests": {
            field: [{"value": names[field][k], "weight": round(w, 3)}
                    for k, w in sorted(tags.items(), key=lambda kv: -kv[1])]
            for field, tags in prof.interests.items()
        },
    }


def home(service: Service) -> str:
    stats = {
        "items": len(service.store),
        "users with behavior": len(service.profiles.active_users()),
        "events logged": len(service.log),
        "events quarantined": service.log.quarantine_count(),
    }
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{v:,}</td></tr>" for k, v in stats.items())
    links = [
        ("/dashboard", "Dashboard: funnels, trends, comparisons, sources, alarms"),
        ("/experiments", "Experiments: A/B tests, traffic, reports"),
        ("/docs", "API documentation (OpenAPI, try requests)"),
        ("/demo?user_id=u1&scene=guess_you_like", "Demo: guess-you-like for user u1"),
        ("/demo?user_id=u2&scene=feed", "Demo: feed for user u2"),
        ("/metrics", "Prometheus metrics (per-stage latency, events)"),
        ("/healthz", "Health check"),
    ]
    items = "".join(f'<li><a href="{h}">{html.escape(t)}</a></li>' for h, t in links)
    return (f"<!doctype html><html><head><title>Tuijian</title>{_STYLE}</head><body>"
            f"<h1>Tuijian 推荐</h1><p>Recommendation service: recall → rank → rules → display."
            f"</p><table>{rows}</table><h2>Pages</h2><ul>{items}</ul></body></html>")


async def demo(service: Service, user_id: str, scene: str) -> str:
    try:
        sc = Scene(scene)
    except ValueError:
        sc = Scene.GUESS_YOU_LIKE
    if sc == Scene.DETAIL_RELATED:
        sc = Scene.GUESS_YOU_LIKE
    req = RecommendRequest(scene=sc, user_id=user_id[:128], n=20, now=time.time())
    rec = await service.pipeline.recommend(req, log_exposures=False)
    head = "<tr><th>#</th><th>item</th><th>title</th><th>city</th><th>source</th>" \
           "<th>score</th></tr>"
    rows = "".join(
        f"<tr><td>{p}</td><td><a href='/v1/items/{it['item_id']}'>{it['item_id']}</a></td>"
        f"<td>{html.escape(str(it.get('title')))}</td><td>{html.escape(str(it.get('city')))}"
        f"</td><td>{html.escape(it['source'])}</td><td>{it['score']:.4f}</td></tr>"
        for p, it in enumerate(rec.items)
    )
    ids = rec.stage_ids
    return (f"<!doctype html><html><head><title>Tuijian demo</title>{_STYLE}</head><body>"
            f"<p><a href='/'>home</a></p><h1>{html.escape(sc.value)} for "
            f"{html.escape(user_id)}</h1><p>recall <b>{ids.recall}</b> · rank <b>{ids.rank}</b>"
            f" · rules <b>{ids.rule}</b> · display <b>{ids.display}</b></p>"
            f"<table>{head}{rows}</table></body></html>")
