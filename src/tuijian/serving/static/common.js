// What the admin pages share: DOM building, number formats, API calls, the error box.
// Loaded before each page's own script; server data only ever reaches the DOM through
// textContent and attributes.
"use strict";

const $ = (id) => document.getElementById(id);

// el("td", {class: "x", "data-testid": "y"}, "text", childNode, ...)
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "value") node.value = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// -- formatting ------------------------------------------------------------------------------

function isNum(x) { return typeof x === "number" && Number.isFinite(x); }
function fmtCount(x) { return isNum(x) ? (Number.isInteger(x) ? String(x) : x.toFixed(1)) : "—"; }
function fmtPct(x, digits = 2) { return isNum(x) ? `${(100 * x).toFixed(digits)}%` : "—"; }
function fmtSigned(x) { return isNum(x) ? `${x >= 0 ? "+" : ""}${(100 * x).toFixed(1)}%` : "—"; }
function fmtP(x) { return isNum(x) ? (x < 0.001 ? "<0.001" : x.toFixed(3)) : "—"; }
function fmtNum(x, digits = 1) { return isNum(x) ? x.toFixed(digits) : "—"; }
function fmtShare(part, whole) { return whole ? +(100 * part / whole).toFixed(2) : 0; }
function fmtTime(ts) { return new Date(ts * 1000).toLocaleString(); }

// -- API ------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error : `HTTP ${status}`);
    this.status = status;
    this.detail = body && Array.isArray(body.detail) ? body.detail : [];
  }
}

// JSON from our API; a non-2xx answer throws an ApiError carrying the fields it names.
async function fetchJSON(url, options = {}) {
  const res = await fetch(url, options);
  if (res.status === 204) return null;
  let data = null;
  try { data = await res.json(); } catch { data = null; }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

function showError(err, what) {
  const box = $("error-box");
  // a platform error names one field with the same message: say it once, in the list
  const once = err instanceof ApiError && err.detail.length === 1 &&
    err.detail[0].message === err.message;
  $("error-title").textContent = `${what} failed` +
    (err instanceof ApiError ? ` (HTTP ${err.status})` : "") + (once ? "" : `: ${err.message}`);
  const list = $("error-list");
  list.replaceChildren();
  for (const d of (err instanceof ApiError ? err.detail : [])) {
    list.append(el("li", { "data-testid": "error-detail", "data-field": d.field },
      el("code", {}, d.field), ": ", d.message));
  }
  $("notice").hidden = true;
  box.hidden = false;
  box.scrollIntoView({ block: "nearest" });
}

function clearError() { $("error-box").hidden = true; }

function notify(text) {
  const n = $("notice");
  n.textContent = text;
  n.hidden = false;
}
