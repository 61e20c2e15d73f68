"""What the admin pages (`/experiments`, `/dashboard`) share: their static assets, the
Content-Security-Policy they are served under, and safe ways to hand data to their scripts.

Each page is an HTML shell whose script draws everything from the JSON API. Scripts and styles
come from this origin only (no inline script, no CDN: the pages work offline), and the scripts
put server data into the DOM through `textContent` and attributes only, so stored text (an
experiment's name, a client's slot) can never run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse

STATIC_DIR = Path(__file__).parent / "static"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


def json_for_script(value: Any) -> str:
    """JSON that cannot end its <script> element or open a comment inside it."""
    return (json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("&", "\\u0026"))


def asset(name: str) -> str:
    """The asset's URL, versioned by content so a changed file is never served stale."""
    digest = hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]
    return f"/static/{name}?v={digest}"


def head(title: str, config: Any, styles: list[str], scripts: list[str]) -> str:
    """The <head> of an admin page: its config as an inert JSON block, then its assets."""
    links = "".join(f'<link rel="stylesheet" href="{asset(s)}">\n' for s in styles)
    tags = "".join(f'<script src="{asset(s)}" defer></script>\n' for s in scripts)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Tuijian</title>
<link rel="icon" href="data:,">
{links}<script type="application/json" id="tj-config">{json_for_script(config)}</script>
{tags}</head>"""


def page_response(body: str) -> HTMLResponse:
    return HTMLResponse(body, headers={
        "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin", "Cache-Control": "no-store"})
