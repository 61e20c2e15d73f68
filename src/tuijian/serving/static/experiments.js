// The experiment platform's admin page: layers with their bucket occupancy, experiments with
// their actions, a create form, and per-experiment edit, report and audit views, all over the
// /v1/experiments API. Server data only ever reaches the DOM through textContent/attributes.
"use strict";

const CFG = JSON.parse(document.getElementById("tj-config").textContent);
const API = CFG.api;
const KEY_STORE = "tuijian.adminKey";
const ACTOR_STORE = "tuijian.actor";
const state = { layers: [], experiments: [], detail: null };

// distinct hues that stay readable under white text; the id picks one
const HUES = [212, 152, 270, 18, 188, 330, 110, 240, 0, 290];
function hue(id) { return HUES[id % HUES.length]; }
function size(ranges) { return ranges.reduce((n, [a, b]) => n + (b - a), 0); }

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") {
    const key = $("admin-key").value.trim();
    if (key) headers["X-API-Key"] = key;
    const actor = $("actor").value.trim();
    if (actor) headers["X-Actor"] = actor;
  }
  if (body !== undefined) headers["Content-Type"] = "application/json";
  return fetchJSON(API + path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
}

// Run an action: clear the old error, show a new one, refresh lists after a change.
async function run(what, fn, { reload = true } = {}) {
  clearError();
  try {
    const out = await fn();
    if (reload) await loadAll();
    return out;
  } catch (err) {
    showError(err, what);
    return undefined;
  }
}

async function loadAll() {
  const [layers, experiments] = await Promise.all([api("GET", "/layers"), api("GET", "")]);
  state.layers = layers;
  state.experiments = experiments;
  renderLayers();
  renderExperiments();
  syncLayerSelect();
}

function layerOf(name) { return state.layers.find((l) => l.name === name); }

// -- layers ---------------------------------------------------------------------------------

// Experiments on disjoint scenes may hold the same buckets: give each one a row (lane) where
// none of its ranges meets another's.
function lanes(experiments) {
  const out = [];
  for (const e of [...experiments].sort((x, y) => x.id - y.id)) {
    const meets = (o) => o.ranges.some(([a, b]) => e.ranges.some(([c, d]) => a < d && c < b));
    let lane = out.find((l) => !l.some(meets));
    if (!lane) { lane = []; out.push(lane); }
    lane.push(e);
  }
  return out.length ? out : [[]];
}

function renderLayers() {
  const box = $("layers");
  box.replaceChildren();
  for (const L of state.layers) {
    const pct = fmtShare(L.used, L.buckets);
    const kind = L.name === "launch" ? "launch layer" :
      L.stage ? `sets the ${L.stage} id` : "parameter layer";
    const head = el("div", { class: "layer-head" },
      el("strong", {}, L.name), el("span", { class: "tag" }, kind),
      el("span", { class: "muted" }, `domain ${L.domain} · ${L.buckets} buckets`),
      el("span", { class: "used", "data-testid": `layer-used-${L.name}` },
        `${pct}% used (${L.used}/${L.buckets})`));
    const rows = lanes(L.experiments);
    const bar = el("div", { class: "bar", "data-testid": `bar-${L.name}`,
      "data-used": L.used, "data-buckets": L.buckets,
      title: `${L.name}: ${pct}% used, ${+(100 - pct).toFixed(2)}% free` });
    bar.style.height = `${rows.length * 1.6 + 0.2}rem`;
    rows.forEach((lane, i) => {
      for (const e of lane) {
        e.ranges.forEach(([a, b], j) => {
          const label = `#${e.id} ${e.name}`;
          const seg = el("div", { class: `seg st-${e.status}`,
            "data-testid": `seg-${L.name}-${e.id}`, "data-range": `${a}-${b}`,
            title: `${label} · ${e.status} · [${a}, ${b}) · ${e.scenes.join(", ")}` },
          j === 0 ? label : "");
          seg.style.left = `${100 * a / L.buckets}%`;
          seg.style.width = `${100 * (b - a) / L.buckets}%`;
          seg.style.top = `${i * 1.6 + 0.1}rem`;
          seg.style.setProperty("--hue", hue(e.id));
          bar.append(seg);
        });
      }
    });
    const legend = el("ul", { class: "legend" });
    for (const e of L.experiments) {
      const sw = el("span", { class: `swatch st-${e.status}` });
      sw.style.setProperty("--hue", hue(e.id));
      legend.append(el("li", {}, sw, `#${e.id} ${e.name} · ${e.status} · ` +
        `${fmtShare(size(e.ranges), L.buckets)}% · ` +
        e.ranges.map(([a, b]) => `[${a}, ${b})`).join(" ") + ` · ${e.scenes.join(", ")}`));
    }
    legend.append(el("li", { class: "muted" }, el("span", { class: "swatch free" }),
      `free ${+(100 - pct).toFixed(2)}%`));
    box.append(el("div", { class: "layer", "data-testid": `layer-${L.name}` },
      head, bar, legend));
  }
}

