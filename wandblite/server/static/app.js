// wandblite dashboard: projects, the runs table, a run's workspace, comparisons.
//
// Plain ES modules, no build step; plotly.js is the only library (served by this server at
// /static/vendor/plotly.min.js from the installed plotly package).
//
// Security: everything a run carries is untrusted (names, keys, captions, config, summary,
// table cells, console text). The DOM is built only with dom.js's `h()` (text nodes and
// setAttribute, never innerHTML); plotly gets text through `plotText()`; HTML media shows only
// in a sandboxed iframe. The page runs under a strict CSP (dashboard.py). Routes are in the
// URL hash: #/, #/p/<project>, #/p/<project>/w/<shared view id>, #/p/<project>/artifacts,
// #/p/<project>/r/<run>[/<tab>], #/p/<project>/compare/<run>,<run>, #/p/<project>/diff/<run>,<run> (diff.js),
// #/p/<project>/groups (grouping.js), #/p/<project>/settings, #/audit[/<project>] (account.js, settings.js).
// A project's page is its workspace: the runs table, the charts of the selected runs, and the saved views
// (workspace.js).

import { api, ApiError } from "./api.js";
import { initAccount, loginHidden, refreshAccount, showLogin } from "./account.js";
import { auditView, settingsView } from "./settings.js";
import { clear, colorOf, flatten, fmtDuration, fmtTime, fmtValue, h, plotText, sectionOf } from "./dom.js";
import { HistogramPanel, LinePanel, MediaPanel, plot, purge } from "./panels.js";
import { alertBadge, alertsSection, filesTab, projectArtifacts } from "./records.js";
import { modelSection } from "./graph.js";
import { systemView, writerPicker, writersSection } from "./system.js";
import { editSection } from "./edit.js";
import { DIFF_MAX, DIFF_MIN, diffView } from "./diff.js";
import { getGroupingState, groupsView, setGroupingState } from "./grouping.js";
import { INTERNAL_PREFIX, RESERVED_KEYS, RUN_STATES, STEP } from "./vocab.js";
import { applyLayout, decoratePanel, decorateSection, hiddenPanelsControl, loadSaved, newChartsView, orderedSections,
  registerChartsState, workspaceBar } from "./workspace.js";
import { registerState } from "./workspace_state.js";

// The grouping page's state is part of every project's saved workspace (it lives as long as the app).
registerState("grouping", getGroupingState, setGroupingState);

const main = document.getElementById("main");
const crumbs = document.getElementById("crumbs");
const statusEl = document.getElementById("status");

const REFRESH_MS = 4000;
const PAGE = 50;
const enc = encodeURIComponent;

/** Everything a view started (timers, observers) is stopped when the route changes. */
let generation = 0;
const cleanups = [];
function onLeave(f) {
  cleanups.push(f);
}
function leave() {
  generation += 1;
  while (cleanups.length) {
    try {
      cleanups.pop()();
    } catch {
      // a cleanup failing must not keep the next view from showing
    }
  }
  purge(main);
}

/** Per project: the runs picked for comparison (id -> name) and the table's state. */
const selections = new Map();
const tableState = new Map();
const chartsViews = new Map(); // project -> the charts' view state (workspace.js newChartsView)
/** The most selected runs whose charts a project's page draws. */
const CHART_RUNS = 20;

function setStatus(text, isError = false) {
  statusEl.textContent = text || "";
  statusEl.classList.toggle("error", isError);
}

function showError(e) {
  console.error(e);
  clear(main).append(h("div", { class: "error-box" }, h("strong", null, "Error: "), e && e.message ? e.message : String(e)));
}

function setCrumbs(...parts) {
  clear(crumbs);
  parts.forEach(([label, href], i) => {
    if (i) crumbs.append(h("span", { class: "sep" }, "/"));
    crumbs.append(href ? h("a", { href }, label) : h("span", { class: "here" }, label));
  });
}

// ----------------------------------------------------------------------------------- projects

async function projectsView() {
  setCrumbs(["projects", null]);
  const gen = generation;
  const { projects } = await api.projects();
  if (gen !== generation) return; // another view took over while the list was loading
  const list = h("table", { class: "data projects" },
    h("thead", null, h("tr", null, h("th", null, "project"), h("th", null, "runs"), h("th", null, "updated"))),
    h("tbody", null, projects.map((p) => h("tr", null,
      h("td", null, h("a", { href: `#/p/${enc(p.name)}` }, p.name)),
      h("td", { class: "num" }, String(p.runs ?? "")),
      h("td", null, fmtTime(p.updated_at))))));
  clear(main).append(h("h1", null, "Projects"),
    projects.length ? list : h("p", { class: "muted" }, "No projects yet: log runs and `wandblite sync` them here."));
}

// ------------------------------------------------------------------------------------ runs table

