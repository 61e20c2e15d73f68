// The effect-data dashboard: one view per #hash, each drawn from /v1/analytics/funnel with the
// vendored Chart.js. Every chart has a table of the same numbers next to it (readable, and
// copyable); values from the API reach the DOM through textContent only.
"use strict";

const CFG = JSON.parse(document.getElementById("tj-config").textContent);
const VIEWS = CFG.views;
const TIME_DIMS = ["date", "hour"];
const METRICS = {
  ctr: ["CTR", fmtPct], cvr: ["CVR", fmtPct], exposures: ["exposures", fmtInt],
  clicks: ["clicks", fmtInt], conversions: ["conversions", fmtInt], lists: ["lists", fmtInt],
  users: ["unique users", fmtInt], dwell_mean: ["dwell, mean (s)", fmtNum],
  dwell_p50: ["dwell, median (s)", fmtNum],
};
const COLORS = ["#2f6fde", "#e0702b", "#1f8a4c", "#a23bcf", "#c62828", "#0f8b99", "#8d6e00",
  "#5b6472"];
const MAX_SERIES = 8;
const charts = {};

Chart.defaults.animation = false;
Chart.defaults.maintainAspectRatio = false;
Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;

function fmtInt(x) { return isNum(x) ? Math.round(x).toLocaleString("en-US") : "—"; }
function ratio(b, a) { return isNum(a) && isNum(b) && a !== 0 ? b / a - 1 : null; }
function label(v) { return v === null || v === undefined ? "(none)" : String(v); }

// Draw a chart on a canvas, replacing what was there.
function draw(id, config) {
  if (charts[id]) charts[id].destroy();
  charts[id] = new Chart($(id), config);
  return charts[id];
}

function numCell(value, fmt, attrs = {}) {
  return el("td", { class: "num", ...attrs }, fmt(value));
}

// -- queries ---------------------------------------------------------------------------------

function timeRange() {
  const r = $("range").value;
  if (r === "all") return [null, null];
  if (r === "custom") {
    const at = (id) => ($(id).value ? new Date($(id).value).getTime() / 1000 : null);
    return [at("from"), at("to")];
  }
  return [Date.now() / 1000 - Number(r) * 3600, null];
}

// The page's filters plus a view's own; a view's filter on a dimension replaces the page's.
function mergeFilters(extra) {
  const own = Object.keys(extra);
  const parts = $("filters").value.split(",").map((p) => p.trim())
    .filter((p) => p && !own.includes(p.split(":")[0].trim()));
  for (const [dim, values] of Object.entries(extra)) parts.push(`${dim}:${values.join("|")}`);
  return parts.join(",");
}

async function funnel(dims, extra = {}) {
  const q = new URLSearchParams({ dims: dims.join(",") });
  const filters = mergeFilters(extra);
  if (filters) q.set("filters", filters);
  const [from, to] = timeRange();
  if (from !== null) q.set("from", from.toFixed(0));
  if (to !== null) q.set("to", to.toFixed(0));
  if ($("source").value === "realtime") q.set("source", "realtime");
  return (await fetchJSON(`${CFG.api.funnel}?${q}`)).rows;
}

// Rows of one dimension's values, largest (by exposures) first, at most `n`.
function largest(rows, dim, n) {
  const total = new Map();
  for (const r of rows) total.set(r[dim], (total.get(r[dim]) || 0) + r.exposures);
  return [...total.entries()].sort((a, b) => b[1] - a[1]).slice(0, n).map(([v]) => v);
}

// -- views -------------------------------------------------------------------------------------

async function loadKpis() {
  const [t] = await funnel([]);
  const box = $("kpis");
  box.replaceChildren();
  for (const m of ["exposures", "clicks", "ctr", "conversions", "cvr", "users", "dwell_mean"]) {
    const [name, fmt] = METRICS[m];
    box.append(el("div", { class: "kpi", "data-testid": `kpi-${m}` },
      el("span", { class: "kpi-value" }, fmt(t ? t[m] : null)),
      el("span", { class: "kpi-name" }, name)));
  }
}

