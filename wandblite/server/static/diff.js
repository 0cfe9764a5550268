// Config diff: two to ten runs' config and summary side by side, only the keys whose values
// differ (a toggle shows them all). Reached from the runs table's selection
// (#/p/<project>/diff/<run>,<run>...).
//
// Values are shown exactly, as text (numbers unrounded, strings as they are, lists and objects
// as JSON); a key a run lacks shows "(absent)". Keys, values and names from the runs are
// untrusted: the table is built with dom.js's h() (text nodes only).

import { api } from "./api.js";
import { clear, flatten, h } from "./dom.js";
import { INTERNAL_PREFIX } from "./vocab.js";

export const DIFF_MIN = 2;
export const DIFF_MAX = 10;
const enc = encodeURIComponent;
const ABSENT = Symbol("absent");

/** A value as the diff shows it: exact, as text. */
export function valueText(v) {
  if (v === ABSENT) return "(absent)";
  if (v === null) return "null";
  if (typeof v === "number") return Number.isNaN(v) ? "NaN" : String(v);
  if (typeof v === "string") return v;
  if (typeof v === "boolean") return String(v);
  return JSON.stringify(v, (_k, x) => (typeof x === "number" && !Number.isFinite(x) ? String(x) : x));
}

/**
 * The rows of the diff: [{key, section, texts, differs}] for every flattened config and summary
 * key of `runs` (internal keys left out), sorted by section then key.
 */
export function diffRows(runs) {
  const rows = [];
  for (const section of ["config", "summary"]) {
    const maps = runs.map((r) => new Map(flatten(r[section] || {})));
    const keys = [...new Set(maps.flatMap((m) => [...m.keys()]))].filter((k) => !k.startsWith(INTERNAL_PREFIX)).sort();
    for (const key of keys) {
      const texts = maps.map((m) => valueText(m.has(key) ? m.get(key) : ABSENT));
      const absent = maps.map((m) => !m.has(key));
      const differs = new Set(texts.map((t, i) => (absent[i] ? "\u0000absent" : t))).size > 1;
      rows.push({ key, section, texts, absent, differs });
    }
  }
  return rows;
}

export async function diffView(project, runIds, setCrumbs) {
  setCrumbs(["projects", "#/"], [project, `#/p/${enc(project)}`], [`diff ${runIds.length}`, null]);
  if (runIds.length < DIFF_MIN || runIds.length > DIFF_MAX) {
    return h("div", { class: "error-box", id: "diff-error" },
      `A config diff compares ${DIFF_MIN} to ${DIFF_MAX} runs; ${runIds.length} were selected.`);
  }
  const runs = await Promise.all(runIds.map((id) => api.run(project, id)));
  const rows = diffRows(runs);
  const showAll = h("input", { type: "checkbox", id: "diff-show-all" });
  const count = h("span", { class: "muted", id: "diff-count" });
  const wrap = h("div", { class: "table-scroll" });

  function draw() {
    const shown = rows.filter((r) => showAll.checked || r.differs);
    const differing = rows.filter((r) => r.differs).length;
    count.textContent = `${differing} of ${rows.length} keys differ`;
    const table = h("table", { class: "data kv diff", id: "diff-table" },
      h("thead", null, h("tr", null, h("th", null, "key"),
        runs.map((r) => h("th", { dataset: { run: r.id } }, h("a", { href: `#/p/${enc(project)}/r/${enc(r.id)}` }, r.name || r.id))))),
      h("tbody", null, shown.map((r) => h("tr", { class: r.differs ? "differs" : null, dataset: { key: `${r.section}.${r.key}` } },
        h("th", { scope: "row" }, h("span", { class: "muted" }, `${r.section}.`), r.key),
        r.texts.map((t, i) => h("td", { class: r.absent[i] ? "muted absent" : null }, t))))));
    clear(wrap).append(shown.length ? table : h("p", { class: "muted", id: "diff-same" },
      "The selected runs have the same config and summary."));
  }
  showAll.addEventListener("change", draw);
  draw();
  return h("div", { class: "diff-view" }, h("h1", null, `Config diff of ${runs.length} runs`),
    h("p", null, h("label", null, showAll, " show every key, not only those that differ"), " ", count), wrap);
}
