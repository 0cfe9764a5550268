// The grouped workspace of a project (#/p/<project>/groups): the runs table and every chart grouped
// by `group`, `job_type` or config keys (one or two levels), plus the run-level plots (runplots.js).
//
// * A group is drawn as its mean (or median) with a band (min..max or mean +- standard deviation, or
//   none) and its member count in the legend. The numbers come from the server's grouped-series
//   endpoint (group_query.py: the runs' points aligned on x buckets, one request per group), so a
//   group of 100 runs of 1M points each ships a few hundred points. Smoothing applies to what is
//   drawn: the aggregate line and both band edges, each smoothed alike (as W&B does).
// * Expanding a group (its row in the table) lists its runs, and draws them as thin lines in the charts.
// * getGroupingState() / setGroupingState(s): the view's state (group-by keys, aggregate, band,
//   smoothing, x axis, expanded groups, scatter and parallel-coordinates axes) as one plain object,
//   for saved workspaces.
//
// Safety: group names, config keys and values are untrusted: DOM through h(), plotly through plotText.

import { api } from "./api.js";
import { clear, colorOf, fmtValue, h, plotText } from "./dom.js";
import { ema, plot, purge, rgba } from "./panels.js";
import { ParcoordsPanel, ScatterPanel, fieldsOf, flatRun, valueOf } from "./runplots.js";
import { RESERVED_KEYS, STEP } from "./vocab.js";

const enc = encodeURIComponent;
const MAX_CHARTS = 24; // metric panels drawn
const MAX_LINES = 30; // groups (or ungrouped runs) drawn per chart
const MAX_MEMBER_LINES = 10; // runs of an expanded group drawn as thin lines
const KEYS_PER_REQUEST = 20; // group_query.MAX_GROUP_KEYS
const BUCKETS = 500;
const NONE = "(none)";

function defaultState() {
  return { groupBy: [], aggregate: "mean", band: "minmax", smoothing: 0, xAxis: STEP, expanded: [],
    scatter: { x: "", y: "", color: "" }, parcoords: { dims: [], metric: "" } };
}

const state = defaultState();
let redrawLive = null; // the shown view's redraw (null when the view is not shown)

/** A copy of the view's state (plain JSON). */
export function getGroupingState() {
  return JSON.parse(JSON.stringify(state));
}

/** Restore a state from getGroupingState (unknown or ill-typed fields keep their defaults). */
export function setGroupingState(s) {
  const d = defaultState();
  const src = s && typeof s === "object" ? s : {};
  const str = (v, dflt) => (typeof v === "string" ? v : dflt);
  state.groupBy = Array.isArray(src.groupBy) ? src.groupBy.filter((g) => typeof g === "string").slice(0, 2) : d.groupBy;
  state.aggregate = ["mean", "median"].includes(src.aggregate) ? src.aggregate : d.aggregate;
  state.band = ["minmax", "std", "none"].includes(src.band) ? src.band : d.band;
  state.smoothing = typeof src.smoothing === "number" && src.smoothing >= 0 && src.smoothing < 1 ? src.smoothing : d.smoothing;
  state.xAxis = str(src.xAxis, d.xAxis) || d.xAxis;
  state.expanded = Array.isArray(src.expanded) ? src.expanded.filter((g) => typeof g === "string") : d.expanded;
  const sc = src.scatter && typeof src.scatter === "object" ? src.scatter : {};
  state.scatter = { x: str(sc.x, ""), y: str(sc.y, ""), color: str(sc.color, "") };
  const pc = src.parcoords && typeof src.parcoords === "object" ? src.parcoords : {};
  state.parcoords = { dims: Array.isArray(pc.dims) ? pc.dims.filter((f) => typeof f === "string") : [], metric: str(pc.metric, "") };
  if (redrawLive) redrawLive();
}

// ----------------------------------------------------------------------------------- the groups

const label = (v) => (v === null || v === undefined ? NONE : fmtValue(v));

/**
 * Runs grouped by the fields `by` (one or two): [{id, label, values, runs, children}], in the order
 * of first appearance; a leaf group has no children. `id` is JSON of the values (stable, unique).
 */
