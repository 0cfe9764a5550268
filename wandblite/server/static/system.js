// System metrics as charts over time, and the writers of a shared run (several processes logging
// into one run, mode="shared"): the writer picker of the Console and System tabs, the writers
// table and the crash report of the run overview.
//
// Data: GET .../system (a shared run's records carry their `writer` label and, read without
// ?writer=, metrics named "<label>/<metric>", as wandblite's replay names them); the run's
// `writers` and `stopped_first` (GET .../runs/R: what `wandblite show --json` gives, sent by sync).
//
// Safety: labels, hosts, metric names and console lines are untrusted: DOM through dom.js `h()`
// (text nodes only), plotly text through `plotText()`.

import { api } from "./api.js";
import { colorOf, fmtDuration, fmtTime, fmtValue, h, plotText } from "./dom.js";
import { plot } from "./panels.js";

const PAGE = 5000;

/** The sections of the System tab, in order: the first whose test matches a metric name holds it. */
const SECTIONS = [
  ["CPU", (k) => k === "cpu" || k.startsWith("proc.cpu.") || k.startsWith("cpu.")],
  ["Memory", (k) => k === "memory_percent" || k.startsWith("proc.memory.") || k.startsWith("memory")],
  ["GPU", (k) => k.startsWith("gpu.")],
  ["Disk", (k) => k.startsWith("disk.") || k === "disk"],
  ["Network", (k) => k.startsWith("network.")],
  ["Other", () => true],
];

export function sectionOfMetric(key) {
  return SECTIONS.find(([, test]) => test(key))[0];
}

/** A select of "all writers" and each writer of the run, or null for a single writer's run. */
export function writerPicker(run, selected, onChange) {
  const writers = (run && run.writers) || [];
  if (!writers.length) return null;
  const sel = h("select", { class: "writer-picker", "aria-label": "writer" },
    h("option", { value: "" }, `all writers (${writers.length})`),
    writers.map((w) => h("option", { value: String(w.label ?? "") }, `${w.label ?? "-"}${w.host ? ` on ${w.host}` : ""}`)));
  sel.value = selected || "";
  sel.addEventListener("change", () => onChange(sel.value || null));
  return h("label", { class: "writer-pick" }, "writer ", sel);
}

/** Every system record of a run (all pages), optionally of one writer only. */
async function systemRecords(project, runId, writer) {
  const recs = [];
  let start = 0;
  for (;;) {
    const page = await api.system(project, runId, start, PAGE, writer);
    recs.push(...(page.system || []));
    if (page.next === null || page.next === undefined) break;
    start = page.next;
  }
  return recs;
}

/**
 * The series of one run: Map metric -> Map writer label ("" for none) -> {x, y}, x in seconds since
 * the run's first sample. A shared run's metric names lose their "<label>/" prefix: the writer is
 * the trace, the metric the chart.
 */
export function seriesOf(recs) {
  const out = new Map();
  let t0 = Infinity; // a loop, not Math.min(...): a long run has more samples than a call has arguments
  for (const r of recs) if (typeof r.ts === "number" && r.ts < t0) t0 = r.ts;
  if (!Number.isFinite(t0)) t0 = 0;
  for (const r of recs) {
    if (typeof r.ts !== "number" || !Number.isFinite(r.ts) || !r.metrics || typeof r.metrics !== "object") continue;
    const label = typeof r.writer === "string" ? r.writer : "";
    const prefix = label ? `${label}/` : "";
    for (const [name, v] of Object.entries(r.metrics)) {
      if (typeof v !== "number") continue;
      const key = prefix && name.startsWith(prefix) ? name.slice(prefix.length) : name;
      if (!out.has(key)) out.set(key, new Map());
      const byWriter = out.get(key);
      if (!byWriter.has(label)) byWriter.set(label, { x: [], y: [] });
      const s = byWriter.get(label);
      s.x.push(r.ts - t0);
      s.y.push(v);
    }
  }
  return out;
}

/**
 * The System tab: one chart per metric, grouped in sections (CPU, memory, GPU, disk, network), one
 * line per writer of a shared run (labelled) and per run when several are compared. `writer` (a
 * label) keeps one writer's lines only. Returns the number of charts drawn.
 */
export async function systemCharts(project, runs, into, writer = null) {
  const all = await Promise.all(runs.map((r) => systemRecords(project, r.id, runs.length === 1 ? writer : null)));
  const perRun = all.map(seriesOf);
  const keys = [...new Set(perRun.flatMap((m) => [...m.keys()]))].sort();
  if (!keys.length) {
    into.append(h("p", { class: "muted", id: "no-system" }, runs.length === 1 ? "No system metrics were recorded for this run." : "None of these runs recorded system metrics."));
    return 0;
  }
  const sections = new Map(SECTIONS.map(([name]) => [name, []]));
  for (const k of keys) sections.get(sectionOfMetric(k)).push(k);
  for (const [name, ks] of sections) {
    if (!ks.length) continue;
    const grid = h("div", { class: "panels" });
    into.append(h("h3", { class: "system-section" }, name), grid);
    for (const k of ks) {
      const traces = [];
      runs.forEach((run, ri) => {
        const byWriter = perRun[ri].get(k);
        if (!byWriter) return;
        [...byWriter.keys()].sort().forEach((label, wi) => {
          const s = byWriter.get(label);
          const who = runs.length === 1 ? (label || run.name || run.id) : (label ? `${run.name || run.id} · ${label}` : run.name || run.id);
          traces.push({ x: s.x, y: s.y, mode: "lines", name: plotText(who), meta: [label, run.id],
            line: { color: colorOf(runs.length === 1 ? wi : ri), dash: runs.length === 1 ? "solid" : ["solid", "dot", "dash", "dashdot"][wi % 4] } });
        });
      });
      const el = h("div", { class: "plot" });
      grid.append(h("section", { class: "panel", dataset: { key: k, kind: "system" } }, el));
      const legend = traces.length > 1;
      plot(el, traces, { title: { text: plotText(k), font: { size: 13 } }, height: legend ? 280 : 240, showlegend: legend,
        margin: { l: 55, r: 15, t: 36, b: legend ? 80 : 40 }, legend: { orientation: "h", x: 0, y: -0.32, yanchor: "top" },
        xaxis: { title: { text: "seconds since the first sample", standoff: 4 } }, hovermode: "x unified" });
    }
  }
  return keys.length;
}

