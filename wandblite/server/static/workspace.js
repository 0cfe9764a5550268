// A project's workspace: its saved views (the bar: save mine, share, reset to default, save as the
// project default), and the charts' view state (section order and collapse, hidden panels, panel
// sizes, x-axis, smoothing, log scale, the panel filter).
//
// The saved document is untrusted input other users saved: every string of it is used as text
// (dom.js `h`, input values, plotText), as a key to match, or as a query parameter; never as markup.
// Every piece goes through workspace_state.js, the one place that collects and applies view state.

import { api, ApiError } from "./api.js";
import { clear, h } from "./dom.js";
import { applyState, collectState, forgetState, registerState } from "./workspace_state.js";
import { PANEL_SIZES, STEP, WORKSPACE_VERSION } from "./vocab.js";

const enc = encodeURIComponent;

// ------------------------------------------------------------------------ the charts' view state

/** A fresh charts view: what the workspace's charts show and how. */
export function newChartsView() {
  return {
    settings: { xAxis: STEP, smoothing: 0, logY: false, filter: "" },
    sections: { order: [], collapsed: [] },
    panels: { hidden: [], sizes: {} },
  };
}

const strings = (v) => (Array.isArray(v) ? v.filter((s) => typeof s === "string") : []);

/** Register the charts' pieces ("charts", "sections", "panels") over `view`; `changed()` redraws. */
export function registerChartsState(view, changed) {
  const offs = [
    registerState("charts", () => ({ x_axis: view.settings.xAxis, smoothing: view.settings.smoothing,
      log_y: view.settings.logY, panel_filter: view.settings.filter }), (v) => {
      const s = v && typeof v === "object" ? v : {};
      view.settings.xAxis = typeof s.x_axis === "string" && s.x_axis ? s.x_axis : STEP;
      view.settings.smoothing = Number.isFinite(s.smoothing) ? s.smoothing : 0;
      view.settings.logY = s.log_y === true;
      view.settings.filter = typeof s.panel_filter === "string" ? s.panel_filter.toLowerCase() : "";
      changed();
    }),
    registerState("sections", () => ({ order: [...view.sections.order], collapsed: [...view.sections.collapsed] }), (v) => {
      view.sections.order = strings(v && v.order);
      view.sections.collapsed = strings(v && v.collapsed);
      changed();
    }),
    registerState("panels", () => ({ hidden: [...view.panels.hidden], sizes: { ...view.panels.sizes } }), (v) => {
      view.panels.hidden = strings(v && v.hidden);
      const sizes = {};
      const given = v && v.sizes && typeof v.sizes === "object" ? v.sizes : {};
      for (const [k, s] of Object.entries(given)) if (PANEL_SIZES.includes(s)) sizes[k] = s;
      view.panels.sizes = sizes;
      changed();
    }),
  ];
  return () => offs.forEach((f) => f());
}

/** Section names in the view's order: those the view names first, then the rest ("" first, then A-Z). */
export function orderedSections(view, names) {
  const rest = names.filter((n) => !view.sections.order.includes(n))
    .sort((a, b) => (a === "" ? -1 : b === "" ? 1 : a < b ? -1 : 1));
  return [...view.sections.order.filter((n) => names.includes(n)), ...rest];
}

function moveSection(ws, name, delta) {
  const names = [...ws.sectionsEl.children].map((s) => s.dataset.section);
  const i = names.indexOf(name);
  const j = i + delta;
  if (i < 0 || j < 0 || j >= names.length) return;
  [names[i], names[j]] = [names[j], names[i]];
  ws.view.sections.order = names;
  applyLayout(ws);
}

/** A new section element's controls: move up/down, and its collapse kept in the view. */
export function decorateSection(ws, sec, name) {
  const view = ws.view;
  sec.open = !view.sections.collapsed.includes(name);
  const btn = (label, title, delta) => h("button", { type: "button", class: "section-move small", title, "aria-label": title,
    onclick: (ev) => { ev.preventDefault(); ev.stopPropagation(); moveSection(ws, name, delta); } }, label);
  sec.querySelector("summary").append(h("span", { class: "section-tools" }, btn("↑", "move section up", -1), btn("↓", "move section down", 1)));
  sec.addEventListener("toggle", () => {
    const c = new Set(view.sections.collapsed);
    if (sec.open) c.delete(name);
    else c.add(name);
    view.sections.collapsed = [...c];
  });
}

/** A new panel's controls: its size and a button that hides it. */
export function decoratePanel(ws, key, panel) {
  const view = ws.view;
  const size = h("select", { class: "panel-size small", "aria-label": "panel size", title: "panel size" },
    PANEL_SIZES.map((s) => h("option", { value: s }, s)));
  size.value = view.panels.sizes[key] || "medium";
  size.addEventListener("change", () => {
    if (size.value === "medium") delete view.panels.sizes[key];
    else view.panels.sizes[key] = size.value;
    applyLayout(ws);
  });
  const hide = h("button", { type: "button", class: "panel-hide small", title: "hide this panel", "aria-label": "hide panel",
    onclick: () => {
      if (!view.panels.hidden.includes(key)) view.panels.hidden = [...view.panels.hidden, key];
      applyLayout(ws);
    } }, "hide");
  panel.tools.append(size, hide);
}

