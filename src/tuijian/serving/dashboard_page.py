"""The effect-data dashboard (`GET /dashboard`): an HTML shell whose script
(`static/dashboard.js`) draws charts with the vendored Chart.js from `/v1/analytics/funnel`,
`/v1/analytics/alarms` and `/v1/experiments`.

Views (one per `#hash`): the funnel by slot; CTR / CVR / volume over time split by any
dimension; two values of a dimension side by side within another (android vs ios per slot,
recall id A vs B per scene); each recall source's share of exposures and clicks; experiments
with their arms' numbers and links to their reports; tracking alarms. The shell carries only
the cube's declarations (dimensions, measures); `web` says how the page is kept safe.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import HTMLResponse

from tuijian.analytics.cube import DIMENSIONS, UTC_OFFSET_H
from tuijian.serving.web import head, page_response

VIEWS = (("funnel", "Funnel by slot"), ("trends", "Over time"), ("compare", "Compare"),
         ("sources", "Recall sources"), ("experiments", "Experiments"), ("alarms", "Alarms"))


def page_config() -> dict[str, Any]:
    """What the script needs besides the API: its views and the cube's dimensions."""
    return {
        "views": [v for v, _ in VIEWS],
        "dimensions": [{"name": d.name, "description": d.description} for d in DIMENSIONS],
        "utc_offset_h": UTC_OFFSET_H,
        "api": {"funnel": "/v1/analytics/funnel", "alarms": "/v1/analytics/alarms",
                "daily": "/v1/analytics/daily", "experiments": "/v1/experiments"},
    }


def _nav() -> str:
    return "".join(f'<a href="#{v}" data-view="{v}" data-testid="nav-{v}">{t}</a>'
                   for v, t in VIEWS)