/** The links between a project's pages: runs, artifacts, settings (`here` is the current one). */
function projectLinks(project, here) {
  const pages = [["runs", "Runs", ""], ["groups", "Grouped", "/groups"], ["artifacts", "Artifacts", "/artifacts"], ["settings", "Settings", "/settings"]];
  const out = [];
  pages.forEach(([id, label, suffix], i) => {
    if (i) out.push(" · ");
    out.push(id === here ? h("span", { class: "here" }, label) : h("a", { href: `#/p/${enc(project)}${suffix}`, id: `${id}-link` }, label));
  });
  return h("nav", { class: "project-links" }, out);
}

/** "config.lr >= 0.01 and state = finished" -> {"$and": [{"config.lr": {"$gte": 0.01}}, {"state": "finished"}]}. */
export function parseFilter(text) {
  const ops = { "=": null, "==": null, "!=": "$ne", "<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte" };
  const parts = text.split(/\s+and\s+/i).map((s) => s.trim()).filter(Boolean);
  const conds = parts.map((p) => {
    const m = /^([^\s=!<>]+)\s*(==|!=|<=|>=|=|<|>)\s*(.+)$/.exec(p);
    if (!m) throw new Error(`cannot read the filter "${p}": write field op value, e.g. config.lr >= 0.01`);
    let v = m[3].trim();
    if (/^".*"$|^'.*'$/.test(v)) v = v.slice(1, -1);
    else if (v === "true" || v === "false") v = v === "true";
    else if (v === "null") v = null;
    else if (v !== "" && Number.isFinite(Number(v))) v = Number(v);
    const op = ops[m[2]];
    return { [m[1]]: op ? { [op]: v } : v };
  });
  if (!conds.length) return null;
  return conds.length === 1 ? conds[0] : { $and: conds };
}

function stateBadge(state) {
  return h("span", { class: `state state-${/^[a-z]+$/.test(state || "") ? state : "other"}` }, state || "?");
}

function selectionOf(project) {
  if (!selections.has(project)) selections.set(project, new Map());
  return selections.get(project);
}

