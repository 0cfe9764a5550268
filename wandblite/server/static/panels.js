// Workspace panels: line charts, media with a step slider, histograms over steps, tables,
// preset charts (PR, ROC, confusion matrix, ...), 3D objects and HTML.
//
// Lazy drawing: a workspace draws a line chart when it comes near the viewport and undraws it
// (plotly purged, its height kept) when it goes far away, so a workspace of hundreds of panels
// holds only the plots near what is on screen (see Workspace.onVisible in app.js).
//
// Safety: every string from a run goes into the DOM as text (dom.js `h`) and into plotly
// through `plotText` (plotly renders a subset of HTML in titles, legends and hover labels).
// HTML media is shown only in an <iframe sandbox=""> (no scripts, opaque origin, the page's
// CSP inherited) through srcdoc; see renderHtml.

import { api } from "./api.js";
import { clear, colorOf, fmtValue, h, mediaUrl, plotText } from "./dom.js";
import { STEP, TYPE_KEY } from "./vocab.js";

const PLOT_CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["sendDataToCloud", "lasso2d", "select2d"] };

function plotly() {
  if (!window.Plotly) throw new Error("plotly.js did not load: install the server extra (pip install 'wandblite[server]')");
  return window.Plotly;
}

/** Draw (or redraw, keeping zoom through uirevision) a plotly figure into el. */
export function plot(el, data, layout) {
  const base = {
    margin: { l: 55, r: 15, t: 36, b: 40 },
    font: { family: "system-ui, sans-serif", size: 11 },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "#fff",
    autosize: true,
  };
  return plotly().react(el, data, { ...base, ...layout }, PLOT_CONFIG);
}

export function purge(el) {
  if (window.Plotly) el.querySelectorAll(".js-plotly-plot").forEach((p) => window.Plotly.purge(p));
}

const finite = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);

/** Exponential moving average with TensorBoard's debiasing; gaps (null) are kept. */
export function ema(ys, weight) {
  if (!(weight > 0)) return ys.slice();
  let last = 0;
  let n = 0;
  return ys.map((y) => {
    if (y === null || !Number.isFinite(y)) return null;
    last = last * weight + (1 - weight) * y;
    n += 1;
    return last / (1 - Math.pow(weight, n));
  });
}