export function groupRuns(frs, by) {
  const level = (list, depth, prefix) => {
    const groups = new Map();
    for (const fr of list) {
      const v = label(valueOf(fr, by[depth]));
      if (!groups.has(v)) groups.set(v, []);
      groups.get(v).push(fr);
    }
    return [...groups].map(([v, members]) => {
      const values = [...prefix, v];
      const g = { id: JSON.stringify(values), label: values.join(" / "), values, runs: members, children: null };
      if (depth + 1 < by.length) g.children = level(members, depth + 1, values);
      return g;
    });
  };
  return by.length ? level(frs, 0, []) : [];
}

function leaves(groups) {
  return groups.flatMap((g) => (g.children ? leaves(g.children) : [g]));
}

// ------------------------------------------------------------------------------------- the view

export async function groupsView(project, root, onLeave, projectLinks) {
  let alive = true;
  onLeave(() => { alive = false; redrawLive = null; purge(root); });
  const { runs } = await api.runs(project, { limit: 10000, order: "-created_at" });
  const frs = runs.map(flatRun);
  const { numeric, any } = fieldsOf(frs);
  const groupFields = ["group", "job_type", ...any.filter((f) => f.startsWith("config."))];
  const metricKeys = [...new Set(numeric.filter((f) => f.startsWith("summary.")).map((f) => f.slice(8)))]
    .filter((k) => !RESERVED_KEYS.includes(k)).sort();

  const toolbar = h("div", { class: "toolbar workspace-toolbar", id: "group-toolbar" });
  const table = h("div", { class: "table-scroll", id: "group-table" });
  const charts = h("div", { class: "panels", id: "group-charts" });
  const note = h("p", { class: "muted small", id: "group-note" });
  const scatter = new ScatterPanel(project, state.scatter, () => {});
  const parcoords = new ParcoordsPanel(project, state.parcoords, () => {});
  clear(root).append(
    h("h1", null, project),
    projectLinks(project, "groups"),
    toolbar, table, note, charts,
    h("h2", null, "Run-level plots"), h("div", { class: "panels runplots" }, scatter.el, parcoords.el));

  const cache = new Map(); // `${runIds}|${xAxis}` -> Promise of {key: series}
  const fetchSeries = (ids, keys) => {
    const k = `${ids.join(",")}|${state.xAxis}`;
    if (!cache.has(k)) {
      const parts = [];
      for (let i = 0; i < keys.length; i += KEYS_PER_REQUEST) parts.push(api.groupedSeries(project, ids, keys.slice(i, i + KEYS_PER_REQUEST), state.xAxis, BUCKETS));
      cache.set(k, Promise.all(parts).then((answers) => Object.assign({}, ...answers.map((a) => a.series))));
    }
    return cache.get(k);
  };

  function renderToolbar() {
    const opts = (list, value, blank) => {
      const el = h("select", null, blank ? h("option", { value: "" }, blank) : null, list.map((f) => h("option", { value: f }, f)));
      el.value = list.includes(value) ? value : "";
      return el;
    };
    const g1 = opts(groupFields, state.groupBy[0], "no grouping");
    const g2 = opts(groupFields, state.groupBy[1], "(one level)");
    g1.id = "group-by-1"; g1.setAttribute("aria-label", "group by");
    g2.id = "group-by-2"; g2.setAttribute("aria-label", "then group by");
    g2.disabled = !state.groupBy[0];
    const setGroupBy = () => {
      state.groupBy = [g1.value, g1.value ? g2.value : ""].filter(Boolean);
      state.expanded = [];
      draw();
    };
    g1.addEventListener("change", setGroupBy);
    g2.addEventListener("change", setGroupBy);
    const agg = h("select", { id: "group-aggregate", "aria-label": "aggregate" }, h("option", { value: "mean" }, "mean"), h("option", { value: "median" }, "median"));
    agg.value = state.aggregate;
    agg.addEventListener("change", () => { state.aggregate = agg.value; drawCharts(); });
    const band = h("select", { id: "group-band", "aria-label": "band" }, h("option", { value: "minmax" }, "min–max"),
      h("option", { value: "std" }, "± std dev"), h("option", { value: "none" }, "no band"));
    band.value = state.band;
    band.addEventListener("change", () => { state.band = band.value; drawCharts(); });
    const xs = [...RESERVED_KEYS, ...metricKeys];
    const xSel = h("select", { id: "group-x-axis", "aria-label": "x axis" }, xs.map((k) => h("option", { value: k }, k)));
    xSel.value = xs.includes(state.xAxis) ? state.xAxis : STEP;
    xSel.addEventListener("change", () => { state.xAxis = xSel.value; drawCharts(); });
    const smoothVal = h("span", { class: "small" }, String(state.smoothing));
    const smooth = h("input", { type: "range", min: 0, max: 0.99, step: 0.01, value: state.smoothing, id: "group-smoothing", "aria-label": "smoothing" });
    smooth.addEventListener("input", () => { state.smoothing = Number(smooth.value); smoothVal.textContent = smooth.value; drawCharts(); });
    clear(toolbar).append(h("label", null, "group by ", g1), h("label", null, "then ", g2), h("label", null, "line ", agg),
      h("label", null, "band ", band), h("label", null, "x ", xSel), h("label", null, "smoothing ", smooth, " ", smoothVal));
  }

  function renderTable(groups) {
    const sums = metricKeys.slice(0, 6);
    const meanOf = (list, k) => {
      const v = list.map((fr) => fr.summary.get(k)).filter((x) => typeof x === "number" && Number.isFinite(x));
      return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
    };
    const rows = [];
    const runRow = (fr, depth) => h("tr", { class: "group-member", dataset: { run: fr.run.id } },
      h("td", { class: `name depth-${depth}` }, h("a", { href: `#/p/${enc(project)}/r/${enc(fr.run.id)}`, class: "run-link" }, fr.run.name || fr.run.id)),
      h("td", null, fr.run.state || ""), h("td", { class: "num" }, ""),
      sums.map((k) => h("td", { class: "num" }, fmtValue(fr.summary.get(k)))));
    const groupRow = (g, depth) => {
      const open = state.expanded.includes(g.id);
      const toggle = h("button", { type: "button", class: "group-toggle", "aria-expanded": String(open), "aria-label": `expand ${g.label}`,
        onclick: () => {
          state.expanded = open ? state.expanded.filter((x) => x !== g.id) : [...state.expanded, g.id];
          draw();
        } }, open ? "▾" : "▸");
      rows.push(h("tr", { class: "group-row", dataset: { group: g.id } },
        h("td", { class: `name depth-${depth}` }, toggle, " ", h("span", { class: "group-label" }, g.values[g.values.length - 1])),
        h("td", null, ""), h("td", { class: "num group-count" }, String(g.runs.length)),
        sums.map((k) => h("td", { class: "num", title: "mean over the group's runs" }, fmtValue(meanOf(g.runs, k))))));
      if (!open) return;
      if (g.children) g.children.forEach((c) => groupRow(c, depth + 1));
      else g.runs.forEach((fr) => rows.push(runRow(fr, depth + 1)));
    };
    if (groups.length) groups.forEach((g) => groupRow(g, 0));
    else frs.forEach((fr) => rows.push(runRow(fr, 0)));
    clear(table).append(h("table", { class: "data runs grouped" },
      h("thead", null, h("tr", null, h("th", null, state.groupBy.length ? `${state.groupBy.join(" / ")} / run` : "run"),
        h("th", null, "state"), h("th", { class: "num" }, "runs"), sums.map((k) => h("th", { class: "num" }, k)))),
      h("tbody", null, rows)));
  }

  let drawn = 0; // the latest chart drawing; older answers are dropped
  async function drawCharts() {
    const token = ++drawn;
    const groups = groupRuns(frs, state.groupBy);
    const lines = state.groupBy.length ? leaves(groups).map((g) => ({ id: g.id, label: g.label, runs: g.runs }))
      : frs.map((fr) => ({ id: JSON.stringify([fr.run.id]), label: fr.run.name || fr.run.id, runs: [fr] }));
    const shown = lines.slice(0, MAX_LINES);
    const keys = metricKeys.slice(0, MAX_CHARTS);
    note.textContent = [lines.length > MAX_LINES ? `${MAX_LINES} of ${lines.length} lines drawn.` : "",
      metricKeys.length > MAX_CHARTS ? `${MAX_CHARTS} of ${metricKeys.length} metrics charted.` : ""].filter(Boolean).join(" ");
    if (!keys.length) {
      purge(charts);
      clear(charts).append(h("p", { class: "muted" }, "No numeric metrics in these runs' summaries."));
      return;
    }
    const members = shown.filter((l) => state.groupBy.length && state.expanded.includes(l.id))
      .flatMap((l) => l.runs.slice(0, MAX_MEMBER_LINES).map((fr) => ({ line: l, fr })));
    const [agg, each] = await Promise.all([
      Promise.all(shown.map((l) => fetchSeries(l.runs.map((fr) => fr.run.id), keys))),
      Promise.all(members.map((m) => fetchSeries([m.fr.run.id], keys))),
    ]);
    if (!alive || token !== drawn) return;
    const panels = new Map([...charts.querySelectorAll(".group-panel")].map((p) => [p.dataset.key, p]));
    if (charts.querySelector(".muted")) clear(charts);
    for (const key of keys) {
      let panel = panels.get(key);
      if (!panel) {
        panel = h("section", { class: "panel group-panel", dataset: { key, kind: "grouped" } }, h("div", { class: "plot line-plot" }));
        charts.append(panel);
      }
      const traces = [];
      shown.forEach((l, i) => {
        const s = agg[i][key];
        if (!s || !s.x.length) return;
        traces.push(...groupTraces(l, s, colorOf(i), state.groupBy.length > 0));
        members.forEach((m, j) => {
          if (m.line !== l) return;
          const r = each[j][key];
          if (!r || !r.x.length) return;
          traces.push({ x: r.x, y: smooth(r.mean), mode: "lines", line: { color: colorOf(i), width: 0.8, dash: "dot" },
            name: plotText(m.fr.run.name || m.fr.run.id), showlegend: false, meta: { group: l.id, run: m.fr.run.id, role: "member" } });
        });
      });
      panel.hidden = !traces.length; // a summary value never logged as history has no chart
      plot(panel.firstChild, traces, {
        title: { text: plotText(key), font: { size: 13 } }, height: 320, margin: { l: 55, r: 15, t: 36, b: 80 },
        hovermode: "x unified", showlegend: true, legend: { orientation: "h", x: 0, y: -0.22, yanchor: "top" },
        xaxis: { title: { text: plotText(state.xAxis) }, zeroline: false }, yaxis: { zeroline: false, exponentformat: "e" },
        uirevision: `${key}|${state.xAxis}`,
      });
    }
  }

  function draw() {
    renderToolbar();
    renderTable(groupRuns(frs, state.groupBy));
    scatter.state = state.scatter;
    parcoords.state = state.parcoords;
    scatter.setRuns(frs);
    parcoords.setRuns(frs);
    drawCharts().catch((e) => { if (alive) note.textContent = e.message; });
  }

  redrawLive = () => { if (alive) draw(); };
  draw();
}