// -- experiments list -----------------------------------------------------------------------

function trafficPct(e) {
  const L = layerOf(e.layer);
  return L ? fmtShare(size(e.ranges), L.buckets) : 0;
}

function renderExperiments() {
  const body = $("experiment-rows");
  body.replaceChildren();
  $("no-experiments").hidden = state.experiments.length > 0;
  for (const e of state.experiments) {
    const id = e.id;
    const variants = el("ul", { class: "plain" });
    for (const v of e.variants) {
      variants.append(el("li", { class: "nowrap" }, el("strong", {}, v.name),
        `: ${v.stage_id ?? "(no id)"}`, v.weight !== 1 ? ` ×${v.weight}` : "",
        v.name === e.control ? el("span", { class: "tag" }, "control") : null,
        Object.keys(v.params || {}).length ? el("code", {}, ` ${JSON.stringify(v.params)}`)
          : null));
    }
    const traffic = el("input", { type: "number", min: 0, max: 100, step: 0.1,
      class: "pct", value: trafficPct(e), "data-testid": `traffic-input-${id}`,
      "aria-label": `traffic % of experiment ${id}` });
    const button = (label, testid, handler, disabled) => {
      const b = el("button", { type: "button", "data-testid": `${testid}-${id}`, disabled },
        label);
      b.addEventListener("click", handler);
      return b;
    };
    const actions = el("div", { class: "actions" },
      button("Start", "start", () => run(`Starting #${id}`, async () => {
        await api("POST", `/${id}/start`); notify(`Experiment #${id} started.`);
      }), e.status === "running"),
      button("Stop", "stop", () => run(`Stopping #${id}`, async () => {
        await api("POST", `/${id}/stop`); notify(`Experiment #${id} stopped.`);
      }), e.status === "stopped"),
      el("span", { class: "nowrap" }, traffic, "% ",
        button("Set", "traffic-set", () => run(`Setting traffic of #${id}`, async () => {
          const percent = traffic.value === "" ? NaN : Number(traffic.value);
          if (!Number.isFinite(percent)) throw new Error("traffic: enter a percent (0–100)");
          await api("POST", `/${id}/traffic`, { percent });
          notify(`Experiment #${id} now has ${percent}% of layer ${e.layer}.`);
        }))),
      button("Edit", "edit", () => openEdit(id)),
      button("Report", "report", () => openReport(id)),
      button("Audit", "audit", () => openAudit(id)),
      e.status === "draft" ? button("Delete", "delete", () => {
        if (!window.confirm(`Delete draft #${id} ${e.name}?`)) return;
        run(`Deleting #${id}`, async () => {
          await api("DELETE", `/${id}`); notify(`Draft #${id} deleted.`);
          if (state.detail && state.detail.id === id) closeDetail();
        });
      }) : null);
    body.append(el("tr", { "data-testid": `exp-row-${id}`, "data-status": e.status },
      el("td", {}, String(id)),
      el("td", {}, el("span", { "data-testid": `exp-name-${id}` }, e.name),
        e.description ? el("div", { class: "muted small" }, e.description) : null),
      el("td", {}, e.layer),
      el("td", {}, el("span", { class: `status st-${e.status}`,
        "data-testid": `exp-status-${id}` }, e.status)),
      el("td", { "data-testid": `exp-traffic-${id}` }, `${trafficPct(e)}%`),
      el("td", {}, variants),
      el("td", { class: "small" }, e.scenes.join(", ")),
      el("td", {}, actions)));
  }
}

// -- create form ----------------------------------------------------------------------------

function stageOptions(select, layerName, keep) {
  const L = layerOf(layerName);
  const ids = L && L.stage ? CFG.stage_ids[L.stage] || [] : [];
  select.replaceChildren();
  if (!ids.length) select.append(el("option", { value: "" }, "(no stage id)"));
  for (const sid of ids) select.append(el("option", { value: sid }, sid));
  if (keep && ids.includes(keep)) select.value = keep;
}

