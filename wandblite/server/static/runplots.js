// Run-level plots: one point (or line) per run, from its summary and config values.
//
// * ScatterPanel: any summary or config value against any other, one point per run, coloured by a
//   third (a colour scale for numbers, one colour per value otherwise); clicking a point opens the run.
// * ParcoordsPanel: chosen config keys to one summary metric, one line per run coloured by the
//   metric; clicking a line opens its run; a box dragged over the axes selects the runs with a value
//   in it and lists them under the chart, as links. Drawn as SVG lines: plotly's parcoords trace
//   compiles WebGL code at run time, which the page's CSP (no 'unsafe-eval') refuses.
//
// Fields are named "summary.<key>" and "config.<key>" (dotted leaf paths, as the runs table and its
// filter name them). Every string from a run reaches plotly through plotText and the DOM through h().

import { clear, flatten, fmtValue, h, plotText } from "./dom.js";
import { plot, purge } from "./panels.js";
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
/** A colour from dark blue (0) to yellow (1), for a metric scaled to [0, 1]. */
function ramp(t) {
  const a = [68, 1, 84];
  const b = [253, 231, 37];
  const c = a.map((v, i) => Math.round(v + (b[i] - v) * t));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

const CATEGORY = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

// ---------------------------------------------------------------------------------------- scatter

/** What the run-level panels share: the project, their state (changed in place), onChange() when
 *  the state changed, their element, and the runs they draw (setRuns draws them again). */
class RunPlotPanel {
  constructor(project, state, onChange, id, kind) {
    this.project = project;
    this.state = state;
    this.onChange = onChange;
    this.el = h("section", { class: "panel runplot", id, dataset: { kind } });
    this.frs = [];
  }

  setRuns(frs) {
    this.frs = frs;
    this.render();
  }
}

export class ScatterPanel extends RunPlotPanel {
  /** state: {x, y, color} (fields; changed in place); onChange(): the state changed. */
  constructor(project, state, onChange) {
    super(project, state, onChange, "scatter-panel", "scatter");
  }

  render() {
    const { numeric, any } = fieldsOf(this.frs);
    const st = this.state;
    if (!numeric.includes(st.x)) st.x = numeric.find((f) => f.startsWith("config.")) || numeric[0] || "";
    if (!numeric.includes(st.y)) st.y = numeric.find((f) => f.startsWith("summary.")) || numeric[1] || numeric[0] || "";
    if (st.color && !any.includes(st.color)) st.color = "";
    const redraw = () => { this.onChange(); this.render(); };
    const plotEl = h("div", { class: "plot scatter-plot" });
    purge(this.el); // a redraw frees the old plot (and its WebGL contexts)
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

export class ParcoordsPanel extends RunPlotPanel {
  /** state: {dims: [config fields], metric: summary field} (changed in place). */
  constructor(project, state, onChange) {
    super(project, state, onChange, "parcoords-panel", "parcoords");
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
    purge(this.el); // a redraw frees the old plot (and its WebGL contexts)
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
    // Each axis scaled to [0, 1]: numbers by their range, other values by their sorted labels.
    const axes = fields.map((f) => {
      const vals = rows.map((fr) => valueOf(fr, f));
      if (vals.every((v) => v === null || isNum(v))) {
        const nums = vals.filter(isNum);
        const lo = nums.length ? Math.min(...nums) : 0;
        const hi = nums.length ? Math.max(...nums) : 1;
        return { field: f, pos: vals.map((v) => (isNum(v) ? (hi > lo ? (v - lo) / (hi - lo) : 0.5) : null)),
          shown: vals.map((v) => fmtValue(v)), ends: [fmtValue(lo), fmtValue(hi)] };
      }
      const cats = [...new Set(vals.map((v) => (v === null ? "(none)" : fmtValue(v))))].sort();
      const at = (v) => cats.indexOf(v === null ? "(none)" : fmtValue(v));
      return { field: f, pos: vals.map((v) => (cats.length > 1 ? at(v) / (cats.length - 1) : 0.5)),
        shown: vals.map((v) => (v === null ? "(none)" : fmtValue(v))), ends: [cats[0], cats[cats.length - 1]] };
    });
    const metricVals = rows.map((fr) => valueOf(fr, st.metric));
    const mlo = Math.min(...metricVals);
    const mhi = Math.max(...metricVals);
    const xs = fields.map((_f, i) => i);
    // One SVG line per run (plotly's parcoords trace needs WebGL code the page's CSP refuses to compile).
    const traces = rows.map((fr, r) => ({
      x: xs, y: axes.map((a) => a.pos[r]), type: "scatter", mode: "lines+markers", connectgaps: false,
      line: { color: ramp(mhi > mlo ? (metricVals[r] - mlo) / (mhi - mlo) : 0.5), width: 1.6 }, marker: { size: 6 },
      customdata: xs.map(() => fr.run.id), text: axes.map((a) => plotText(a.shown[r])),
      name: plotText(fr.run.name || fr.run.id), hovertemplate: "%{fullData.name}<br>%{text}<extra></extra>",
      showlegend: false, meta: { run: fr.run.id, values: axes.map((a) => a.shown[r]) },
    }));
    const annotations = axes.flatMap((a, i) => [
      { x: i, y: 1.04, text: plotText(a.ends[1]), showarrow: false, yanchor: "bottom", font: { size: 10 } },
      { x: i, y: -0.04, text: plotText(a.ends[0]), showarrow: false, yanchor: "top", font: { size: 10 } }]);
    const shapes = xs.map((i) => ({ type: "line", x0: i, x1: i, y0: 0, y1: 1, line: { color: "#888", width: 1 } }));
    const showRuns = (selected) => {
      clear(list).append(...selected.map((fr) => h("li", null,
        h("a", { href: `#/p/${enc(this.project)}/r/${enc(fr.run.id)}`, class: "run-link", dataset: { run: fr.run.id } }, fr.run.name || fr.run.id),
        h("span", { class: "muted small" }, ` ${st.metric.slice(8)} = ${fmtValue(valueOf(fr, st.metric))}`))));
      count.textContent = `${selected.length} of ${rows.length} runs selected (drag a box over an axis to select)`;
    };
    showRuns(rows);
    plot(plotEl, traces, {
      height: 380, margin: { l: 40, r: 40, t: 40, b: 70 }, hovermode: "closest", dragmode: "select",
      xaxis: { tickvals: xs, ticktext: fields.map(plotText), range: [-0.3, fields.length - 0.7], zeroline: false, showgrid: false, fixedrange: true },
      yaxis: { range: [-0.12, 1.12], visible: false, fixedrange: true }, annotations, shapes,
    }).then(() => {
      plotEl.on("plotly_click", (ev) => {
        const p = ev && ev.points && ev.points[0];
        if (p && typeof p.customdata === "string") location.hash = `#/p/${enc(this.project)}/r/${enc(p.customdata)}`;
      });
      plotEl.on("plotly_selected", (ev) => {
        const ids = new Set(((ev && ev.points) || []).map((p) => p.customdata));
        showRuns(ev && ev.points ? rows.filter((fr) => ids.has(fr.run.id)) : rows);
      });
      plotEl.on("plotly_deselect", () => showRuns(rows));
    });
  }
}