const smooth = (ys) => (state.smoothing > 0 ? ema(ys, state.smoothing) : ys);

/** A group's traces: its band (upper edge, then lower edge filled to it) and its aggregate line. */
function groupTraces(line, s, color, grouped) {
  const n = line.runs.length;
  const y = s[state.aggregate];
  const out = [];
  let lo = null;
  let hi = null;
  if (grouped && state.band === "minmax") [lo, hi] = [s.min, s.max];
  else if (grouped && state.band === "std") [lo, hi] = [s.mean.map((m, i) => m - s.std[i]), s.mean.map((m, i) => m + s.std[i])];
  const meta = { group: line.id, runs: n, aggregate: state.aggregate, band: state.band };
  if (lo && hi) {
    out.push({ x: s.x, y: smooth(hi), mode: "lines", line: { width: 0, color }, hoverinfo: "skip", showlegend: false, meta: { ...meta, role: "band-upper" } });
    out.push({ x: s.x, y: smooth(lo), mode: "lines", line: { width: 0, color }, fill: "tonexty", fillcolor: rgba(color, 0.18),
      hoverinfo: "skip", showlegend: false, meta: { ...meta, role: "band-lower" } });
  }
  if (state.smoothing > 0) {
    out.push({ x: s.x, y, mode: "lines", line: { color, width: 1 }, opacity: 0.3, hoverinfo: "skip", showlegend: false, meta: { ...meta, role: "raw" } });
  }
  out.push({ x: s.x, y: smooth(y), mode: s.x.length === 1 ? "markers" : "lines", line: { color, width: 2 },
    name: grouped ? `${plotText(line.label)} (${n})` : plotText(line.label), meta: { ...meta, role: "aggregate" },
    customdata: s.n, hovertemplate: grouped ? `%{y} (%{customdata} of ${n} runs)` : undefined });
  return out;
}