async function loadFunnel() {
  const rows = await funnel(["slot"]);
  const steps = ["lists", "exposures", "clicks", "conversions"];
  draw("chart-funnel", {
    type: "bar",
    data: {
      labels: rows.map((r) => label(r.slot)),
      datasets: steps.map((s, i) => ({ label: s, data: rows.map((r) => r[s]),
        backgroundColor: COLORS[i] })),
    },
    options: { scales: { y: { type: "logarithmic", title: { display: true, text: "count" } } },
      plugins: { tooltip: { callbacks: {
        afterBody: (items) => {
          const r = rows[items[0].dataIndex];
          return `CTR ${fmtPct(r.ctr)} · CVR ${fmtPct(r.cvr)}`;
        } } } } },
  });
  $("funnel-rows").replaceChildren(...rows.map((r) => el("tr",
    { "data-testid": "funnel-row", "data-slot": label(r.slot) },
    el("th", {}, label(r.slot)), numCell(r.lists, fmtInt), numCell(r.exposures, fmtInt),
    numCell(r.clicks, fmtInt, { "data-col": "clicks" }),
    numCell(r.ctr, fmtPct, { "data-col": "ctr" }), numCell(r.conversions, fmtInt),
    numCell(r.cvr, fmtPct), numCell(r.dwell_mean, fmtNum), numCell(r.users, fmtInt))));
}

function timeLabel(r, grain) {
  return grain === "hour" ? `${r.date} ${String(r.hour).padStart(2, "0")}:00` : r.date;
}

async function loadTrends() {
  const metric = $("trend-metric").value;
  const split = $("trend-split").value;
  const grain = $("trend-grain").value;
  const time = grain === "hour" ? TIME_DIMS : ["date"];
  const rows = await funnel(split ? [...time, split] : time);
  const labels = [...new Set(rows.map((r) => timeLabel(r, grain)))].sort();
  const series = split ? largest(rows, split, MAX_SERIES) : [null];
  const datasets = series.map((v, i) => {
    const at = new Map(rows.filter((r) => !split || r[split] === v)
      .map((r) => [timeLabel(r, grain), r[metric]]));
    const scale = metric === "ctr" || metric === "cvr" ? 100 : 1;
    return { label: split ? label(v) : METRICS[metric][0],
      data: labels.map((t) => (isNum(at.get(t)) ? at.get(t) * scale : null)),
      borderColor: COLORS[i % COLORS.length], backgroundColor: COLORS[i % COLORS.length],
      spanGaps: false, pointRadius: labels.length > 60 ? 0 : 2, tension: 0.2 };
  });
  const pct = metric === "ctr" || metric === "cvr";
  draw("chart-trends", {
    type: "line", data: { labels, datasets },
    options: { interaction: { mode: "index", intersect: false },
      scales: { y: { beginAtZero: true, title: { display: true,
        text: METRICS[metric][0] + (pct ? " (%)" : "") } } } },
  });
}

async function fillCompareValues() {
  const dim = $("cmp-dim").value;
  const values = largest(await funnel([dim]), dim, 50).map(label);
  for (const [id, pick] of [["cmp-a", 0], ["cmp-b", 1]]) {
    const keep = $(id).value;
    const preferred = dim === "platform" ? ["android", "ios"][pick] : null;
    $(id).replaceChildren(...values.map((v) => el("option", { value: v }, v)));
    $(id).value = values.includes(keep) && $(id).dataset.dim === dim ? keep :
      (values.includes(preferred) ? preferred : values[Math.min(pick, values.length - 1)] || "");
    $(id).dataset.dim = dim;
  }
}

