// DOM and formatting helpers for the wandblite dashboard.
//
// Everything a run carries (names, keys, captions, config, table cells, console text) is
// untrusted. These helpers are the only way the app builds DOM: `h()` sets text with
// text nodes and attributes with setAttribute (never innerHTML), and refuses "on*" attributes
// and javascript: URLs. `plotText()` escapes text for plotly, which renders a subset of HTML
// in titles, legends and hover labels.

import { TYPE_KEY } from "./vocab.js";

/** Build an element: h("a", {href: "#/x", class: "c"}, "text", child, [more]). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") {
        el.addEventListener(k.slice(2), v);
        continue;
      }
      if (k.startsWith("on")) throw new Error(`refusing attribute ${k}`);
      if ((k === "href" || k === "src") && !safeUrl(String(v))) throw new Error(`refusing URL ${v}`);
      if (k === "dataset") Object.assign(el.dataset, v);
      else if (k === "text") el.textContent = String(v);
      else if (k === "value" || k === "checked" || k === "disabled" || k === "hidden" || k === "open") el[k] = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Same-origin relative URLs, hash links, data:image and blob: only. */
export function safeUrl(u) {
  if (u.startsWith("#") || (u.startsWith("/") && !u.startsWith("//"))) return true;
  return u.startsWith("blob:") || u.startsWith("data:image/");
}

/** Remove every child of el. */
export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

/** Text for plotly titles, legends and hover labels: its HTML-like markup shown as text. */
export function plotText(s) {
  return String(s ?? "").replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** The media URL of a sha256 (validated: 64 hex digits). */
export function mediaUrl(sha) {
  if (typeof sha !== "string" || !/^[0-9a-f]{64}$/.test(sha)) throw new Error("bad media reference");
  return `/api/v1/media/${sha}`;
}

export function fmtTime(ts) {
  if (ts === null || ts === undefined || !Number.isFinite(ts)) return "";
  const d = new Date(ts * 1000);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function fmtDuration(sec) {
  if (sec === null || sec === undefined || !Number.isFinite(sec)) return "";
  sec = Math.max(0, Math.round(sec));
  const d = Math.floor(sec / 86400), hh = Math.floor((sec % 86400) / 3600), m = Math.floor((sec % 3600) / 60), s = sec % 60;
  if (d) return `${d}d ${hh}h`;
  if (hh) return `${hh}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

/** A short display of any JSON value (numbers to 5 significant digits, media by its type). */
export function fmtValue(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") {
    if (!Number.isFinite(v)) return String(v);
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(4) : String(Number(v.toPrecision(5)));
  }
  if (typeof v === "string" || typeof v === "boolean") return String(v);
  if (typeof v === "object" && !Array.isArray(v) && typeof v[TYPE_KEY] === "string") return `[${v[TYPE_KEY]}]`;
  const s = JSON.stringify(v);
  return s.length > 200 ? s.slice(0, 200) + "…" : s;
}

/** {a: {b: 1}} -> [["a.b", 1]] (media values, objects with a TYPE_KEY, and arrays are leaves). */
export function flatten(obj, prefix = "", out = []) {
  if (obj === null || typeof obj !== "object" || Array.isArray(obj) || typeof obj[TYPE_KEY] === "string") {
    if (prefix) out.push([prefix, obj]);
    return out;
  }
  const keys = Object.keys(obj);
  if (!keys.length && prefix) out.push([prefix, obj]);
  for (const k of keys) {
    // wandb's config keeps {"value": v, "desc": ...}: show the value.
    const v = obj[k];
    flatten(v && typeof v === "object" && !Array.isArray(v) && "value" in v && Object.keys(v).every((x) => x === "value" || x === "desc") ? v.value : v,
      prefix ? `${prefix}.${k}` : k, out);
  }
  return out;
}

/** The section of a key: the text before its last slash ("" for none). */
export function sectionOf(key) {
  const i = key.lastIndexOf("/");
  return i < 0 ? "" : key.slice(0, i);
}

/** A stable colour for the i-th run. */
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
export function colorOf(i) {
  return PALETTE[i % PALETTE.length];
}