function syncLayerSelect() {
  const sel = $("new-layer");
  const current = sel.value || "recall";
  sel.replaceChildren();
  for (const L of state.layers) {
    if (L.name === "launch") continue;  // launches come from a report's Launch action
    sel.append(el("option", { value: L.name },
      `${L.name} (${L.stage || "parameters"}, ${fmtShare(L.used, L.buckets)}% used)`));
  }
  sel.value = layerOf(current) ? current : (sel.options[0] && sel.options[0].value);
  for (const s of document.querySelectorAll("#variant-rows .v-stage")) {
    stageOptions(s, sel.value, s.value);
  }
}

function addVariantRow(name, stageId) {
  const rows = $("variant-rows");
  const stage = el("select", { class: "v-stage", "aria-label": "stage id" });
  stageOptions(stage, $("new-layer").value, stageId);
  const remove = el("button", { type: "button", class: "v-remove", "aria-label": "remove" }, "×");
  const row = el("div", { class: "variant-row" },
    el("input", { class: "v-name", value: name, placeholder: "name", "aria-label": "name",
      maxlength: 48 }),
    stage,
    el("label", {}, "weight ", el("input", { class: "v-weight", type: "number", min: 0.001,
      step: "any", value: 1 })),
    el("input", { class: "v-params", placeholder: "params JSON (optional)",
      "aria-label": "params" }),
    remove);
  remove.addEventListener("click", () => { row.remove(); renumberVariants(); });
  rows.append(row);
  renumberVariants();
}

function renumberVariants() {
  [...$("variant-rows").children].forEach((row, i) => {
    row.setAttribute("data-testid", `variant-row-${i}`);
    for (const cls of ["name", "stage", "weight", "params"]) {
      row.querySelector(`.v-${cls}`).setAttribute("data-testid", `v-${cls}-${i}`);
    }
    row.querySelector(".v-remove").hidden = i < 2;
    row.classList.toggle("control", i === 0);
  });
}

function readVariants() {
  return [...$("variant-rows").children].map((row, i) => {
    const v = { name: row.querySelector(".v-name").value.trim(),
      stage_id: row.querySelector(".v-stage").value || null,
      weight: Number(row.querySelector(".v-weight").value || 1) };
    const params = row.querySelector(".v-params").value.trim();
    if (params) {
      try { v.params = JSON.parse(params); } catch {
        throw new ApiError(422, { error: "invalid params", detail: [
          { field: `variants[${i}].params`, message: "is not valid JSON" }] });
      }
    }
    return v;
  });
}

async function submitCreate(ev) {
  ev.preventDefault();
  await run("Creating the experiment", async () => {
    const variants = readVariants();
    const percent = $("new-percent").value;
    const body = {
      name: $("new-name").value.trim(), layer: $("new-layer").value,
      scenes: [...document.querySelectorAll('input[name="scene"]:checked')].map((c) => c.value),
      variants, control: variants.length ? variants[0].name : "control",
      status: $("new-start").checked ? "running" : "draft",
      description: $("new-description").value,
    };
    if (percent !== "") body.percent = Number(percent);
    const e = await api("POST", "", body);
    notify(`Created experiment #${e.id} ${e.name} (${e.status}).`);
    $("new-name").value = "";
    $("new-description").value = "";
  });
}

// -- detail views: edit, report, audit ------------------------------------------------------

function openDetail(panel, id) {
  for (const p of ["edit-panel", "report-panel", "audit-panel"]) $(p).hidden = p !== panel;
  state.detail = { panel, id };
  $("detail").hidden = false;
  $("detail").scrollIntoView({ block: "start" });
}

function closeDetail() {
  $("detail").hidden = true;
  state.detail = null;
}

function whitelistRow(unit, variant, variants) {
  const sel = el("select", { class: "wl-variant", "aria-label": "variant" });
  for (const v of variants) sel.append(el("option", { value: v.name }, v.name));
  if (variant) sel.value = variant;
  const remove = el("button", { type: "button", "aria-label": "remove" }, "×");
  const row = el("div", { class: "wl-row" },
    el("input", { class: "wl-unit", value: unit, placeholder: "user or device id",
      maxlength: 128, "aria-label": "unit" }), " → ", sel, remove);
  remove.addEventListener("click", () => { row.remove(); renumberWhitelist(); });
  $("whitelist-rows").append(row);
  renumberWhitelist();
}