async function loadCompare() {
  if ($("cmp-a").dataset.dim !== $("cmp-dim").value) await fillCompareValues();
  const dim = $("cmp-dim").value;
  const within = $("cmp-within").value;
  const a = $("cmp-a").value;
  const b = $("cmp-b").value;
  const pair = { [dim]: [a, b] };
  const [totals, rows] = await Promise.all([
    funnel([dim], pair), within ? funnel([within, dim], pair) : Promise.resolve([])]);
  const of = (v) => totals.find((r) => label(r[dim]) === v) || {};
  const [ta, tb] = [of(a), of(b)];
  $("cmp-head-a").textContent = a;
  $("cmp-head-b").textContent = b;
  $("compare-total").replaceChildren(...["exposures", "clicks", "ctr", "conversions", "cvr",
    "dwell_mean", "dwell_p50", "users"].map((m) => el("tr", { "data-metric": m },
    el("th", {}, METRICS[m][0]), numCell(ta[m], METRICS[m][1], { "data-side": "a" }),
    numCell(tb[m], METRICS[m][1], { "data-side": "b" }),
    numCell(ratio(tb[m], ta[m]), fmtSigned))));

  const groups = within ? largest(rows, within, 30) : [];
  const cell = (g, v) => rows.find((r) => r[within] === g && label(r[dim]) === v) || {};
  draw("chart-compare", {
    type: "bar",
    data: { labels: groups.map(label), datasets: [a, b].map((v, i) => ({
      label: `${v} CTR (%)`, backgroundColor: COLORS[i],
      data: groups.map((g) => (isNum(cell(g, v).ctr) ? cell(g, v).ctr * 100 : null)) })) },
    options: { scales: { y: { beginAtZero: true, title: { display: true, text: "CTR (%)" } } } },
  });
  $("compare-head").replaceChildren(el("tr", {}, el("th", {}, within || ""),
    ...[a, b].flatMap((v) => [el("th", { class: "num" }, `${v} exposures`),
      el("th", { class: "num" }, `${v} CTR`)]),
    el("th", { class: "num" }, `${b} vs ${a} CTR`)));
  $("compare-rows").replaceChildren(...groups.map((g) => {
    const [ca, cb] = [cell(g, a), cell(g, b)];
    const lift = ratio(cb.ctr, ca.ctr);
    // a big gap on enough traffic is what found 58.com's iPhone detail-page bug
    const gap = isNum(lift) && Math.abs(lift) >= 0.33 && ca.exposures >= 200 &&
      cb.exposures >= 200;
    return el("tr", { "data-testid": "compare-row", "data-group": label(g),
      class: gap ? "gap" : "" },
    el("th", {}, label(g)), numCell(ca.exposures, fmtInt), numCell(ca.ctr, fmtPct),
    numCell(cb.exposures, fmtInt), numCell(cb.ctr, fmtPct),
    numCell(lift, fmtSigned, { "data-col": "lift" }));
  }));
}

async function loadSources() {
  const rows = await funnel(["source"]);
  const sum = (m) => rows.reduce((s, r) => s + r[m], 0);
  const totals = { exposures: sum("exposures"), clicks: sum("clicks"),
    conversions: sum("conversions") };
  const share = (r, m) => (totals[m] ? r[m] / totals[m] : null);
  draw("chart-sources", {
    type: "bar",
    data: { labels: rows.map((r) => label(r.source)),
      datasets: ["exposures", "clicks", "conversions"].map((m, i) => ({
        label: `share of ${m} (%)`, backgroundColor: COLORS[i],
        data: rows.map((r) => (isNum(share(r, m)) ? 100 * share(r, m) : null)) })) },
    options: { indexAxis: "y", scales: { x: { beginAtZero: true, title: { display: true,
      text: "%" } } } },
  });
  $("source-rows").replaceChildren(...rows.map((r) => el("tr",
    { "data-testid": "source-row", "data-source": label(r.source) },
    el("th", {}, label(r.source)), numCell(r.exposures, fmtInt),
    numCell(share(r, "exposures"), fmtPct, { "data-col": "exposure-share" }),
    numCell(r.clicks, fmtInt), numCell(share(r, "clicks"), fmtPct),
    numCell(r.conversions, fmtInt), numCell(share(r, "conversions"), fmtPct),
    numCell(r.ctr, fmtPct, { "data-col": "ctr" }))));
}

async function loadExperiments() {
  const experiments = (await fetchJSON(CFG.api.experiments))
    .filter((x) => x.status !== "draft").sort((x, y) => y.id - x.id);
  const layers = [...new Set(experiments.map((x) => x.layer))];
  const byLayer = Object.fromEntries(await Promise.all(
    layers.map(async (l) => [l, await funnel([`exp_${l}`])])));
  const list = $("experiment-list");
  list.replaceChildren();
  if (!experiments.length) list.append(el("p", { class: "hint" }, "No experiment has run."));
  for (const x of experiments) {
    const dim = `exp_${x.layer}`;
    const arms = byLayer[x.layer].filter((r) => r[dim] && r[dim].split(":")[0] === String(x.id));
    list.append(el("article", { class: "experiment", "data-testid": `experiment-${x.id}` },
      el("h3", {}, `#${x.id} ${x.name} `, el("span", { class: `status st-${x.status}` },
        x.status), el("span", { class: "tag" }, `${x.layer} layer`), " ",
      el("a", { href: `/experiments#report-${x.id}`, "data-testid": `report-link-${x.id}` },
        "report →")),
      arms.length ? el("table", { class: "compact" }, el("thead", {}, el("tr", {},
        el("th", {}, "arm"), ...["exposures", "clicks", "CTR", "conversions", "CVR", "users"]
          .map((h) => el("th", { class: "num" }, h)))),
      el("tbody", {}, ...arms.map((r) => el("tr", { "data-arm": r[dim] },
        el("th", {}, r[dim]), numCell(r.exposures, fmtInt), numCell(r.clicks, fmtInt),
        numCell(r.ctr, fmtPct, { "data-col": "ctr" }), numCell(r.conversions, fmtInt),
        numCell(r.cvr, fmtPct), numCell(r.users, fmtInt))))) :
        el("p", { class: "hint" }, "No traffic in this time range.")));
  }
}

