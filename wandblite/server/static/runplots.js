// Run-level plots: one point (or line) per run, from its summary and config values.
//
// * ScatterPanel: any summary or config value against any other, one point per run, coloured by a
//   third (a colour scale for numbers, one colour per value otherwise); clicking a point opens the run.
// * ParcoordsPanel: chosen config keys to one summary metric, one line per run; brushing an axis
//   narrows the list of runs under the chart, whose links open the runs (plotly's parcoords lines
//   take no clicks).
//
// Fields are named "summary.<key>" and "config.<key>" (dotted leaf paths, as the runs table and its
// filter name them). Every string from a run reaches plotly through plotText and the DOM through h().

import { clear, flatten, fmtValue, h, plotText } from "./dom.js";
import { plot } from "./panels.js";
import { INTERNAL_PREFIX } from "./vocab.js";

const enc = encodeURIComponent;

/** A run with its config and summary flattened: {run, group, job_type, config: Map, summary: Map}. */
export function flatRun(run) {
  const scalars = (o) => new Map(flatten(o || {}).filter(([k, v]) => !k.startsWith(INTERNAL_PREFIX) && (v === null || typeof v !== "object")));
  return { run, group: run.group, job_type: run.job_type, config: scalars(run.config), summary: scalars(run.summary) };
}

/** The value of a field ("group", "job_type", "config.<key>", "summary.<key>") of a flatRun. */
export function valueOf(fr, field) {
  if (field === "group" || field === "job_type") return fr[field] ?? null;
  if (field.startsWith("config.")) return fr.config.get(field.slice(7)) ?? null;
  if (field.startsWith("summary.")) return fr.summary.get(field.slice(8)) ?? null;
  return null;
}

const isNum = (v) => typeof v === "number" && Number.isFinite(v);

/** The fields of these runs: {numeric: [...], any: [...]} (config first, then summary; sorted). */
export function fieldsOf(frs) {
  const numeric = new Set();
  const any = new Set();
  for (const fr of frs) {
    for (const [scope, m] of [["config", fr.config], ["summary", fr.summary]]) {
      for (const [k, v] of m) {
        any.add(`${scope}.${k}`);
        if (isNum(v)) numeric.add(`${scope}.${k}`);
      }
    }
  }
  const order = (a, b) => (a.startsWith("config.") === b.startsWith("config.") ? (a < b ? -1 : a > b ? 1 : 0) : a.startsWith("config.") ? -1 : 1);
  return { numeric: [...numeric].sort(order), any: [...any].sort(order) };
}

function select(id, label, options, value, onchange, blank) {
  const el = h("select", { id, "aria-label": label },
    blank !== undefined ? h("option", { value: "" }, blank) : null,
    options.map((o) => h("option", { value: o }, o)));
  el.value = options.includes(value) ? value : (blank !== undefined ? "" : options[0] ?? "");
  el.addEventListener("change", () => onchange(el.value));
  return el;
}

/** One colour per category, or a numeric scale: {colors, scale, legend: [[label, colour]]}. */
const CATEGORY = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

// ---------------------------------------------------------------------------------------- scatter

export class ScatterPanel {
  /** state: {x, y, color} (fields; changed in place); onChange(): the state changed. */
  constructor(project, state, onChange) {
    this.project = project;
    this.state = state;
    this.onChange = onChange;
    this.el = h("section", { class: "panel runplot", id: "scatter-panel", dataset: { kind: "scatter" } });
    this.frs = [];
  }

  setRuns(frs) {
    this.frs = frs;
    this.render();
  }

  render() {
    const { numeric, any } = fieldsOf(this.frs);
    const st = this.state;
    if (!numeric.includes(st.x)) st.x = numeric.find((f) => f.startsWith("config.")) || numeric[0] || "";
    if (!numeric.includes(st.y)) st.y = numeric.find((f) => f.startsWith("summary.")) || numeric[1] || numeric[0] || "";
    if (st.color && !any.includes(st.color)) st.color = "";
    const redraw = () => { this.onChange(); this.render(); };
    const plotEl = h("div", { class: "plot scatter-plot" });
    clear(this.el).append(
      h("header", { class: "panel-head runplot-head" }, "Scatter: ",
        select("scatter-x", "scatter x", numeric, st.x, (v) => { st.x = v; redraw(); }), " vs ",
        select("scatter-y", "scatter y", numeric, st.y, (v) => { st.y = v; redraw(); }), " coloured by ",
        select("scatter-color", "scatter colour", any, st.color, (v) => { st.color = v; redraw(); }, "(none)")),
      plotEl);
    if (!st.x || !st.y) {
      plotEl.append(h("p", { class: "muted" }, "No numeric config or summary values to plot."));
      return;
    }
    const pts = this.frs.filter((fr) => isNum(valueOf(fr, st.x)) && isNum(valueOf(fr, st.y)));
    const traces = [];
    const point = (list) => ({
      x: list.map((fr) => valueOf(fr, st.x)), y: list.map((fr) => valueOf(fr, st.y)),
      customdata: list.map((fr) => fr.run.id), text: list.map((fr) => plotText(fr.run.name || fr.run.id)),
      type: "scatter", mode: "markers", hovertemplate: "%{text}<br>x=%{x}<br>y=%{y}<extra></extra>",
    });
    const colorVals = st.color ? pts.map((fr) => valueOf(fr, st.color)) : [];
    if (st.color && colorVals.every((v) => v === null || isNum(v)) && colorVals.some(isNum)) {
      const t = point(pts);
      t.marker = { size: 9, color: colorVals.map((v) => (isNum(v) ? v : null)), colorscale: "Viridis", showscale: true,
        colorbar: { title: { text: plotText(st.color) } } };
      t.meta = { role: "runs" };
      traces.push(t);
    } else if (st.color) {
      const cats = new Map();
      pts.forEach((fr, i) => {
        const label = colorVals[i] === null ? "(none)" : fmtValue(colorVals[i]);
        if (!cats.has(label)) cats.set(label, []);
        cats.get(label).push(fr);
      });
      [...cats].forEach(([label, list], i) => {
        const t = point(list);
        t.name = plotText(label);
        t.marker = { size: 9, color: CATEGORY[i % CATEGORY.length] };
        t.meta = { role: "runs", category: label };
        traces.push(t);
      });
    } else {
      const t = point(pts);
      t.marker = { size: 9, color: CATEGORY[0] };
      t.meta = { role: "runs" };
      traces.push(t);
    }
    plot(plotEl, traces, {
      title: { text: `${plotText(st.y)} vs ${plotText(st.x)}`, font: { size: 13 } }, height: 360,
      xaxis: { title: { text: plotText(st.x) }, zeroline: false }, yaxis: { title: { text: plotText(st.y) }, zeroline: false },
      hovermode: "closest", showlegend: traces.length > 1, legend: { title: { text: plotText(st.color) } },
    }).then(() => {
      plotEl.on("plotly_click", (ev) => {
        const p = ev && ev.points && ev.points[0];
        if (p && typeof p.customdata === "string") location.hash = `#/p/${enc(this.project)}/r/${enc(p.customdata)}`;
      });
    });
  }
}