def render() -> str:
    return f"""{head("Dashboard", page_config(), ["tuijian.css", "dashboard.css"],
                     ["common.js", "vendor/chart.umd.min.js", "dashboard.js"])}<body>
<header class="top">
  <h1><a href="/">Tuijian</a> · Effect data</h1>
  <nav class="views">{_nav()}</nav>
  <a href="/experiments">Experiments admin</a>
</header>
<main>
<form id="controls" class="card controls" autocomplete="off">
  <label>Time <select id="range" data-testid="range">
    <option value="1">last hour</option><option value="24">last 24 h</option>
    <option value="168" selected>last 7 days</option><option value="720">last 30 days</option>
    <option value="all">everything</option><option value="custom">from … to …</option>
  </select></label>
  <label id="custom-range" hidden>from <input id="from" type="datetime-local"
    data-testid="from"> to <input id="to" type="datetime-local" data-testid="to"></label>
  <label>Filters <input id="filters" data-testid="filters" size="28"
    placeholder="platform:ios|android,scene:feed"></label>
  <label>Data <select id="source" data-testid="source">
    <option value="all">offline cube + live log</option>
    <option value="realtime">real time (minute buckets, 48 h)</option></select></label>
  <button type="submit" data-testid="apply">Apply</button>
  <span class="export">Daily report <input id="report-date" type="date"
    data-testid="report-date"> <a id="export-csv" data-testid="export-csv">CSV</a> ·
    <a id="export-html" data-testid="export-html">HTML</a></span>
</form>
<div id="error-box" data-testid="error-box" class="error" role="alert" hidden>
  <button type="button" id="error-close" class="close" aria-label="dismiss">×</button>
  <strong id="error-title"></strong><ul id="error-list"></ul>
</div>
<div id="notice" data-testid="notice" class="notice" role="status" hidden></div>

<section class="kpis" id="kpis" data-testid="kpis"></section>

<section class="card view" id="view-funnel" data-testid="view-funnel" hidden>
  <h2>Funnel by slot</h2>
  <p class="hint">Lists and items shown, clicks and conversions per client slot (log scale),
  with the rates between the steps.</p>
  <div class="chart"><canvas id="chart-funnel" data-testid="chart-funnel"></canvas></div>
  <div class="table-wrap"><table data-testid="table-funnel"><thead><tr><th>slot</th>
    <th class="num">lists</th><th class="num">exposures</th><th class="num">clicks</th>
    <th class="num">CTR</th><th class="num">conversions</th><th class="num">CVR</th>
    <th class="num">dwell (s, mean)</th><th class="num">users</th></tr></thead>
    <tbody id="funnel-rows"></tbody></table></div>
</section>

<section class="card view" id="view-trends" data-testid="view-trends" hidden>
  <h2>Over time</h2>
  <div class="inline-controls">
    <label>Metric <select id="trend-metric" data-testid="trend-metric"></select></label>
    <label>Split by <select id="trend-split" data-testid="trend-split"></select></label>
    <label>Per <select id="trend-grain" data-testid="trend-grain">
      <option value="hour">hour</option><option value="day">day</option></select></label>
  </div>
  <p class="hint">Local time (UTC+{UTC_OFFSET_H}). The 8 largest values by exposures get a
  line each.</p>
  <div class="chart tall"><canvas id="chart-trends" data-testid="chart-trends"></canvas></div>
</section>

<section class="card view" id="view-compare" data-testid="view-compare" hidden>
  <h2>Compare</h2>
  <div class="inline-controls">
    <label>Dimension <select id="cmp-dim" data-testid="cmp-dim"></select></label>
    <label>A <select id="cmp-a" data-testid="cmp-a"></select></label>
    <label>B <select id="cmp-b" data-testid="cmp-b"></select></label>
    <label>within <select id="cmp-within" data-testid="cmp-within"></select></label>
  </div>
  <div class="table-wrap"><table data-testid="table-compare-total" class="compact">
    <thead><tr><th>metric</th><th class="num" id="cmp-head-a">A</th>
    <th class="num" id="cmp-head-b">B</th><th class="num">B vs A</th></tr></thead>
    <tbody id="compare-total"></tbody></table></div>
  <div class="chart"><canvas id="chart-compare" data-testid="chart-compare"></canvas></div>
  <div class="table-wrap"><table data-testid="table-compare">
    <thead id="compare-head"></thead><tbody id="compare-rows"></tbody></table></div>
</section>

<section class="card view" id="view-sources" data-testid="view-sources" hidden>
  <h2>Recall sources</h2>
  <p class="hint">The source that placed each shown item: its share of exposures, clicks and
  conversions, and its CTR.</p>
  <div class="chart"><canvas id="chart-sources" data-testid="chart-sources"></canvas></div>
  <div class="table-wrap"><table data-testid="table-sources"><thead><tr><th>source</th>
    <th class="num">exposures</th><th class="num">share</th><th class="num">clicks</th>
    <th class="num">share</th><th class="num">conversions</th><th class="num">share</th>
    <th class="num">CTR</th></tr></thead><tbody id="source-rows"></tbody></table></div>
</section>

<section class="card view" id="view-experiments" data-testid="view-experiments" hidden>
  <h2>Experiments</h2>
  <p class="hint">Each arm's traffic in the chosen time range, from the effect data; the
  report (lifts, confidence intervals, sample ratio) is on the experiments page.</p>
  <div id="experiment-list" data-testid="experiment-list"></div>
</section>

<section class="card view" id="view-alarms" data-testid="view-alarms" hidden>
  <h2>Tracking alarms</h2>
  <p class="hint">Checked on the real-time stream every minute and over each closed day.
  Also exported as <code>tuijian_alarm_firing</code> in <a href="/metrics">/metrics</a>.</p>
  <div class="table-wrap"><table data-testid="table-alarms"><thead><tr><th>scope</th>
    <th>alarm</th><th>on</th><th>message</th><th>since</th></tr></thead>
    <tbody id="alarm-rows"></tbody></table></div>
  <p id="no-alarms" class="hint" data-testid="no-alarms" hidden>No alarm is firing.</p>
</section>
</main>
</body></html>
"""


def response() -> HTMLResponse:
    return page_response(render())