async function runsView(project, viewId) {
  setCrumbs(["projects", "#/"], [project, null]);
  const st = tableState.get(project) || { order: "-created_at", search: "", filter: "", state: "", offset: 0, archived: "hide" };
  tableState.set(project, st);
  const sel = selectionOf(project);
  if (!chartsViews.has(project)) chartsViews.set(project, newChartsView());
  const view = chartsViews.get(project);
  const gen = generation;

  const search = h("input", { type: "search", placeholder: "search names, tags, notes", value: st.search, id: "run-search", "aria-label": "search runs" });
  const stateSel = h("select", { id: "state-filter", "aria-label": "state" },
    ["", ...RUN_STATES].map((s) => h("option", { value: s }, s || "any state")));
  stateSel.value = st.state;
  const filter = h("input", { type: "text", placeholder: "filter: config.lr >= 0.01 and summary.loss < 1", value: st.filter, id: "run-filter",
    "aria-label": "filter runs", size: 40 });
  const compareLabel = () => (sel.size ? `compare ${sel.size} selected` : "select runs to compare");
  const compareBtn = h("button", { type: "button", id: "compare", class: "primary", disabled: !sel.size }, compareLabel());
  const archivedSel = h("select", { id: "archived-filter", "aria-label": "archived runs" },
    [["hide", "hide archived"], ["include", "with archived"], ["only", "archived only"]].map(([v, t]) => h("option", { value: v }, t)));
  archivedSel.value = st.archived || "hide";
  const diffBtn = h("button", { type: "button", id: "diff" }, "config diff");
  diffBtn.addEventListener("click", () => {
    if (sel.size >= DIFF_MIN && sel.size <= DIFF_MAX) location.hash = `#/p/${enc(project)}/diff/${[...sel.keys()].map(enc).join(",")}`;
  });
  const clearBtn = h("button", { type: "button", onclick: () => { sel.clear(); render(lastData); } }, "clear selection");
  const msg = h("p", { class: "error", role: "alert" });
  const tableWrap = h("div", { class: "table-scroll" });
  const pager = h("div", { class: "pager" });
  compareBtn.addEventListener("click", () => {
    if (sel.size) location.hash = `#/p/${enc(project)}/compare/${[...sel.keys()].map(enc).join(",")}`;
  });
  const chartsWrap = h("div", { class: "project-charts", id: "project-charts" });
  clear(main).append(h("h1", null, project),
    projectLinks(project, "runs"),
    h("div", { class: "toolbar" }, search, stateSel, archivedSel, filter, compareBtn, diffBtn, clearBtn), msg, tableWrap, pager, chartsWrap);

  let lastData = { runs: [], total: 0 };
  let timer = null;

  // The charts of the selected runs, rebuilt when the selection changes (the view state is kept).
  let ws = null;
  let chartsFor = "";
  let chartsAsked = 0; // the latest rebuild: an older one finishing late draws nothing
  let chartsTimer = null;
  async function renderCharts() {
    const ids = [...sel.keys()].slice(0, CHART_RUNS);
    if (ids.join("\u0000") === chartsFor) return; // drawn, or being drawn, for these runs
    chartsFor = ids.join("\u0000");
    const asked = ++chartsAsked;
    if (ws) ws.destroy();
    ws = null;
    clear(chartsWrap);
    if (!ids.length) {
      chartsWrap.append(h("p", { class: "muted" }, "Select runs to see their charts here."));
      return;
    }
    const runs = (await Promise.all(ids.map((id) => api.run(project, id).then((r) => ({ ...r, id: r.id ?? r.run_id }), () => null))))
      .filter(Boolean);
    if (gen !== generation || asked !== chartsAsked) return; // a newer selection took over
    const mine = new Workspace(project, runs, view);
    ws = mine;
    chartsWrap.append(h("h2", null, `Charts of ${runs.length} selected run${runs.length === 1 ? "" : "s"}`,
      sel.size > CHART_RUNS ? ` (the first ${CHART_RUNS})` : ""), mine.el);
    await mine.init();
  }
  const chartsLater = () => {
    clearTimeout(chartsTimer);
    chartsTimer = setTimeout(() => renderCharts().catch((e) => setStatus(e.message, true)), 300);
  };
  // The pieces of view state this page owns (workspace_state.js collects and applies them). Until
  // the saved view has been applied (ready), a piece only sets its state; the first load follows.
  let ready = false;
  const offs = [
    registerState("runs", () => ({ search: st.search, filter: st.filter, state: st.state, order: st.order }), (v) => {
      const r = v && typeof v === "object" ? v : {};
      st.search = typeof r.search === "string" ? r.search : "";
      st.filter = typeof r.filter === "string" ? r.filter : "";
      st.state = RUN_STATES.includes(r.state) ? r.state : "";
      st.order = typeof r.order === "string" && r.order ? r.order : "-created_at";
      st.offset = 0;
      search.value = st.search;
      filter.value = st.filter;
      stateSel.value = st.state;
      if (ready) load().catch(showError);
    }),
    registerState("selection", () => [...sel.keys()], (v) => {
      sel.clear();
      for (const id of Array.isArray(v) ? v : []) if (typeof id === "string") sel.set(id, id);
      if (ready) render(lastData);
    }),
    registerChartsState(view, () => { if (ws) ws.applyView(); }),
  ];
  onLeave(() => { offs.forEach((f) => f()); clearTimeout(chartsTimer); if (ws) ws.destroy(); });
  let bar = workspaceBar(project, viewId);
  main.insertBefore(bar, main.children[1]);

  async function load() {
    let filters = null;
    try {
      filters = st.filter ? parseFilter(st.filter) : null;
      msg.textContent = "";
    } catch (e) {
      msg.textContent = e.message;
      return;
    }
    if (st.state) filters = filters ? { $and: [filters, { state: st.state }] } : { state: st.state };
    try {
      const data = await api.runs(project, { order: st.order, search: st.search, filters, limit: PAGE, offset: st.offset, archived: st.archived });
      if (gen !== generation) return;
      lastData = data;
      render(data);
    } catch (e) {
      if (gen !== generation) return;
      if (e.status === 400) msg.textContent = e.message;
      else throw e;
    }
  }

  function columnsOf(runs) {
    // The most common summary and config keys of this page (scalars only).
    const count = (objs) => {
      const c = new Map();
      for (const o of objs) for (const [k, v] of flatten(o || {})) {
        if (k.startsWith(INTERNAL_PREFIX) || (v && typeof v === "object")) continue;
        c.set(k, (c.get(k) || 0) + 1);
      }
      return [...c].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, 8).map((x) => x[0]);
    };
    return { summary: count(runs.map((r) => r.summary)), config: count(runs.map((r) => r.config)) };
  }

  function header(label, field, cls) {
    const active = st.order === field ? " ▲" : st.order === "-" + field ? " ▼" : "";
    return h("th", { class: `sortable ${cls || ""}`, dataset: { field }, title: `sort by ${field}`,
      onclick: () => {
        st.order = st.order === "-" + field ? field : "-" + field;
        st.offset = 0;
        load().catch(showError);
      } }, label + active);
  }

  function render(data) {
    const runs = data.runs || [];
    const cols = columnsOf(runs);
    const flat = runs.map((r) => ({ s: new Map(flatten(r.summary || {})), c: new Map(flatten(r.config || {})) }));
    const all = h("input", { type: "checkbox", "aria-label": "select all on this page",
      checked: runs.length > 0 && runs.every((r) => sel.has(r.id)),
      onchange: () => {
        for (const r of runs) all.checked ? sel.set(r.id, r.name) : sel.delete(r.id);
        render(data);
      } });
    const table = h("table", { class: "data runs", id: "runs-table" },
      h("thead", null, h("tr", null, h("th", null, all), header("name", "name"), header("state", "state"), h("th", null, "tags"),
        h("th", null, "owner"), header("created", "created_at"), header("runtime", "runtime", "num"),
        cols.summary.map((k) => header(k, `summary.${k}`, "num summary-col")),
        cols.config.map((k) => header(k, `config.${k}`, "config-col")))),
      h("tbody", null, runs.map((r, i) => {
        const cb = h("input", { type: "checkbox", "aria-label": `select ${r.name || r.id}`, checked: sel.has(r.id),
          onchange: () => { cb.checked ? sel.set(r.id, r.name) : sel.delete(r.id); updateCompare(); } });
        return h("tr", { dataset: { run: r.id } }, h("td", null, cb),
          h("td", { class: "name" }, h("a", { href: `#/p/${enc(project)}/r/${enc(r.id)}`, class: "run-link" }, r.name || r.id),
            r.name && r.name !== r.id ? h("span", { class: "muted small" }, ` ${r.id}`) : null,
            r.archived ? h("span", { class: "tag archived" }, "archived") : null),
          h("td", null, stateBadge(r.state)),
          h("td", null, (r.tags || []).map((t) => h("span", { class: "tag" }, String(t)))),
          h("td", { class: "owner" }, r.owner || ""),
          h("td", null, fmtTime(r.created_at)),
          h("td", { class: "num" }, fmtDuration(r.runtime)),
          cols.summary.map((k) => h("td", { class: "num" }, fmtValue(flat[i].s.get(k)))),
          cols.config.map((k) => h("td", null, fmtValue(flat[i].c.get(k)))));
      })));
    clear(tableWrap).append(runs.length ? table : h("p", { class: "muted" }, "No runs match."));
    const total = data.total ?? runs.length;
    clear(pager).append(
      h("button", { type: "button", disabled: st.offset === 0, onclick: () => { st.offset = Math.max(0, st.offset - PAGE); load().catch(showError); } }, "‹ prev"),
      h("span", { class: "muted" }, `${total ? st.offset + 1 : 0}–${Math.min(total, st.offset + runs.length)} of ${total} runs`),
      h("button", { type: "button", disabled: st.offset + PAGE >= total, onclick: () => { st.offset += PAGE; load().catch(showError); } }, "next ›"));
    updateCompare();
    // Running runs: refresh the table by itself.
    clearTimeout(timer);
    if (runs.some((r) => r.state === "running")) timer = setTimeout(() => load().catch(() => {}), REFRESH_MS);
  }

  function updateCompare() {
    compareBtn.textContent = compareLabel();
    compareBtn.disabled = !sel.size;
    diffBtn.disabled = sel.size < DIFF_MIN || sel.size > DIFF_MAX;
    diffBtn.title = `compare the config and summary of ${DIFF_MIN} to ${DIFF_MAX} selected runs`;
    chartsLater();
  }

  let debounce = null;
  search.addEventListener("input", () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => { st.search = search.value; st.offset = 0; load().catch(showError); }, 250);
  });
  stateSel.addEventListener("change", () => { st.state = stateSel.value; st.offset = 0; load().catch(showError); });
  archivedSel.addEventListener("change", () => { st.archived = archivedSel.value; st.offset = 0; load().catch(showError); });
  filter.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") { st.filter = filter.value.trim(); st.offset = 0; load().catch(showError); }
  });
  onLeave(() => { clearTimeout(timer); clearTimeout(debounce); });
  // The saved view (a shared one, the user's own, or the project default) sets the pieces above.
  await loadSaved(project, viewId);
  if (gen !== generation || !bar.isConnected) return;
  ready = true;
  const shown = bar;
  bar = workspaceBar(project, viewId);
  shown.replaceWith(bar);
  updateCompare(); // the selection's buttons and charts, whatever the table's filter says
  await load();
}