// ------------------------------------------------------------------------------ parallel coordinates

export class ParcoordsPanel {
  /** state: {dims: [config fields], metric: summary field} (changed in place). */
  constructor(project, state, onChange) {
    this.project = project;
    this.state = state;
    this.onChange = onChange;
    this.el = h("section", { class: "panel runplot", id: "parcoords-panel", dataset: { kind: "parcoords" } });
    this.frs = [];
  }

  setRuns(frs) {
    this.frs = frs;
    this.render();
  }

  render() {
    const { numeric, any } = fieldsOf(this.frs);
    const configs = any.filter((f) => f.startsWith("config."));
    const metrics = numeric.filter((f) => f.startsWith("summary."));
    const st = this.state;
    st.dims = (st.dims || []).filter((f) => configs.includes(f));
    if (!st.dims.length) st.dims = configs.slice(0, 4);
    if (!metrics.includes(st.metric)) st.metric = metrics[0] || "";
    const redraw = () => { this.onChange(); this.render(); };
    const dimsBox = h("span", { class: "parcoords-dims" }, configs.map((f) => {
      const cb = h("input", { type: "checkbox", checked: st.dims.includes(f), dataset: { field: f },
        onchange: () => { st.dims = cb.checked ? [...st.dims, f] : st.dims.filter((d) => d !== f); redraw(); } });
      return h("label", { class: "small" }, cb, " ", f);
    }));
    const plotEl = h("div", { class: "plot parcoords-plot" });
    const list = h("ul", { class: "parcoords-runs", id: "parcoords-runs" });
    const count = h("p", { class: "muted small", id: "parcoords-count" });
    clear(this.el).append(
      h("header", { class: "panel-head runplot-head" }, "Parallel coordinates: ", dimsBox, " → ",
        select("parcoords-metric", "parallel coordinates metric", metrics, st.metric, (v) => { st.metric = v; redraw(); })),
      plotEl, count, list);
    if (!st.metric || !st.dims.length) {
      plotEl.append(h("p", { class: "muted" }, "Choose config keys and a summary metric."));
      return;
    }
    const rows = this.frs.filter((fr) => isNum(valueOf(fr, st.metric)));
    const fields = [...st.dims, st.metric];
    const dimensions = fields.map((f) => {
      const vals = rows.map((fr) => valueOf(fr, f));
      if (vals.every((v) => v === null || isNum(v))) {
        return { label: plotText(f), values: vals.map((v) => (isNum(v) ? v : NaN)) };
      }
      const cats = [...new Set(vals.map((v) => (v === null ? "(none)" : fmtValue(v))))].sort();
      return { label: plotText(f), values: vals.map((v) => cats.indexOf(v === null ? "(none)" : fmtValue(v))),
        tickvals: cats.map((_c, i) => i), ticktext: cats.map(plotText), range: [0, Math.max(1, cats.length - 1)] };
    });
    const metricVals = rows.map((fr) => valueOf(fr, st.metric));
    const showRuns = (selected) => {
      clear(list).append(...selected.map((fr) => h("li", null,
        h("a", { href: `#/p/${enc(this.project)}/r/${enc(fr.run.id)}`, class: "run-link", dataset: { run: fr.run.id } }, fr.run.name || fr.run.id),
        h("span", { class: "muted small" }, ` ${st.metric.slice(8)} = ${fmtValue(valueOf(fr, st.metric))}`))));
      count.textContent = `${selected.length} of ${rows.length} runs in the brushed ranges`;
    };
    showRuns(rows);
    plot(plotEl, [{ type: "parcoords", dimensions, line: { color: metricVals, colorscale: "Viridis", showscale: true },
      meta: { runs: rows.map((fr) => fr.run.id) } }], { height: 380, margin: { l: 70, r: 70, t: 50, b: 30 } }).then(() => {
      plotEl.on("plotly_restyle", () => {
        const dims = plotEl.data[0].dimensions || [];
        const inRange = (v, cr) => {
          if (!cr || !cr.length) return true;
          const ranges = Array.isArray(cr[0]) ? cr : [cr];
          return ranges.some(([a, b]) => v >= a && v <= b);
        };
        showRuns(rows.filter((_fr, i) => dims.every((d) => inRange(d.values[i], d.constraintrange))));
      });
    });
  }
}