async function loadAlarms() {
  const { alarms } = await fetchJSON(CFG.api.alarms);
  $("alarm-rows").replaceChildren(...alarms.map((a) => el("tr",
    { "data-testid": "alarm-row", "data-alarm": a.alarm, class: `sev-${a.severity}` },
    el("td", {}, a.scope), el("th", {}, a.alarm), el("td", {}, a.key), el("td", {}, a.message),
    el("td", { class: "nowrap" }, fmtTime(a.since)))));
  $("no-alarms").hidden = alarms.length > 0;
  countAlarms(alarms.length);
}

function countAlarms(n) {
  const link = document.querySelector('[data-view="alarms"]');
  link.textContent = n ? `Alarms (${n})` : "Alarms";
  link.classList.toggle("firing", n > 0);
}

// -- wiring ------------------------------------------------------------------------------------

const LOADERS = { funnel: loadFunnel, trends: loadTrends, compare: loadCompare,
  sources: loadSources, experiments: loadExperiments, alarms: loadAlarms };

function currentView() {
  const v = location.hash.slice(1);
  return VIEWS.includes(v) ? v : "funnel";
}

async function refresh() {
  const view = currentView();
  for (const v of VIEWS) $(`view-${v}`).hidden = v !== view;
  for (const a of document.querySelectorAll("nav.views a")) {
    a.classList.toggle("active", a.dataset.view === view);
  }
  document.body.dataset.loaded = "";
  clearError();
  try {
    const alarms = view === "alarms" ? null : fetchJSON(CFG.api.alarms);
    await Promise.all([loadKpis(), LOADERS[view]()]);
    if (alarms) countAlarms((await alarms).alarms.length);
    document.body.dataset.loaded = view;
  } catch (err) {
    showError(err, `Loading ${view}`);
    document.body.dataset.loaded = `${view}:error`;
  }
}

function options(select, pairs, selected) {
  select.replaceChildren(...pairs.map(([v, t]) => el("option", { value: v }, t)));
  if (selected !== undefined) select.value = selected;
}

function exportLinks() {
  const d = $("report-date").value;
  for (const f of ["csv", "html"]) {
    $(`export-${f}`).href = `${CFG.api.daily}?date=${encodeURIComponent(d)}&format=${f}`;
  }
}

// Yesterday's local date in the cube's time zone: the last closed day.
function yesterday() {
  const t = new Date(Date.now() + CFG.utc_offset_h * 3600e3 - 86400e3);
  return t.toISOString().slice(0, 10);
}

function init() {
  const dims = CFG.dimensions.map((d) => [d.name, d.name]);
  const grouping = dims.filter(([d]) => !TIME_DIMS.includes(d));
  options($("trend-metric"), Object.entries(METRICS).map(([k, [t]]) => [k, t]), "ctr");
  options($("trend-split"), [["", "(nothing)"], ...grouping], "platform");
  options($("cmp-dim"), grouping, "platform");
  options($("cmp-within"), [["", "(total only)"], ...dims], "slot");
  for (const d of CFG.dimensions) {
    for (const id of ["trend-split", "cmp-dim", "cmp-within"]) {
      const o = $(id).querySelector(`option[value="${d.name}"]`);
      if (o) o.title = d.description;
    }
  }
  $("report-date").value = yesterday();
  exportLinks();
  $("report-date").addEventListener("change", exportLinks);
  $("range").addEventListener("change", () => {
    $("custom-range").hidden = $("range").value !== "custom";
  });
  $("controls").addEventListener("submit", (ev) => { ev.preventDefault(); refresh(); });
  $("error-close").addEventListener("click", clearError);
  for (const id of ["trend-metric", "trend-split", "trend-grain", "cmp-a", "cmp-b",
    "cmp-within"]) $(id).addEventListener("change", refresh);
  $("cmp-dim").addEventListener("change", async () => {
    try { await fillCompareValues(); } catch (err) { showError(err, "Loading values"); }
    refresh();
  });
  window.addEventListener("hashchange", refresh);
  refresh();
}

init();
