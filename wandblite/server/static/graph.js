// The run overview's "Model" section: the module tree that watch(log_graph=True) recorded.
//
// A graph is a summary value `graph_<idx>` of `_type: "graph-file"` whose blob is JSON
// ({format, nodes, edges}, wandblite/data_types/graph.py). Each model is shown as a table, one row
// per module in tree order, indented by depth: name, class, own parameters (name and shape), the
// parameter count with its children, and the input/output shapes of the first forward pass.
// Module names, class names and parameter names are untrusted: all of it goes through h() as text.

import { api } from "./api.js";
import { h } from "./dom.js";
import { TYPE_KEY } from "./vocab.js";

const GRAPH_KEY = /^graph_(\d+)$/;
const cache = new Map(); // sha256 -> Promise of the parsed graph (a blob never changes)

/** The summary's graph values, in index order: [[key, value], ...]. */
export function graphsOf(summary) {
  return Object.entries(summary || {})
    .filter(([k, v]) => GRAPH_KEY.test(k) && v && typeof v === "object" && v[TYPE_KEY] === "graph-file" && typeof v.sha256 === "string" && /^[0-9a-f]{64}$/.test(v.sha256))
    .sort((a, b) => Number(a[0].match(GRAPH_KEY)[1]) - Number(b[0].match(GRAPH_KEY)[1]));
}

function fmtShape(s) {
  if (s === null || s === undefined) return "None";
  if (Array.isArray(s)) return `[${s.map(String).join(", ")}]`;
  return String(s);
}

function fmtShapes(list) {
  if (!Array.isArray(list)) return "";
  return list.map(fmtShape).join(" ");
}

function fmtCount(n) {
  return typeof n === "number" ? n.toLocaleString("en-US") : "";
}

/** The table of one graph document. */
export function graphTable(doc) {
  const nodes = Array.isArray(doc && doc.nodes) ? doc.nodes : [];
  if (!nodes.length) return h("p", { class: "muted" }, "no modules recorded");
  return h("div", { class: "table-scroll" }, h("table", { class: "data model-graph" },
    h("thead", null, h("tr", null, h("th", null, "module"), h("th", null, "class"), h("th", null, "parameters"),
      h("th", { class: "num" }, "params (total)"), h("th", null, "input shape"), h("th", null, "output shape"))),
    h("tbody", null, nodes.map((n) => {
      const depth = Math.max(0, Math.min(32, Number(n.depth) || 0));
      const name = String(n.name ?? "");
      const params = Array.isArray(n.parameters) ? n.parameters : [];
      return h("tr", { dataset: { module: name, depth: String(depth) } },
        h("td", { class: "module-name", style: `padding-left:${0.6 + depth * 1.2}rem` }, name === "" ? "(model)" : name.slice(name.lastIndexOf(".") + 1),
          name.includes(".") ? h("span", { class: "muted" }, ` ${name}`) : null),
        h("td", { class: "module-class" }, String(n.class_name ?? "")),
        h("td", { class: "module-params" }, params.map((p, i) => [i ? ", " : "", `${String(Array.isArray(p) ? p[0] : p)} ${fmtShape(Array.isArray(p) ? p[1] : null)}`])),
        h("td", { class: "num" }, fmtCount(n.total_parameters ?? n.num_parameters)),
        h("td", { class: "module-shape" }, fmtShapes(n.input_shape)),
        h("td", { class: "module-shape" }, fmtShapes(n.output_shape)));
    }))));
}

/** The "Model" section of a run's overview, or null when the run has no graph. */
export function modelSection(run) {
  const graphs = graphsOf(run.summary);
  if (!graphs.length) return null;
  return h("section", { id: "model" }, h("h2", null, "Model"), graphs.map(([key, v]) => {
    const body = h("div", { class: "model-body" }, h("p", { class: "muted" }, "loading…"));
    if (!cache.has(v.sha256)) cache.set(v.sha256, api.mediaJson(v.sha256));
    cache.get(v.sha256).then((doc) => body.replaceChildren(graphTable(doc)), (e) => {
      cache.delete(v.sha256);
      body.replaceChildren(h("p", { class: "error" }, e.message));
    });
    return h("div", { class: "model-graph-wrap", dataset: { key } }, h("h3", null, key, " ", h("span", { class: "muted" }, `${v.nodes ?? "?"} modules`)), body);
  }));
}