function renumberWhitelist() {
  [...$("whitelist-rows").children].forEach((row, i) => {
    row.setAttribute("data-testid", `wl-row-${i}`);
    row.querySelector(".wl-unit").setAttribute("data-testid", `wl-unit-${i}`);
    row.querySelector(".wl-variant").setAttribute("data-testid", `wl-variant-${i}`);
  });
}

async function openEdit(id) {
  const e = await run(`Loading #${id}`, () => api("GET", `/${id}`), { reload: false });
  if (!e) return;
  state.editing = e;
  $("edit-title").textContent = `Edit #${e.id} ${e.name} (version ${e.version})`;
  $("edit-name").value = e.name;
  $("edit-description").value = e.description;
  $("whitelist-rows").replaceChildren();
  for (const [unit, variant] of Object.entries(e.whitelist)) {
    whitelistRow(unit, variant, e.variants);
  }
  openDetail("edit-panel", id);
}

async function submitEdit(ev) {
  ev.preventDefault();
  const e = state.editing;
  if (!e) return;
  const saved = await run(`Saving #${e.id}`, async () => {
    const whitelist = {};
    for (const row of $("whitelist-rows").children) {
      const unit = row.querySelector(".wl-unit").value.trim();
      if (unit) whitelist[unit] = row.querySelector(".wl-variant").value;
    }
    const out = await api("PATCH", `/${e.id}`, {
      name: $("edit-name").value.trim(), description: $("edit-description").value, whitelist,
    });
    notify(`Saved #${out.id} (version ${out.version}).`);
    return out;
  });
  if (saved) openEdit(saved.id);
}

function reportCell(metric, value, text) {
  return el("td", { "data-col": metric, class: "num" }, text(value));
}

async function openReport(id) {
  const r = await run(`Loading the report of #${id}`, () => api("GET", `/${id}/report`),
    { reload: false });
  if (!r) return;
  const x = r.experiment;
  $("report-title").textContent = `Report #${x.id} ${x.name}`;
  $("report-meta").textContent = `layer ${x.layer} · ${x.status} · version ${x.version} · ` +
    `scenes ${x.scenes.join(", ")} · α = ${r.alpha} · units needed per variant for a ` +
    `${fmtPct(r.mde, 0)} CTR lift: ${r.min_units ?? "unknown"}` +
    (r.crossover_units ? ` · ${r.crossover_units} crossover units left out` : "");

  const srm = r.srm;
  const box = $("report-srm");
  box.className = `srm ${srm.flagged ? "flagged" : "ok"}`;
  box.setAttribute("data-flagged", String(srm.flagged));
  const split = Object.keys(srm.observed).map(
    (k) => `${k}: ${srm.observed[k]} observed / ${fmtNum(srm.expected[k])} expected`).join(" · ");
  box.replaceChildren(el("strong", {}, srm.flagged ?
    "Sample ratio mismatch: assignment or logging is broken, do not trust these results." :
    "Sample ratio OK"), ` (χ² = ${fmtNum(srm.chi2, 2)}, p = ${fmtP(srm.p_value)}) — ${split}`);

  const rows = $("report-variants").tBodies[0];
  rows.replaceChildren();
  for (const [name, m] of Object.entries(r.variants)) {
    rows.append(el("tr", { "data-testid": `report-row-${name}`, "data-variant": name },
      el("th", {}, name, name === r.control ? el("span", { class: "tag" }, "control") : null),
      reportCell("units", m.units, fmtCount), reportCell("exposures", m.exposures, fmtCount),
      reportCell("clicks", m.clicks, fmtCount), reportCell("ctr", m.ctr, fmtPct),
      reportCell("conversions", m.conversions, fmtCount), reportCell("cvr", m.cvr, fmtPct),
      reportCell("dwell_mean", m.dwell_mean, fmtNum)));
  }

  const lifts = $("report-lifts").tBodies[0];
  lifts.replaceChildren();
  for (const [name, metrics] of Object.entries(r.lifts)) {
    for (const [metric, l] of Object.entries(metrics)) {
      const sig = l.significant;
      lifts.append(el("tr", { "data-testid": `lift-${name}-${metric}`,
        class: sig ? (l.lift >= 0 ? "sig up" : "sig down") : "" },
      el("th", {}, name), el("td", {}, metric),
      el("td", { class: "num" }, fmtSigned(l.lift)),
      el("td", { class: "num" }, isNum(l.ci_low) ?
        `[${fmtSigned(l.ci_low)}, ${fmtSigned(l.ci_high)}]` : "—"),
      el("td", { class: "num" }, fmtP(l.p_value)),
      el("td", { "data-testid": `sig-${name}-${metric}`, "data-significant": String(sig) },
        sig ? "✔ significant" : "no")));
    }
  }

  const warnings = $("report-warnings");
  warnings.replaceChildren(...r.warnings.map((w) => el("li", {}, w)));
  if (!r.warnings.length) warnings.append(el("li", { class: "muted" }, "none"));

  const launch = $("launch-variant");
  launch.replaceChildren(...x.variants.map((v) => el("option", { value: v.name },
    `${v.name} (${v.stage_id ?? "params"})`)));
  $("launch-form").hidden = x.layer === "launch";
  openDetail("report-panel", id);
}