// ---------------------------------------------------------------------------------- artifacts

async function artifactsView(project) {
  setCrumbs(["projects", "#/"], [project, `#/p/${enc(project)}`], ["artifacts", null]);
  const body = h("div", { class: "artifacts-page" });
  clear(main).append(h("h1", null, project),
    projectLinks(project, "artifacts"),
    body);
  await projectArtifacts(project, body);
}

// ---------------------------------------------------------------------------------- workspace

/** The charts of one or more runs: sections of panels, shared x-axis, smoothing and log scale. */
class Workspace {
  constructor(project, runs, view = newChartsView()) {
    this.project = project;
    this.runs = runs; // [{id, name, state, ...}]
    this.view = view; // what is shown and how (workspace.js): a project's page keeps it across rebuilds
    this.settings = view.settings;
    this.panels = new Map(); // key -> panel
    this.kinds = new Map(); // key -> kind
    this.visible = new Set();
    this.loaded = new Set(); // media keys whose data was fetched
    this.el = h("div", { class: "workspace" });
    this.sectionsEl = h("div", { class: "sections" });
    this.observer = new IntersectionObserver((entries) => this.onVisible(entries), { rootMargin: "600px 0px" });
  }

  async init() {
    this.el.append(this.toolbar(), this.sectionsEl);
    await this.loadKeys();
    await this.loadSeries();
  }