/** The System tab with its writer picker (a shared run); redraws on a pick. */
export async function systemView(project, runs, into, state = { writer: null }) {
  const body = h("div", { class: "system-charts" });
  const picker = runs.length === 1 ? writerPicker(runs[0], state.writer, async (w) => {
    state.writer = w;
    if (window.Plotly) body.querySelectorAll(".js-plotly-plot").forEach((p) => window.Plotly.purge(p));
    body.replaceChildren();
    await systemCharts(project, runs, body, w);
  }) : null;
  if (picker) into.append(h("div", { class: "toolbar" }, picker));
  into.append(body);
  await systemCharts(project, runs, body, state.writer);
  return state;
}

function role(w) {
  return [w.primary ? "primary" : null, w.update_finish_state ? "decides the state" : null].filter(Boolean).join(", ") || "-";
}

function stateText(w) {
  let s = String(w.state ?? "");
  if (w.exit_code !== null && w.exit_code !== undefined) s += ` (exit code ${w.exit_code}${w.signal ? `, ${w.signal}` : ""})`;
  return s;
}

function mb(v) {
  return typeof v === "number" ? (v >= 1024 ? `${(v / 1024).toFixed(1)} GB` : `${v.toFixed(0)} MB`) : "";
}

/** The crash report of a crashed or failed shared run (`stopped_first`, as `wandblite show` says it). */
export function crashReport(first) {
  const parts = [];
  const who = h("strong", { class: "stopped-writer" }, String(first.writer ?? "-"));
  if (first.last_alive === null || first.last_alive === undefined) {
    parts.push(h("p", null, who, ` (${first.state ?? ""}) stopped first: it died before writing its first record.`));
  } else {
    const gap = first.seconds_before_others;
    parts.push(h("p", { class: "stopped-first" }, who,
      first.host ? ` on ${first.host}` : "", first.pid ? ` (pid ${first.pid})` : "", ` stopped first (${first.state ?? ""}${first.signal ? `, ${first.signal}` : ""})`,
      ` at ${fmtTime(first.last_alive)}`,
      typeof gap === "number" ? h("span", { class: "gap" }, `, ${gap.toFixed(1)} s${gap >= 60 ? ` (${fmtDuration(gap)})` : ""} before the others`) : "",
      `, last step ${first.last_step ?? ""}.`));
  }
  if (first.error && typeof first.error === "object") {
    parts.push(h("p", null, "error: ", `${first.error.type ?? ""}: ${first.error.message ?? ""}`));
  }
  const rss = first.rss_mb;
  if (rss && typeof rss === "object") {
    const trend = rss.last > rss.first * 1.1 ? "climbed" : "went";
    parts.push(h("p", { class: "rss" }, `its RSS ${trend} ${mb(rss.first)} → ${mb(rss.last)} (max ${mb(rss.max)}, ${rss.samples} samples)`));
  }
  const mem = first.last_memory && typeof first.last_memory === "object" ? Object.entries(first.last_memory) : [];
  if (mem.length) {
    parts.push(h("table", { class: "data kv last-memory" }, h("caption", null, "its last memory figures"),
      h("tbody", null, mem.map(([k, v]) => h("tr", null, h("th", { scope: "row" }, k), h("td", null, fmtValue(v)))))));
  }
  const lines = Array.isArray(first.last_lines) ? first.last_lines : [];
  if (lines.length) {
    parts.push(h("p", { class: "muted small" }, "its last console lines:"),
      h("pre", { class: "console last-lines" }, lines.map((l) => String(l) + "\n")));
  }
  return h("div", { class: "error-box crash-report", id: "crash-report" }, h("h3", null, "Stopped first"), parts);
}

/** The overview's section of a shared run: its crash report (crashed or failed), then its writers. */
export function writersSection(run) {
  const writers = run.writers || [];
  if (!writers.length) return null;
  const head = ["writer", "host", "pid", "role", "state", "last record", "steps"];
  const table = h("table", { class: "data", id: "writers-table" },
    h("thead", null, h("tr", null, head.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", null, writers.map((w) => h("tr", { dataset: { writer: String(w.label ?? "") } },
      h("td", null, String(w.label ?? "-")), h("td", null, String(w.host ?? "-")), h("td", null, String(w.pid ?? "-")),
      h("td", null, role(w)), h("td", null, stateText(w)), h("td", null, fmtTime(w.last_alive ?? w.last_record)),
      h("td", null, String(w.steps ?? ""))))));
  return h("div", { class: "writers" }, run.stopped_first ? crashReport(run.stopped_first) : null,
    h("h2", null, `Writers (${writers.length})`), table);
}