async function submitLaunch(ev) {
  ev.preventDefault();
  const id = state.detail && state.detail.id;
  if (!id) return;
  const variant = $("launch-variant").value;
  if (!window.confirm(`Launch ${variant} of #${id} to ${$("launch-percent").value}% of ` +
    "everyone and stop the experiment?")) return;
  const out = await run(`Launching ${variant}`, () => api("POST", `/${id}/launch`,
    { variant, percent: Number($("launch-percent").value) }));
  if (out) notify(`Launched as #${out.id} ${out.name}.`);
}

// The fields an audited change touched, as "field: before → after".
function changes(a) {
  const before = a.before || {};
  const after = a.after || {};
  const skip = new Set(["version", "updated_at", "created_at"]);
  const short = (v) => {
    const s = v === undefined ? "—" : JSON.stringify(v);
    return s.length > 60 ? `${s.slice(0, 57)}…` : s;
  };
  if (!a.before || !a.after) return a.after ? "created" : a.before ? "deleted" : "";
  return Object.keys({ ...before, ...after })
    .filter((k) => !skip.has(k) && JSON.stringify(before[k]) !== JSON.stringify(after[k]))
    .map((k) => `${k}: ${short(before[k])} → ${short(after[k])}`).join("; ");
}

async function openAudit(id) {
  const path = id === null ? "/audit" : `/${id}/audit`;
  const entries = await run("Loading the audit log", () => api("GET", path), { reload: false });
  if (!entries) return;
  $("audit-title").textContent = id === null ? "All changes" : `Audit log of #${id}`;
  const body = $("audit-rows");
  body.replaceChildren();
  for (const a of entries) {
    body.append(el("tr", { "data-testid": "audit-row", "data-action": a.action },
      el("td", { class: "nowrap" }, fmtTime(a.ts)), el("td", {}, a.actor),
      el("td", { "data-col": "action" }, a.action), el("td", {}, `${a.entity} ${a.entity_id}`),
      el("td", { class: "num" }, String(a.version)), el("td", { class: "small" }, changes(a))));
  }
  if (!entries.length) body.append(el("tr", {}, el("td", { colspan: 6 }, "no entries")));
  openDetail("audit-panel", id);
}

// -- wiring ---------------------------------------------------------------------------------

function restore(input, store) {
  const saved = sessionStorage.getItem(store);
  if (saved !== null) input.value = saved;
  input.addEventListener("input", () => sessionStorage.setItem(store, input.value));
}

function init() {
  restore($("admin-key"), KEY_STORE);
  restore($("actor"), ACTOR_STORE);
  $("key-form").addEventListener("submit", (ev) => ev.preventDefault());
  $("reload").addEventListener("click", () => run("Reloading", async () => {}));
  $("error-close").addEventListener("click", clearError);
  $("detail-close").addEventListener("click", closeDetail);
  $("show-all-audit").addEventListener("click", () => openAudit(null));
  $("create-form").addEventListener("submit", submitCreate);
  $("edit-form").addEventListener("submit", submitEdit);
  $("launch-form").addEventListener("submit", submitLaunch);
  $("add-variant").addEventListener("click", () => addVariantRow("", null));
  $("add-whitelist").addEventListener("click", () => {
    if (state.editing) whitelistRow("", null, state.editing.variants);
  });
  $("new-layer").addEventListener("change", () => syncLayerSelect());
  run("Loading", async () => {}).then(() => {
    const ids = CFG.stage_ids.recall || [];
    addVariantRow("control", ids[0] || null);
    addVariantRow("treatment", ids[1] || null);
    document.body.setAttribute("data-ready", "true");
    openFromHash();
  });
  window.addEventListener("hashchange", openFromHash);
}

// `/experiments#report-7` opens experiment 7's report: the dashboard links here.
function openFromHash() {
  const m = /^#report-(\d+)$/.exec(location.hash);
  if (m) openReport(Number(m[1]));
}

init();