  toolbar() {
    this.xSel = h("select", { id: "x-axis", "aria-label": "x axis" });
    this.xSel.addEventListener("change", () => {
      this.settings.xAxis = this.xSel.value;
      setStatus("");
      this.loadSeries().catch((e) => setStatus(e.message, true));
    });
    const smoothVal = h("span", { class: "small", id: "smoothing-value" }, String(this.settings.smoothing));
    const smooth = h("input", { type: "range", min: 0, max: 0.99, step: 0.01, value: this.settings.smoothing, id: "smoothing", "aria-label": "smoothing" });
    smooth.addEventListener("input", () => {
      this.settings.smoothing = Number(smooth.value);
      smoothVal.textContent = smooth.value;
      this.drawLines();
    });
    const logY = h("input", { type: "checkbox", id: "log-y", checked: this.settings.logY });
    logY.addEventListener("change", () => { this.settings.logY = logY.checked; this.drawLines(); });
    const filter = h("input", { type: "search", placeholder: "filter panels", id: "panel-filter", "aria-label": "filter panels", value: this.settings.filter });
    filter.addEventListener("input", () => { this.settings.filter = filter.value.toLowerCase(); this.applyFilter(); });
    this.controls = { smooth, smoothVal, logY, filter };
    return h("div", { class: "toolbar workspace-toolbar" },
      h("label", null, "x-axis ", this.xSel),
      h("label", null, "smoothing ", smooth, " ", smoothVal),
      h("label", null, logY, " log scale"),
      filter, hiddenPanelsControl(this));
  }

  /** The view state changed from outside (a saved view applied): show it, fetch what the x-axis needs. */
  applyView() {
    const c = this.controls;
    c.smooth.value = String(this.settings.smoothing);
    c.smoothVal.textContent = String(this.settings.smoothing);
    c.logY.checked = this.settings.logY;
    if (c.filter.value.toLowerCase() !== this.settings.filter) c.filter.value = this.settings.filter;
    this.applyFilter();
    if (this.xSel.value !== this.settings.xAxis) {
      if (![...this.xSel.options].some((o) => o.value === this.settings.xAxis)) this.xSel.append(h("option", { value: this.settings.xAxis }, this.settings.xAxis));
      this.xSel.value = this.settings.xAxis;
      this.loadSeries().catch((e) => setStatus(e.message, true));
    } else this.drawLines();
  }

  async loadKeys() {
    const lists = await Promise.all(this.runs.map((r) => api.keys(this.project, r.id)));
    this.runKeys = new Map();
    lists.forEach((l, i) => this.runKeys.set(this.runs[i].id, new Map((l.keys || []).map((k) => [k.key, k]))));
    const fresh = [];
    for (const l of lists) for (const k of l.keys || []) {
      if (!this.kinds.has(k.key)) {
        this.kinds.set(k.key, k.kind);
        fresh.push(k.key);
      }
    }
    // x-axis choices: the three clocks and every numeric key.
    const numeric = [...this.kinds].filter(([k, kind]) => kind === "number" && !RESERVED_KEYS.includes(k)).map(([k]) => k).sort();
    const cur = this.settings.xAxis;
    const choices = [...RESERVED_KEYS, ...numeric];
    if (!choices.includes(cur)) choices.push(cur); // a saved x-axis this run does not have (yet)
    clear(this.xSel).append(...choices.map((k) => h("option", { value: k }, k)));
    this.xSel.value = cur;
    if (fresh.length) this.buildSections();
  }

  buildSections() {
    const bySection = new Map();
    for (const [key, kind] of [...this.kinds].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      if (key.startsWith(INTERNAL_PREFIX)) continue;
      const sec = sectionOf(key);
      if (!bySection.has(sec)) bySection.set(sec, []);
      bySection.get(sec).push([key, kind]);
    }
    const names = orderedSections(this.view, [...bySection.keys()]);
    for (const name of names) {
      let sec = [...this.sectionsEl.children].find((s) => s.dataset.section === name);
      if (!sec) {
        const label = name === "" ? "Charts" : name;
        sec = h("details", { class: "section", open: true, dataset: { section: name } },
          h("summary", null, h("span", { class: "section-name" }, label), h("span", { class: "count muted" })),
          h("div", { class: "panels" }));
        decorateSection(this, sec, name);
        this.sectionsEl.append(sec);
      }
      const grid = sec.querySelector(".panels");
      for (const [key, kind] of bySection.get(name)) {
        if (this.panels.has(key)) continue;
        const panel = kind === "number" ? new LinePanel(key) : kind === "histogram" ? new HistogramPanel(key) : new MediaPanel(key, kind);
        this.panels.set(key, panel);
        decoratePanel(this, key, panel);
        grid.append(panel.el);
        this.observer.observe(panel.el);
      }
      sec.querySelector(".count").textContent = ` ${grid.children.length}`;
    }
    // Keep sections in order (a new one may arrive while a run is running).
    this.applyFilter();
  }

  /** Sections' order and collapse, panels hidden, filtered out and sized (workspace.js). */
  applyFilter() {
    applyLayout(this);
  }