/** The toolbar's list of hidden panels, each with a button that shows it again. */
export function hiddenPanelsControl(ws) {
  ws.hiddenEl = h("details", { class: "hidden-panels", id: "hidden-panels" }, h("summary", null, "hidden panels: 0"), h("ul"));
  return ws.hiddenEl;
}

function fillHidden(ws) {
  const el = ws.hiddenEl;
  if (!el) return;
  const keys = ws.view.panels.hidden;
  el.querySelector("summary").textContent = `hidden panels: ${keys.length}`;
  clear(el.querySelector("ul")).append(...keys.map((k) => h("li", null, h("span", { class: "hidden-key" }, k), " ",
    h("button", { type: "button", class: "small", onclick: () => {
      ws.view.panels.hidden = ws.view.panels.hidden.filter((x) => x !== k);
      applyLayout(ws);
    } }, "show"))));
}

/** Sections' order and collapse, panels' visibility (hidden or filtered out) and sizes, from the view. */
export function applyLayout(ws) {
  const view = ws.view;
  const secs = [...ws.sectionsEl.children];
  for (const name of orderedSections(view, secs.map((s) => s.dataset.section))) {
    const sec = secs.find((s) => s.dataset.section === name);
    ws.sectionsEl.append(sec);
    const open = !view.sections.collapsed.includes(name);
    if (sec.open !== open) sec.open = open;
  }
  const f = view.settings.filter;
  const hidden = new Set(view.panels.hidden);
  for (const [key, p] of ws.panels) {
    p.el.hidden = hidden.has(key) || (!!f && !key.toLowerCase().includes(f));
    const size = view.panels.sizes[key] || "medium";
    p.el.dataset.size = size;
    const sel = p.el.querySelector(".panel-size");
    if (sel && sel.value !== size) sel.value = size;
  }
  fillHidden(ws);
}

// ------------------------------------------------------------------------------ saved views

/** What the workspace bar shows about where the view came from. */
function describe(source, entry) {
  const by = entry && entry.updated_by ? ` by ${entry.updated_by}` : "";
  if (source === "user") return "your saved view";
  if (source === "default") return `the project default (saved${by})`;
  if (source === "view") return `a shared view (saved${by})`;
  return "not saved";
}

/** Per project: where its applied view came from ({source, entry}). */
const sources = new Map();

/** Load the project's saved view (a shared one by `viewId`, else the user's own, else the default)
 * and apply it; `force` loads it again even when this project's view is already applied. */
export async function loadSaved(project, viewId, force = false) {
  const key = viewId ? `${project}\u0000${viewId}` : project;
  if (!force && sources.has(key)) return sources.get(key);
  for (const k of [...sources.keys()]) if (k === project || k.startsWith(project + "\u0000")) sources.delete(k);
  forgetState();
  let got;
  if (viewId) {
    const v = await api.workspaceView(project, viewId);
    got = { source: "view", entry: v };
  } else {
    const w = await api.workspace(project);
    got = w.user ? { source: "user", entry: w.user } : w.default ? { source: "default", entry: w.default } : { source: "none", entry: null };
  }
  sources.set(key, got);
  applyState(got.entry ? got.entry.workspace : null);
  return got;
}

/** The bar above a project's workspace: save my view, share, reset to default, save as project default. */
export function workspaceBar(project, viewId) {
  const info = h("span", { class: "muted small", id: "workspace-source" });
  const msg = h("span", { class: "small", id: "workspace-message", role: "status" });
  const link = h("input", { type: "text", readonly: true, id: "share-url", class: "share-url", hidden: true, "aria-label": "shareable link", size: 48 });
  const key = viewId ? `${project}\u0000${viewId}` : project;
  const show = () => {
    const s = sources.get(key);
    info.textContent = `view: ${describe(s && s.source, s && s.entry)}`;
  };
  const act = (label, id, fn) => h("button", { type: "button", id, onclick: async () => {
    msg.textContent = "";
    msg.classList.remove("error");
    try {
      msg.textContent = await fn();
    } catch (e) {
      msg.classList.add("error");
      msg.textContent = e instanceof ApiError && e.status === 403 ? `not allowed: ${e.message}` : e.message;
    }
    show();
  } }, label);
  const doc = () => collectState(WORKSPACE_VERSION);
  const bar = h("div", { class: "toolbar workspace-bar", id: "workspace-bar" },
    act("Save my view", "save-view", async () => {
      const saved = await api.saveWorkspace(project, "user", doc());
      sources.set(key, { source: "user", entry: saved });
      return "saved";
    }),
    act("Share", "share-view", async () => {
      const { id } = await api.shareWorkspace(project, doc());
      link.value = `${location.origin}${location.pathname}#/p/${enc(project)}/w/${enc(id)}`;
      link.hidden = false;
      link.select();
      return "anyone who may read this project sees this view at the link";
    }),
    act("Reset to default", "reset-view", async () => {
      await api.resetWorkspace(project, "user");
      await loadSaved(project, null, true);
      if (viewId) location.hash = `#/p/${enc(project)}`;
      return "reset to the project default";
    }),
    act("Save as project default", "save-default", async () => {
      const saved = await api.saveWorkspace(project, "default", doc());
      if (!viewId && sources.get(key)?.source !== "user") sources.set(key, { source: "default", entry: saved });
      return "saved as the project default";
    }),
    info, msg, link);
  show();
  return bar;
}
