"""The experiment platform's admin page (`GET /experiments`): an HTML shell whose script
(`static/experiments.js`) draws layers, experiments, reports and audit logs from the
`/v1/experiments` API.

The shell carries no server data except one JSON block (the stage ids a variant may pick,
the scenes) and, in dev mode only, the admin key pre-filled; `web` says how the admin pages
keep stored text (an experiment's name) from ever running.
"""

from __future__ import annotations

import html
from typing import Any

from fastapi.responses import HTMLResponse

from tuijian.domain import Scene
from tuijian.experiments.model import STAGES
from tuijian.serving.service import Service
from tuijian.serving.web import head, page_response


def page_config(service: Service) -> dict[str, Any]:
    """What the script needs besides the API: stage ids per stage (derived `id@exp.variant`
    ids are the platform's own and hidden) and the scenes."""
    stage_ids = {stage: [k for k in getattr(service.strategies, stage) if "@" not in k]
                 for stage in STAGES}
    return {"stage_ids": stage_ids, "scenes": [s.value for s in Scene],
            "api": "/v1/experiments"}


def render(service: Service) -> str:
    key = service.settings.admin_key if service.settings.dev_mode else ""
    scenes = "".join(
        f'<label class="check"><input type="checkbox" name="scene" value="{s.value}" '
        f'data-testid="new-scene-{s.value}"{" checked" if s.value == "guess_you_like" else ""}>'
        f" {s.value}</label>" for s in Scene)
    return f"""{head("Experiments", page_config(service), ["tuijian.css", "experiments.css"],
                     ["common.js", "experiments.js"])}<body>
<header class="top">
  <h1><a href="/">Tuijian</a> · Experiments</h1>
  <form id="key-form" class="key" autocomplete="off">
    <label>Admin key <input id="admin-key" data-testid="admin-key" type="password"
      value="{html.escape(key)}" size="18" placeholder="X-API-Key" autocomplete="off"></label>
    <label>Your name <input id="actor" data-testid="actor" size="10" maxlength="64"
      placeholder="optional"></label>
    <button type="button" id="reload" data-testid="reload">Reload</button>
  </form>
</header>
<main>
<div id="error-box" data-testid="error-box" class="error" role="alert" hidden>
  <button type="button" id="error-close" class="close" aria-label="dismiss">×</button>
  <strong id="error-title"></strong><ul id="error-list"></ul>
</div>
<div id="notice" data-testid="notice" class="notice" role="status" hidden></div>

<section class="card"><h2>Layers</h2>
  <p class="hint">Each bar is a layer's buckets; a coloured block is an experiment's range
  (drafts reserve theirs too). Experiments on disjoint scenes may share buckets and are drawn
  on separate rows.</p>
  <div id="layers" data-testid="layers"></div>
</section>

<section class="card"><h2>Experiments</h2>
  <div class="table-wrap"><table id="experiments" data-testid="experiments">
    <thead><tr><th>id</th><th>name</th><th>layer</th><th>status</th><th>traffic</th>
    <th>variants</th><th>scenes</th><th>actions</th></tr></thead>
    <tbody id="experiment-rows"></tbody></table></div>
  <p id="no-experiments" class="hint" hidden>No experiments yet.</p>
  <p><button type="button" id="show-all-audit" data-testid="show-all-audit">All changes
  (audit log)</button></p>
</section>

<section class="card" id="detail" hidden>
  <button type="button" id="detail-close" class="close" aria-label="close">×</button>
  <div id="edit-panel" data-testid="edit-panel" hidden>
    <h2 id="edit-title"></h2>
    <form id="edit-form" class="grid" autocomplete="off">
      <label>Name <input id="edit-name" data-testid="edit-name" maxlength="100"></label>
      <label>Description <textarea id="edit-description" data-testid="edit-description"
        rows="2"></textarea></label>
      <fieldset><legend>Whitelist (unit → forced variant; testers, left out of reports)
      </legend><div id="whitelist-rows"></div>
        <button type="button" id="add-whitelist" data-testid="add-whitelist">+ unit</button>
      </fieldset>
      <div><button type="submit" id="edit-save" data-testid="edit-save">Save</button></div>
    </form>
  </div>
  <div id="report-panel" data-testid="report-panel" hidden>
    <h2 id="report-title"></h2>
    <p id="report-meta" class="hint"></p>
    <div id="report-srm" data-testid="report-srm" class="srm"></div>
    <h3>Variants</h3>
    <div class="table-wrap"><table id="report-variants" data-testid="report-variants">
      <thead><tr><th>variant</th><th>units</th><th>exposures</th><th>clicks</th><th>CTR</th>
      <th>conversions</th><th>CVR</th><th>dwell (s)</th></tr></thead><tbody></tbody>
    </table></div>
    <h3>Lifts vs control</h3>
    <div class="table-wrap"><table id="report-lifts" data-testid="report-lifts">
      <thead><tr><th>variant</th><th>metric</th><th>lift</th><th>CI</th><th>p-value</th>
      <th>significant</th></tr></thead><tbody></tbody></table></div>
    <h3>Warnings</h3><ul id="report-warnings" data-testid="report-warnings"></ul>
    <form id="launch-form" class="inline" autocomplete="off">
      <strong>Launch</strong> variant <select id="launch-variant"
        data-testid="launch-variant"></select> to
      <input id="launch-percent" data-testid="launch-percent" type="number" min="0.1"
        max="100" step="0.1" value="100"> % of everyone (stops the experiment)
      <button type="submit" id="launch-submit" data-testid="launch-submit">Launch</button>
    </form>
  </div>
  <div id="audit-panel" data-testid="audit-panel" hidden>
    <h2 id="audit-title"></h2>
    <div class="table-wrap"><table id="audit" data-testid="audit">
      <thead><tr><th>when</th><th>who</th><th>action</th><th>what</th><th>version</th>
      <th>changes</th></tr></thead><tbody id="audit-rows"></tbody></table></div>
  </div>
</section>

<section class="card"><h2>New experiment</h2>
  <form id="create-form" data-testid="create-form" class="grid" autocomplete="off">
    <label>Name <input id="new-name" data-testid="new-name" maxlength="100"
      placeholder="e.g. rrf fusion"></label>
    <label>Layer <select id="new-layer" data-testid="new-layer"></select></label>
    <fieldset><legend>Scenes</legend>{scenes}</fieldset>
    <label>Traffic (% of the layer) <input id="new-percent" data-testid="new-percent"
      type="number" min="0" max="100" step="0.1" value="10"></label>
    <fieldset><legend>Variants (the first is the control)</legend>
      <div id="variant-rows"></div>
      <button type="button" id="add-variant" data-testid="add-variant">+ variant</button>
    </fieldset>
    <label>Description <textarea id="new-description" data-testid="new-description"
      rows="2"></textarea></label>
    <label class="check"><input type="checkbox" id="new-start" data-testid="new-start">
      start immediately</label>
    <div><button type="submit" id="create-submit" data-testid="create-submit">Create</button>
    </div>
  </form>
</section>
</main>
</body></html>
"""


def response(service: Service) -> HTMLResponse:
    return page_response(render(service))