  onVisible(entries) {
    for (const e of entries) {
      const key = e.target.dataset.key;
      if (e.isIntersecting) {
        this.visible.add(key);
        const p = this.panels.get(key);
        if (p instanceof LinePanel) {
          if (!p.drawn) this.drawSoon(p);
        } else if (!this.loaded.has(key)) {
          // A panel that cannot load says so in itself; the rest of the workspace goes on.
          this.loadMedia(key).catch((err) => p.el.querySelector(".panel-body").append(h("p", { class: "error" }, err.message)));
        }
      } else {
        // Far from the viewport: a line chart is undrawn, so only the plots near the screen exist.
        this.visible.delete(key);
        const p = this.panels.get(key);
        if (p instanceof LinePanel && p.drawn) {
          p.undraw();
          p.drawn = false;
        }
      }
    }
  }

  numberKeys() {
    return [...this.kinds].filter(([k, kind]) => kind === "number" && !k.startsWith(INTERNAL_PREFIX)).map(([k]) => k);
  }

  async loadSeries() {
    const keys = this.numberKeys();
    const xAxis = this.settings.xAxis;
    for (const p of this.panels.values()) if (p instanceof LinePanel) p.drawn = false;
    // The keys on screen first; each answer draws its visible panels at once (a workspace of
    // hundreds of panels shows its first screen without waiting for the rest).
    const order = [...keys].sort((a, b) => Number(this.visible.has(b)) - Number(this.visible.has(a)));
    await Promise.all(this.runs.map(async (run) => {
      const have = this.runKeys.get(run.id) || new Map();
      const mine = order.filter((k) => have.has(k));
      for (let i = 0; i < mine.length; i += 40) {
        const chunk = mine.slice(i, i + 40);
        const res = await api.series(this.project, run.id, chunk, xAxis);
        if (xAxis !== this.settings.xAxis) return; // the x-axis changed meanwhile: a newer load draws
        for (const k of chunk) {
          const p = this.panels.get(k);
          if (!p) continue;
          p.set(run.id, (res.series || {})[k]);
          if (this.runs.length === 1 && this.visible.has(k)) this.drawLine(p);
        }
      }
    }));
    if (xAxis !== this.settings.xAxis) return;
    for (const p of this.panels.values()) if (p instanceof LinePanel) p.drawn = false;
    this.drawLines();
  }

  /** Draw line charts that scrolled into view a few per frame (about 12 ms of drawing), so scrolling
   * past many panels never waits for all of them in one frame. */
  drawSoon(p) {
    this.queue = this.queue || new Set();
    this.queue.add(p);
    if (this.queued) return;
    this.queued = requestAnimationFrame(() => this.drainDraws());
  }

  drainDraws() {
    this.queued = 0;
    const t0 = performance.now();
    for (const p of this.queue) {
      this.queue.delete(p);
      if (!p.drawn && this.visible.has(p.key)) this.drawLine(p);
      if (performance.now() - t0 > 12) break;
    }
    if (this.queue.size) this.queued = requestAnimationFrame(() => this.drainDraws());
  }

  drawLine(p) {
    p.drawn = true;
    try {
      p.draw(this.runs, this.settings);
    } catch (e) {
      p.plotEl.replaceChildren(h("span", { class: "error" }, e.message));
    }
  }

  drawLines() {
    for (const [key, p] of this.panels) {
      if (!(p instanceof LinePanel)) continue;
      if (this.visible.has(key)) this.drawLine(p);
      else p.drawn = false;
    }
  }

  async loadMedia(key) {
    this.loaded.add(key);
    const p = this.panels.get(key);
    await Promise.all(this.runs.map(async (run) => {
      if (!(this.runKeys.get(run.id) || new Map()).has(key)) return;
      const res = await api.media(this.project, run.id, key);
      p.set(run.id, res.steps || []);
    }));
    p.draw(this.runs);
  }

  /** A running run: new keys, new points, new media steps. */
  async refresh(runs) {
    this.runs = runs;
    await this.loadKeys();
    await this.loadSeries();
    await Promise.all([...this.loaded].map((k) => this.loadMedia(k)));
  }

  destroy() {
    this.observer.disconnect();
    if (this.queued) cancelAnimationFrame(this.queued);
    purge(this.el);
  }
}

// ---------------------------------------------------------------------------------- run pages

function runHeader(project, runs) {
  if (runs.length === 1) {
    const r = runs[0];
    return h("div", { class: "run-header" },
      h("h1", null, h("span", { class: "run-name" }, r.name || r.id), " ", stateBadge(r.state), h("span", { class: "badge-slot" })),
      h("p", { class: "muted" }, `${r.id} · created ${fmtTime(r.created_at)} · runtime ${fmtDuration(r.runtime)}`,
        r.host ? ` · ${r.host}` : "", r.group ? ` · group ${r.group}` : "", r.job_type ? ` · ${r.job_type}` : ""),
      (r.tags || []).length ? h("p", null, r.tags.map((t) => h("span", { class: "tag" }, String(t)))) : null,
      r.notes ? h("p", { class: "notes" }, String(r.notes)) : null);
  }
  return h("div", { class: "run-header" }, h("h1", null, `Comparing ${runs.length} runs`),
    h("ul", { class: "run-legend" }, runs.map((r, i) => h("li", null, h("span", { class: "swatch", style: `background:${colorOf(i)}` }),
      h("a", { href: `#/p/${enc(project)}/r/${enc(r.id)}` }, r.name || r.id), " ", stateBadge(r.state)))));
}