export function rgba(hex, a) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${a})`;
}

function panelShell(key, kindLabel) {
  const body = h("div", { class: "panel-body" });
  const tools = h("div", { class: "panel-tools" }); // filled by the workspace (size, hide)
  const el = h("section", { class: "panel", dataset: { key, kind: kindLabel } }, tools,
    h("header", { class: "panel-head" }, h("span", { class: "panel-title", title: key }, key)), body);
  return { el, body, tools };
}

// ------------------------------------------------------------------------------------------ lines

/** A line chart of one numeric key, one trace per run (plus a min/max band when downsampled). */
export class LinePanel {
  constructor(key) {
    this.key = key;
    const { el, body, tools } = panelShell(key, "number");
    this.el = el;
    this.tools = tools;
    this.plotEl = h("div", { class: "plot line-plot" });
    body.append(this.plotEl);
    this.series = new Map(); // run id -> {x, y, y_min, y_max, count}
  }

  set(runId, s) {
    if (s) this.series.set(runId, s);
    else this.series.delete(runId);
  }

  /** Free the plot (far off screen); its height stays, the next draw() brings it back. */
  undraw() {
    if (window.Plotly) window.Plotly.purge(this.plotEl);
    clear(this.plotEl);
  }

  draw(runs, settings) {
    const traces = [];
    runs.forEach((run, i) => {
      const s = this.series.get(run.id);
      if (!s || !s.x || !s.x.length) return;
      const color = colorOf(i);
      const y = s.y.map(finite);
      const name = plotText(run.name || run.id);
      const down = s.y_min && s.y_max && s.count > s.x.length;
      if (down) {
        traces.push({ x: s.x, y: s.y_max.map(finite), mode: "lines", line: { width: 0, color }, hoverinfo: "skip", showlegend: false,
          meta: { run: run.id, role: "max" } });
        traces.push({ x: s.x, y: s.y_min.map(finite), mode: "lines", line: { width: 0, color }, fill: "tonexty",
          fillcolor: rgba(color, 0.15), hoverinfo: "skip", showlegend: false, meta: { run: run.id, role: "min" } });
      }
      const smooth = settings.smoothing > 0;
      traces.push({ x: s.x, y, mode: s.x.length === 1 ? "markers" : "lines", name, legendgroup: run.id,
        line: { color, width: smooth ? 1 : 1.6 }, opacity: smooth ? 0.3 : 1, showlegend: !smooth,
        hoverinfo: smooth ? "skip" : undefined, meta: { run: run.id, role: "raw" } });
      if (smooth) {
        traces.push({ x: s.x, y: ema(y, settings.smoothing), mode: "lines", name, legendgroup: run.id,
          line: { color, width: 1.8 }, meta: { run: run.id, role: "smoothed" } });
      }
    });
    const height = runs.length > 1 ? 300 : 270;
    this.plotEl.style.minHeight = `${height}px`; // kept when undrawn, so the page does not jump
    return plot(this.plotEl, traces, {
      title: { text: plotText(this.key), font: { size: 13 } },
      height,
      margin: { l: 55, r: 15, t: 36, b: runs.length > 1 ? 80 : 40 },
      hovermode: "x unified",
      showlegend: runs.length > 1,
      legend: { orientation: "h", x: 0, y: -0.22, yanchor: "top" },
      xaxis: { title: { text: plotText(settings.xAxis) }, zeroline: false },
      yaxis: { type: settings.logY ? "log" : "linear", zeroline: false, exponentformat: "e" },
      uirevision: `${this.key}|${settings.xAxis}|${settings.logY}`,
    });
  }
}

// ------------------------------------------------------------------------------------------ media

const BOX_COLORS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c", "#fabebe", "#008080"];

/** An image-file value with its caption, boxes and masks overlaid. */
export function renderImage(v, { thumb = false } = {}) {
  const w = Number(v.width) || 0;
  const hgt = Number(v.height) || 0;
  const img = h("img", { src: mediaUrl(v.sha256), alt: v.caption ?? "", loading: "lazy", decoding: "async" });
  if (w && hgt) {
    img.width = w;
    img.height = hgt;
  }
  const stage = h("div", { class: "img-stage" }, img);
  if (w && !thumb) stage.style.width = `${Math.max(w, Math.min(256, w * 8))}px`;
  const fig = h("figure", { class: thumb ? "media-image thumb" : "media-image" }, stage);
  if (v.caption !== undefined && v.caption !== null && !thumb) fig.append(h("figcaption", { class: "caption" }, String(v.caption)));
  if (thumb) return fig;
  const toggles = h("div", { class: "overlay-toggles" });
  const layer = (name, node) => {
    stage.append(node);
    const cb = h("input", { type: "checkbox", checked: true, onchange: () => { node.style.display = cb.checked ? "" : "none"; } });
    toggles.append(h("label", null, cb, " ", name));
  };
  if (v.masks && typeof v.masks === "object") {
    for (const [name, m] of Object.entries(v.masks)) {
      if (!m || typeof m.sha256 !== "string") continue;
      const canvas = h("canvas", { class: "overlay mask", dataset: { name } });
      layer(`mask: ${name}`, canvas);
      drawMask(canvas, m, w, hgt).catch((e) => canvas.replaceWith(h("span", { class: "error" }, e.message)));
    }
  }
  if (v.boxes && typeof v.boxes === "object") {
    for (const [name, ref] of Object.entries(v.boxes)) {
      if (!ref || typeof ref.sha256 !== "string") continue;
      const boxLayer = h("div", { class: "overlay boxes", dataset: { name } });
      layer(`boxes: ${name}`, boxLayer);
      api.mediaJson(ref.sha256).then((data) => drawBoxes(boxLayer, data, w || 1, hgt || 1))
        .catch((e) => fig.append(h("span", { class: "error" }, e.message)));
    }
  }
  if (toggles.childNodes.length) fig.append(toggles);
  return fig;
}

function drawBoxes(root, data, w, hgt) {
  // Boxes are HTML elements placed in percent of the image, so labels keep a readable size.
  const labels = (data && data.class_labels) || {};
  for (const b of (data && data.box_data) || []) {
    const p = b.position || {};
    let x0, x1, y0, y1;
    if ("minX" in p) [x0, x1, y0, y1] = [p.minX, p.maxX, p.minY, p.maxY];
    else if (Array.isArray(p.middle)) {
      [x0, x1] = [p.middle[0] - p.width / 2, p.middle[0] + p.width / 2];
      [y0, y1] = [p.middle[1] - p.height / 2, p.middle[1] + p.height / 2];
    } else continue;
    if (b.domain === "pixel") [x0, x1, y0, y1] = [x0 / w, x1 / w, y0 / hgt, y1 / hgt];
    if (![x0, x1, y0, y1].every(Number.isFinite)) continue;
    const color = BOX_COLORS[Math.abs(Number(b.class_id) || 0) % BOX_COLORS.length];
    let label = String(b.box_caption ?? labels[String(b.class_id)] ?? b.class_id);
    if (b.scores && typeof b.scores === "object") {
      label += " " + Object.entries(b.scores).map(([k, s]) => `${k}=${fmtValue(s)}`).join(" ");
    }
    const pct = (f) => `${(f * 100).toFixed(3)}%`;
    const box = h("div", { class: "box" }, h("span", { class: "box-label" }, label));
    Object.assign(box.style, { left: pct(x0), top: pct(y0), width: pct(Math.max(0, x1 - x0)), height: pct(Math.max(0, y1 - y0)), borderColor: color });
    box.firstChild.style.background = color;
    root.append(box);
  }
}

async function drawMask(canvas, m, w, hgt) {
  const img = new Image();
  img.src = mediaUrl(m.sha256);
  await img.decode();
  const W = img.naturalWidth, H = img.naturalHeight;
  canvas.width = W;
  canvas.height = H;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0);
  const px = ctx.getImageData(0, 0, W, H);
  const d = px.data;
  for (let i = 0; i < d.length; i += 4) {
    const cls = d[i]; // an 8-bit PNG of class ids: every channel holds the id
    if (cls === 0) {
      d[i + 3] = 0;
      continue;
    }
    const c = parseInt(BOX_COLORS[cls % BOX_COLORS.length].slice(1), 16);
    d[i] = (c >> 16) & 255;
    d[i + 1] = (c >> 8) & 255;
    d[i + 2] = c & 255;
    d[i + 3] = 110;
  }
  ctx.putImageData(px, 0, 0);
  if (m.class_labels && typeof m.class_labels === "object") canvas.title = Object.entries(m.class_labels).map(([k, v]) => `${k}: ${v}`).join(", ");
  void w; void hgt;
}

function extOf(v) {
  const p = String(v.path || "");
  const base = p.slice(p.lastIndexOf("/") + 1).toLowerCase();
  return base.includes(".") ? base.slice(base.indexOf(".") + 1) : String(v.format || "");
}

function renderVideo(v) {
  const ext = extOf(v);
  const node = ext === "gif" ? h("img", { src: mediaUrl(v.sha256), alt: v.caption ?? "video" })
    : h("video", { src: mediaUrl(v.sha256), controls: true, preload: "metadata", loop: true });
  return h("figure", { class: "media-video" }, node, v.caption != null ? h("figcaption", { class: "caption" }, String(v.caption)) : null);
}

function renderAudio(v) {
  const info = [v.sample_rate ? `${v.sample_rate} Hz` : "", Number.isFinite(v.duration) ? `${fmtValue(v.duration)} s` : ""].filter(Boolean).join(", ");
  return h("figure", { class: "media-audio" }, h("audio", { src: mediaUrl(v.sha256), controls: true, preload: "metadata" }),
    h("figcaption", { class: "caption" }, [v.caption ?? "", info].filter(Boolean).join(" · ")));
}

function renderHtml(v) {
  // The server sends HTML media as an attachment (so it never renders in its origin); a frame
  // pointed at that URL would only start a download. So the text is fetched and shown through
  // srcdoc in an <iframe sandbox="">: no scripts, forms, popups or top navigation, an opaque
  // origin, and the page's own CSP (script-src 'self') inherited. Never allow-scripts or
  // allow-same-origin.
  const frame = h("iframe", { class: "media-html", sandbox: "", referrerpolicy: "no-referrer", title: "logged HTML (sandboxed)" });
  const url = mediaUrl(v.sha256);
  fetch(url, { credentials: "same-origin" }).then((r) => (r.ok ? r.text() : Promise.reject(new Error(`HTTP ${r.status}`))))
    .then((text) => { frame.srcdoc = text; })
    .catch((e) => frame.replaceWith(h("span", { class: "error" }, `cannot load the HTML: ${e.message}`)));
  return h("div", { class: "media-html-wrap" }, frame, h("a", { href: url, class: "small", download: "" }, "download HTML"));
}

/** A table-file value: fetched, paged, media cells as thumbnails. */
function renderTable(v, pageSize = 10) {
  const wrap = h("div", { class: "media-table" }, h("p", { class: "muted" }, "loading table…"));
  api.mediaJson(v.sha256).then((t) => {
    const cols = Array.isArray(t.columns) ? t.columns : [];
    const rows = Array.isArray(t.data) ? t.data : [];
    let page = 0;
    const pages = Math.max(1, Math.ceil(rows.length / pageSize));
    const tbody = h("tbody");
    const info = h("span", { class: "muted" });
    const prev = h("button", { type: "button", onclick: () => { page = Math.max(0, page - 1); fill(); } }, "‹");
    const next = h("button", { type: "button", onclick: () => { page = Math.min(pages - 1, page + 1); fill(); } }, "›");
    const fill = () => {
      clear(tbody);
      for (const r of rows.slice(page * pageSize, (page + 1) * pageSize)) {
        tbody.append(h("tr", null, (Array.isArray(r) ? r : [r]).map((c) => h("td", null, renderCell(c)))));
      }
      info.textContent = `rows ${rows.length ? page * pageSize + 1 : 0}–${Math.min(rows.length, (page + 1) * pageSize)} of ${rows.length}`;
      prev.disabled = page === 0;
      next.disabled = page >= pages - 1;
    };
    fill();
    clear(wrap).append(h("div", { class: "table-scroll" },
      h("table", { class: "data" }, h("thead", null, h("tr", null, cols.map((c) => h("th", null, String(c))))), tbody)),
    h("div", { class: "pager" }, prev, info, next));
  }).catch((e) => clear(wrap).append(h("span", { class: "error" }, e.message)));
  return wrap;
}

function renderCell(c) {
  if (c && typeof c === "object" && !Array.isArray(c) && typeof c[TYPE_KEY] === "string") {
    try {
      if (c[TYPE_KEY] === "image-file") return renderImage(c, { thumb: true });
      if (c[TYPE_KEY] === "audio-file") return renderAudio(c);
      if (c[TYPE_KEY] === "video-file") return renderVideo(c);
    } catch {
      // an unusable reference: fall through to its type name
    }
    return `[${c[TYPE_KEY]}]`;
  }
  if (Array.isArray(c) && c.length && c[0] && typeof c[0] === "object" && typeof c[0][TYPE_KEY] === "string") {
    return h("span", null, c.map(renderCell));
  }
  return fmtValue(c);
}

/** A preset chart (wandblite.plot.*) drawn from its table. */
function renderChart(v) {
  const el = h("div", { class: "plot chart-plot" });
  const ref = v.table || {};
  api.mediaJson(ref.sha256).then((t) => drawChart(el, v, t)).catch((e) => el.append(h("span", { class: "error" }, e.message)));
  return el;
}

function columnOf(t, name) {
  const i = (t.columns || []).indexOf(name);
  return i < 0 ? [] : (t.data || []).map((r) => r[i]);
}

function groupBy(keys, xs, ys) {
  const g = new Map();
  keys.forEach((k, i) => {
    const key = String(k);
    if (!g.has(key)) g.set(key, { x: [], y: [] });
    g.get(key).x.push(xs[i]);
    g.get(key).y.push(ys[i]);
  });
  return g;
}

function drawChart(el, v, t) {
  const f = v.fields || {};
  const title = { text: plotText(v.title || v.kind), font: { size: 13 } };
  const col = (role) => columnOf(t, f[role]);
  let data = [];
  const layout = { title, height: 320, xaxis: {}, yaxis: {} };
  switch (v.kind) {
    case "pr_curve":
    case "roc_curve": {
      const g = groupBy(col("class"), col("x"), col("y"));
      data = [...g].map(([name, s], i) => ({ x: s.x, y: s.y, mode: "lines", name: plotText(name), line: { color: colorOf(i) } }));
      if (v.kind === "roc_curve") data.push({ x: [0, 1], y: [0, 1], mode: "lines", line: { dash: "dot", color: "#aaa" }, hoverinfo: "skip", showlegend: false });
      layout.xaxis = { title: { text: plotText(f.x) }, range: [0, 1.02] };
      layout.yaxis = { title: { text: plotText(f.y) }, range: [0, 1.02] };
      break;
    }
    case "confusion_matrix": {
      const act = col("Actual").map(String), pred = col("Predicted").map(String), n = col("nPredictions");
      const names = [...new Set([...act, ...pred])];
      const z = names.map(() => names.map(() => 0));
      act.forEach((a, i) => { z[names.indexOf(a)][names.indexOf(pred[i])] += Number(n[i]) || 0; });
      const labels = names.map(plotText);
      data = [{ type: "heatmap", x: labels, y: labels, z, colorscale: "Blues", hovertemplate: "actual %{y}<br>predicted %{x}<br>%{z}<extra></extra>",
        text: z.map((r) => r.map(String)), texttemplate: "%{text}" }];
      layout.xaxis = { title: { text: "Predicted" }, type: "category" };
      layout.yaxis = { title: { text: "Actual" }, type: "category", autorange: "reversed" };
      break;
    }
    case "line":
    case "scatter": {
      const mode = v.kind === "line" ? "lines" : "markers";
      if (f.stroke) data = [...groupBy(col("stroke"), col("x"), col("y"))].map(([name, s]) => ({ x: s.x, y: s.y, mode, name: plotText(name) }));
      else data = [{ x: col("x"), y: col("y"), mode }];
      layout.xaxis = { title: { text: plotText(f.x) } };
      layout.yaxis = { title: { text: plotText(f.y) } };
      break;
    }
    case "bar":
      data = [{ type: "bar", x: col("label").map((s) => plotText(s)), y: col("value") }];
      layout.xaxis = { type: "category" };
      break;
    case "histogram":
      data = [{ type: "histogram", x: col("value") }];
      layout.xaxis = { title: { text: plotText(f.value) } };
      break;
    case "line_series": {
      data = [...groupBy(col("lineKey"), col("step"), col("lineVal"))].map(([name, s]) => ({ x: s.x, y: s.y, mode: "lines", name: plotText(name) }));
      layout.xaxis = { title: { text: plotText((v.string_fields || {}).xname || "x") } };
      break;
    }
    default:
      el.append(h("span", { class: "muted" }, `chart kind ${v.kind} is not drawn here`));
      return;
  }
  plot(el, data, layout);
}

/** An object3D-file: a point cloud (scatter3d) or a mesh (mesh3d), from /media/{sha}/mesh. */
function renderObject3D(v) {
  const el = h("div", { class: "plot obj3d-plot" });
  api.mesh(v.sha256).then((m) => {
    let data;
    if (Array.isArray(m.points)) {
      const P = m.points;
      const color = P.length && P[0].length >= 6 ? P.map((p) => `rgb(${p[3] | 0},${p[4] | 0},${p[5] | 0})`)
        : P.length && P[0].length === 4 ? P.map((p) => p[3]) : P.map((p) => p[2]);
      data = [{ type: "scatter3d", mode: "markers", x: P.map((p) => p[0]), y: P.map((p) => p[1]), z: P.map((p) => p[2]),
        marker: { size: 2, color, colorscale: "Viridis" }, hoverinfo: "x+y+z" }];
    } else {
      const V = m.vertices || [], F = m.faces || [];
      data = [{ type: "mesh3d", x: V.map((p) => p[0]), y: V.map((p) => p[1]), z: V.map((p) => p[2]),
        i: F.map((f) => f[0]), j: F.map((f) => f[1]), k: F.map((f) => f[2]), color: "#8fa8c8", flatshading: true }];
    }
    plot(el, data, { height: 360, margin: { l: 0, r: 0, t: 10, b: 0 }, scene: { aspectmode: "data" } });
  }).catch((e) => el.append(h("span", { class: "error" }, e.message)));
  const cap = v.caption != null ? h("figcaption", { class: "caption" }, String(v.caption)) : null;
  return h("figure", { class: "media-3d" }, el, cap);
}

/** CPK colours of the common elements (others grey): how molecule viewers draw atoms. */
const ATOM_COLORS = { H: "#ffffff", C: "#909090", N: "#3050f8", O: "#ff0d0d", F: "#90e050", CL: "#1ff01f",
  BR: "#a62929", I: "#940094", S: "#ffff30", P: "#ff8000", FE: "#e06633", NA: "#ab5cf2", MG: "#8aff00",
  CA: "#3dff00", ZN: "#7d80b0", CU: "#c88033", K: "#8f40d4", SE: "#ffa100", B: "#ffb5b5", SI: "#f0c8a0" };

/** A molecule-file: atoms as CPK-coloured spheres and bonds as lines, from /media/{sha}/mesh. */
function renderMolecule(v) {
  const el = h("div", { class: "plot molecule-plot" });
  api.mesh(v.sha256).then((m) => {
    const A = m.atoms || [], E = m.elements || [];
    const bx = [], by = [], bz = [];
    for (const [i, j] of m.bonds || []) {
      bx.push(A[i][0], A[j][0], null); by.push(A[i][1], A[j][1], null); bz.push(A[i][2], A[j][2], null);
    }
    const data = [
      { type: "scatter3d", mode: "lines", x: bx, y: by, z: bz, line: { color: "#777", width: 4 }, hoverinfo: "skip", name: "bonds" },
      { type: "scatter3d", mode: "markers", x: A.map((p) => p[0]), y: A.map((p) => p[1]), z: A.map((p) => p[2]),
        text: E, hoverinfo: "text", name: "atoms",
        marker: { size: E.map((e) => (e === "H" ? 4 : 7)), color: E.map((e) => ATOM_COLORS[e] || "#c0a0c0"),
          line: { color: "#333", width: 1 } } },
    ];
    plot(el, data, { height: 360, margin: { l: 0, r: 0, t: 10, b: 0 }, showlegend: false, scene: { aspectmode: "data" } });
    el.dataset.atoms = String(A.length);
    el.dataset.bonds = String((m.bonds || []).length);
  }).catch((e) => el.append(h("span", { class: "error" }, e.message)));
  const cap = v.caption != null ? h("figcaption", { class: "caption" }, String(v.caption)) : null;
  return h("figure", { class: "media-molecule" }, el, cap);
}

function renderOther(v) {
  return h("pre", { class: "json" }, JSON.stringify(v, null, 1).slice(0, 4000));
}

/** The renderer of one logged value by its kind. */
export function renderValue(v) {
  try {
    if (v === null || typeof v !== "object") return h("span", null, fmtValue(v));
    switch (v[TYPE_KEY]) {
      case "image-file": return renderImage(v);
      case "images/separated":
        return h("div", { class: "image-grid" }, (v.images || []).map((im, i) =>
          renderImage({ ...im, caption: im.caption ?? (v.captions || [])[i] })));
      case "video-file": return renderVideo(v);
      case "videos": return h("div", { class: "image-grid" }, (v.videos || []).map(renderVideo));
      case "audio-file": return renderAudio(v);
      case "audio": return h("div", null, (v.audio || []).map(renderAudio));
      case "table-file": return renderTable(v);
      case "chart": return renderChart(v);
      case "object3D-file": return renderObject3D(v);
      case "object3D": return h("div", null, (v.objects || []).map(renderObject3D));
      case "molecule-file": return renderMolecule(v);
      case "molecule": return h("div", null, (v.molecules || []).map((m, i) =>
        renderMolecule({ ...m, caption: m.caption ?? (Array.isArray(v.captions) ? v.captions[i] : undefined) })));
      case "html-file": return renderHtml(v);
      default: return renderOther(v);
    }
  } catch (e) {
    return h("span", { class: "error" }, `cannot show this value: ${e.message}`);
  }
}

/** A media key across the selected runs, with one step slider. */
export class MediaPanel {
  constructor(key, kind) {
    this.key = key;
    this.kind = kind;
    const { el, body, tools } = panelShell(key, kind);
    this.el = el;
    this.tools = tools;
    this.slider = h("input", { type: "range", min: 0, max: 0, step: 1, value: 0, class: "step-slider", "aria-label": `step of ${key}` });
    this.stepLabel = h("span", { class: "step-label" });
    this.controls = h("div", { class: "slider-row" }, this.stepLabel, this.slider);
    this.cells = h("div", { class: "media-cells" });
    body.append(this.controls, this.cells);
    this.byRun = new Map(); // run id -> [{step, idx, value}]
    this.steps = [];
    this.shown = null;
    this.slider.addEventListener("input", () => this.show(Number(this.slider.value)));
  }

  set(runId, steps) {
    if (steps) this.byRun.set(runId, steps);
    else this.byRun.delete(runId);
  }

  draw(runs) {
    this.runs = runs;
    const all = new Set();
    for (const r of runs) for (const s of this.byRun.get(r.id) || []) all.add(s.step);
    const steps = [...all].sort((a, b) => a - b);
    const atEnd = !this.steps.length || Number(this.slider.value) >= this.steps.length - 1;
    const changed = steps.length !== this.steps.length || steps.some((s, i) => s !== this.steps[i]);
    this.steps = steps;
    this.slider.max = String(Math.max(0, steps.length - 1));
    this.controls.hidden = steps.length <= 1;
    if (changed || this.shown === null) {
      // A growing run keeps the slider at its newest step; otherwise the chosen one stays.
      const i = atEnd ? steps.length - 1 : Math.min(Number(this.slider.value), steps.length - 1);
      this.slider.value = String(Math.max(0, i));
      this.show(Math.max(0, i), true);
    }
  }

  show(i, force = false) {
    const step = this.steps[i];
    if (!force && this.shown === step) return;
    this.shown = step;
    this.stepLabel.textContent = step === undefined ? "no steps" : `step ${step}`;
    this.cells.querySelectorAll(".js-plotly-plot").forEach((p) => window.Plotly && window.Plotly.purge(p));
    clear(this.cells);
    const multi = this.runs.length > 1;
    this.runs.forEach((run, ri) => {
      if (!this.byRun.has(run.id)) return; // this run never logged the key
      const entries = this.byRun.get(run.id);
      // The run's value at this step, else its latest one before it.
      let best = null;
      for (const e of entries) if (e.step <= step && (!best || e.step >= best.step)) best = e;
      const cell = h("div", { class: "media-cell", dataset: { run: run.id } });
      if (multi) cell.append(h("div", { class: "run-label" }, h("span", { class: "swatch", style: `background:${colorOf(ri)}` }), run.name || run.id));
      cell.append(best ? renderValue(best.value) : h("span", { class: "muted" }, "nothing logged at this step yet"));
      this.cells.append(cell);
    });
  }
}

/** Histograms over steps: one heatmap per run (x = step, y = value, colour = count). */
export class HistogramPanel {
  constructor(key) {
    this.key = key;
    const { el, body, tools } = panelShell(key, "histogram");
    this.el = el;
    this.tools = tools;
    this.body = body;
    this.byRun = new Map();
  }

  set(runId, steps) {
    if (steps) this.byRun.set(runId, steps);
    else this.byRun.delete(runId);
  }

  draw(runs) {
    purge(this.body);
    clear(this.body);
    for (const run of runs) {
      const steps = (this.byRun.get(run.id) || []).filter((s) => s.value && Array.isArray(s.value.bins) && Array.isArray(s.value.values));
      if (!steps.length) continue;
      const el = h("div", { class: "plot hist-plot", dataset: { run: run.id } });
      this.body.append(el);
      const { x, y, z } = histogramGrid(steps);
      plot(el, [{ type: "heatmap", x, y, z, colorscale: "Viridis", hovertemplate: "step %{x}<br>value %{y:.4g}<br>count %{z}<extra></extra>",
        colorbar: { thickness: 10 } }], {
        title: { text: plotText(runs.length > 1 ? `${this.key} · ${run.name || run.id}` : this.key), font: { size: 13 } },
        height: 280, xaxis: { title: { text: STEP } }, yaxis: { title: { text: "value" } },
      });
    }
  }
}

/** Resample each step's histogram onto one shared grid of bins (counts kept per bin centre). */
export function histogramGrid(steps, nbins = 64) {
  let lo = Infinity, hi = -Infinity;
  for (const s of steps) {
    const b = s.value.bins.filter(Number.isFinite);
    if (b.length) {
      lo = Math.min(lo, b[0]);
      hi = Math.max(hi, b[b.length - 1]);
    }
  }
  if (!(hi > lo)) hi = lo + 1;
  const width = (hi - lo) / nbins;
  const y = Array.from({ length: nbins }, (_, i) => lo + (i + 0.5) * width);
  const z = y.map(() => steps.map(() => 0));
  steps.forEach((s, j) => {
    const { bins, values } = s.value;
    values.forEach((c, i) => {
      const mid = (bins[i] + bins[i + 1]) / 2;
      const k = Math.min(nbins - 1, Math.max(0, Math.floor((mid - lo) / width)));
      if (Number.isFinite(c)) z[k][j] += c;
    });
  });
  return { x: steps.map((s) => s.step), y, z };
}