/** The run header, with the alert count badge filled in once known (a single run only). */
function headerOf(project, runs) {
  const el = runHeader(project, runs);
  if (runs.length === 1) {
    const slot = el.querySelector(".badge-slot");
    alertBadge(project, runs[0].id).then((b) => { if (b) slot.append(b); }, () => {});
  }
  return el;
}

function kvTable(runs, pick, id) {
  const maps = runs.map((r) => new Map(flatten(pick(r) || {})));
  const keys = [...new Set(maps.flatMap((m) => [...m.keys()]))].sort();
  if (!keys.length) return h("p", { class: "muted" }, "nothing");
  const multi = runs.length > 1;
  return h("div", { class: "table-scroll" }, h("table", { class: "data kv", id },
    multi ? h("thead", null, h("tr", null, h("th", null, "key"), runs.map((r) => h("th", null, r.name || r.id)))) : null,
    h("tbody", null, keys.map((k) => {
      const vals = maps.map((m) => m.get(k));
      const differ = multi && new Set(vals.map((v) => JSON.stringify(v))).size > 1;
      return h("tr", { class: differ ? "differs" : null }, h("th", { scope: "row" }, k), vals.map((v) => h("td", null, fmtValue(v))));
    }))));
}

function overview(project, runs, previous) {
  const rows = [];
  if (runs.length === 1) {
    const r = runs[0];
    const meta = [["id", r.id], ["name", r.name], ["owner", r.owner], ["state", r.state], ["exit code", r.exit_code], ["created", fmtTime(r.created_at)],
      ["updated", fmtTime(r.updated_at)], ["heartbeat", fmtTime(r.heartbeat_at)], ["runtime", fmtDuration(r.runtime)], ["host", r.host],
      ["group", r.group], ["job type", r.job_type], ["history rows", r.rows], ["signal", r.signal],
      ["error", r.error ? (typeof r.error === "object" ? r.error.message || JSON.stringify(r.error) : r.error) : null]];
    rows.push(h("h2", null, "Run"), h("table", { class: "data kv", id: "run-meta" }, h("tbody", null,
      meta.filter(([, v]) => v !== null && v !== undefined && v !== "").map(([k, v]) => h("tr", null, h("th", { scope: "row" }, k), h("td", null, String(v)))))));
    rows.push(writersSection(r)); // a shared run's writers and crash report (system.js)
  }
  if (runs.length === 1) rows.push(alertsSection(project, runs[0].id, previous && previous.querySelector("#alerts")));
  rows.push(h("h2", null, "Config"), kvTable(runs, (r) => r.config, "config-table"),
    h("h2", null, "Summary"), kvTable(runs, (r) => r.summary, "summary-table"));
  if (runs.length === 1) rows.push(modelSection(runs[0]));
  return h("div", { class: "overview" }, rows);
}

// The console as whole lines, joined by the server (GET .../console/lines, the rule `wandblite logs`
// uses); the filter is applied there too, over every line of the run. This view only draws.
const CONSOLE_SHOWN = 20000; // the most lines drawn

async function consoleView(project, run, into) {
  const filter = h("input", { type: "search", placeholder: "filter lines", "aria-label": "filter console" });
  const pre = h("pre", { class: "console", id: "console" });
  const info = h("p", { class: "muted small" });
  let writer = null; // a shared run's writer picked (null: all)
  const picker = writerPicker(run, writer, (w) => { writer = w; load().catch((e) => setStatus(e.message, true)); });
  into.append(h("div", { class: "toolbar" }, filter, picker), info, pre);
  const gen = generation;
  let asked = 0; // the latest request: an older answer arriving late is dropped
  let records = -1; // the console records the lines drawn were joined from
  const load = async () => {
    const mine = ++asked;
    const page = await api.consoleLines(project, run.id, { tail: CONSOLE_SHOWN, search: filter.value, writer });
    if (gen !== generation || mine !== asked) return;
    records = page.records;
    clear(pre);
    for (const l of page.lines) pre.append(h("span", { class: l.stream === "stderr" ? "stderr" : "stdout" }, l.text + "\n"));
    info.textContent = `${page.total} lines${page.matched > CONSOLE_SHOWN ? ` (showing the last ${CONSOLE_SHOWN})` : ""}`;
  };
  let debounce = null;
  filter.addEventListener("input", () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => load().catch((e) => setStatus(e.message, true)), 250);
  });
  onLeave(() => clearTimeout(debounce));
  await load();
  // A refresh asks again only when the run has console records the lines drawn did not include.
  return async (rs) => { if (!rs || rs[0].console !== records) await load(); };
}

async function workspaceView(project, runIds, tab) {
  const gen = generation;
  let runs = await Promise.all(runIds.map((id) => api.run(project, id).then((r) => ({ ...r, id: r.id ?? r.run_id }))));
  if (gen !== generation) return;
  const single = runs.length === 1;
  const base = single ? `#/p/${enc(project)}/r/${enc(runIds[0])}` : `#/p/${enc(project)}/compare/${runIds.map(enc).join(",")}`;
  setCrumbs(["projects", "#/"], [project, `#/p/${enc(project)}`], [single ? runs[0].name || runs[0].id : `compare ${runs.length}`, null]);
  const tabs = single ? ["charts", "overview", "files", "console", "system"] : ["charts", "overview", "system"];
  const tabLabel = { files: "files & artifacts" };
  tab = tabs.includes(tab) ? tab : "charts";
  const headerSlot = h("div", null, headerOf(project, runs));
  const body = h("div", { class: "tab-body" });
  // Element.append shows a null as the text "null": the parts without one.
  clear(main).append(...[headerSlot,
    single ? editSection(project, runs[0], (r) => { runs = [{ ...r, id: r.id ?? r.run_id }]; clear(headerSlot).append(headerOf(project, runs)); }) : null,
    h("nav", { class: "tabs" }, tabs.map((t) => h("a", { href: `${base}/${t}`, class: t === tab ? "tab active" : "tab", dataset: { tab: t } }, tabLabel[t] || t))),
    body].filter(Boolean));

  let refreshBody = null;
  if (tab === "charts") {
    const ws = new Workspace(project, runs);
    onLeave(() => ws.destroy());
    body.append(ws.el);
    await ws.init();
    refreshBody = (rs) => ws.refresh(rs);
  } else if (tab === "overview") {
    body.append(overview(project, runs));
    refreshBody = (rs) => { const next = overview(project, rs, body); clear(body).append(next); };
  } else if (tab === "files") {
    await filesTab(project, runs[0].id, body);
    refreshBody = async (rs) => {
      // Keep the artifacts that were expanded open across the refresh.
      const open = new Set([...body.querySelectorAll("details.artifact[open]")].map((d) => d.dataset.artifact));
      await filesTab(project, rs[0].id, body);
      for (const d of body.querySelectorAll("details.artifact")) if (open.has(d.dataset.artifact)) d.open = true;
    };
  } else if (tab === "console") {
    refreshBody = await consoleView(project, runs[0], body);
  } else if (tab === "system") {
    const picked = await systemView(project, runs, body); // system.js; keeps the writer picked across refreshes
    refreshBody = async (rs) => { purge(body); clear(body); await systemView(project, rs, body, picked); };
  }

  // A running run refreshes by itself.
  let timer = null;
  const tick = async () => {
    if (gen !== generation) return;
    try {
      runs = await Promise.all(runIds.map((id) => api.run(project, id).then((r) => ({ ...r, id: r.id ?? r.run_id }))));
      if (gen !== generation) return;
      clear(headerSlot).append(headerOf(project, runs));
      await refreshBody(runs);
      setStatus(`updated ${fmtTime(Date.now() / 1000)}`);
    } catch (e) {
      setStatus(e.message, true);
    }
    schedule();
  };
  const schedule = () => {
    if (gen === generation && runs.some((r) => r.state === "running")) timer = setTimeout(tick, REFRESH_MS);
  };
  onLeave(() => clearTimeout(timer));
  schedule();
}

// ------------------------------------------------------------------------------------- router

async function route() {
  leave();
  setStatus("");
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter((p) => p !== "").map(decodeURIComponent);
  try {
    if (parts[0] === "p" && parts[1]) {
      const project = parts[1];
      if (parts[2] === "r" && parts[3]) return await workspaceView(project, [parts[3]], parts[4]);
      if (parts[2] === "compare" && parts[3]) return await workspaceView(project, parts[3].split(",").filter(Boolean), parts[4]);
      if (parts[2] === "artifacts") return await artifactsView(project);
      if (parts[2] === "settings") return await settingsView(project, { main, setCrumbs, projectLinks });
      if (parts[2] === "diff" && parts[3]) return clear(main).append(await diffView(project, parts[3].split(",").filter(Boolean), setCrumbs));
      if (parts[2] === "groups") {
        setCrumbs(["projects", "#/"], [project, `#/p/${enc(project)}`], ["grouped", null]);
        return await groupsView(project, main, onLeave, projectLinks);
      }
      if (parts[2] === "w" && parts[3]) return await runsView(project, parts[3]);
      return await runsView(project);
    }
    if (parts[0] === "audit") return await auditView(parts[1] || null, { main, setCrumbs });
    return await projectsView();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return; // the login form is showing
    showError(e);
  }
}

async function boot() {
  initAccount({ leave, setCrumbs, route });
  window.addEventListener("hashchange", () => { loginHidden(); route(); });
  let session = null;
  try {
    session = await api.session();
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 404) throw e; // 404: a server without sessions
  }
  if (!window.Plotly) setStatus("plotly.js did not load: charts cannot be drawn (pip install 'wandblite[server]')", true);
  if (session) await refreshAccount(session); // the header: who is logged in (or a log in button)
  if (session && !session.authenticated && !session.public_read) return showLogin();
  return route();
}

boot().catch(showError);
