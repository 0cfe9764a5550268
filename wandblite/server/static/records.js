// A run's saved files, alerts and artifacts, and a project's artifacts (PROTOCOL.md: "Files,
// artifacts, uses and alerts").
//
// Everything here is untrusted text (file names, artifact names and types, aliases, entry paths,
// alert titles and texts): it reaches the DOM only through dom.js's `h()`. Links go only to this
// server's API, built from validated pieces: file names checked by the server's own rule
// (api.js validFileName) and percent-encoded segment by segment, artifact names and versions
// percent-encoded, object links only for a 64-hex sha256 (`mediaUrl`).

import { api, fileUrl } from "./api.js";
import { clear, fmtTime, h, mediaUrl } from "./dom.js";
import { DEFAULT_ALERT_WAIT } from "./vocab.js";

const enc = encodeURIComponent;

export function fmtBytes(n) {
  if (typeof n !== "number" || !Number.isFinite(n) || n < 0) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return i === 0 ? `${n} B` : `${n.toFixed(n < 10 ? 2 : 1)} ${units[i]}`;
}

/** The last segment of a "/"-separated path (a download's suggested name). */
function baseName(path) {
  const s = String(path);
  return s.slice(s.lastIndexOf("/") + 1) || "download";
}

const versionNo = (v) => (Number.isInteger(v) && v >= 0 ? v : null);
const refOf = (v) => (versionNo(v) === null ? null : `v${v}`);

function aliasTags(aliases) {
  return (Array.isArray(aliases) ? aliases : []).map((a) => h("span", { class: "tag alias" }, String(a)));
}

function table(cls, id, heads, rows) {
  return h("div", { class: "table-scroll" }, h("table", { class: `data ${cls}`, id },
    h("thead", null, h("tr", null, heads.map(([label, num]) => h("th", { class: num ? "num" : null }, label)))),
    h("tbody", null, rows)));
}

// --------------------------------------------------------------------------------------- files

function filesTable(project, runId, files) {
  if (!files.length) return h("p", { class: "muted", id: "files-empty" }, "This run saved no files.");
  return table("files", "files-table", [["name"], ["size", true], ["policy"], ["saved"], ["versions", true], [""]],
    files.map((f) => {
      const url = f.lost ? null : fileUrl(project, runId, f.name);
      return h("tr", { dataset: { name: String(f.name) } },
        h("td", { class: "file-name" }, String(f.name)),
        h("td", { class: "num" }, fmtBytes(f.size)),
        h("td", null, String(f.policy ?? "")),
        h("td", null, fmtTime(f.ts)),
        h("td", { class: "num" }, String(f.versions ?? "")),
        h("td", null, url ? h("a", { href: url, download: baseName(f.name), class: "download" }, "download")
          : h("span", { class: "muted", title: "its bytes were not uploaded" }, f.lost ? "not uploaded" : "")));
    }));
}

// ----------------------------------------------------------------------------------- artifacts

/** One version's manifest: its metadata and its entries with download links. */
function manifestBody(m) {
  const entries = Object.entries(m.entries && typeof m.entries === "object" ? m.entries : {})
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const meta = [["digest", m.digest], ["created", fmtTime(m.created_at)], ["logged by", m.run], ["description", m.description]]
    .filter(([, v]) => v !== null && v !== undefined && v !== "");
  const md = m.metadata && typeof m.metadata === "object" && Object.keys(m.metadata).length ? JSON.stringify(m.metadata) : null;
  return h("div", { class: "manifest" },
    meta.length ? h("p", { class: "muted small" }, meta.map(([k, v], i) => [i ? " · " : "", `${k} ${v}`])) : null,
    md ? h("pre", { class: "json" }, md) : null,
    entries.length ? table("manifest-entries", null, [["path"], ["size", true], [""]], entries.map(([path, e]) => {
      const ent = e && typeof e === "object" ? e : {};
      let link = null;
      if (typeof ent.sha256 === "string" && /^[0-9a-f]{64}$/.test(ent.sha256)) {
        link = h("a", { href: mediaUrl(ent.sha256), download: baseName(path), class: "download" }, "download");
      } else if (typeof ent.ref === "string") link = h("span", { class: "muted ref" }, `reference ${ent.ref}`);
      return h("tr", { dataset: { path } }, h("td", { class: "entry-path" }, path), h("td", { class: "num" }, fmtBytes(ent.size)),
        h("td", null, link));
    })) : h("p", { class: "muted" }, "No entries."));
}

/**
 * An artifact version that expands to its manifest (fetched on first open).
 * `info`: {name, version, type, aliases, size, extra}.
 */
export function artifactDetails(project, info) {
  const ref = refOf(info.version);
  const label = ref ? `${info.name}:${ref}` : String(info.name);
  const body = h("div", { class: "artifact-body" });
  const det = h("details", { class: "artifact", dataset: { artifact: label } },
    h("summary", null, h("span", { class: "artifact-name" }, label),
      info.type ? h("span", { class: "artifact-type muted" }, ` ${info.type}`) : null, " ",
      aliasTags(info.aliases),
      Number.isFinite(info.size) ? h("span", { class: "artifact-size muted" }, fmtBytes(info.size)) : null,
      info.extra ? h("span", { class: "muted small" }, ` ${info.extra}`) : null),
    body);
  let loaded = false;
  det.addEventListener("toggle", () => {
    if (!det.open || loaded) return;
    loaded = true;
    if (!ref) {
      body.append(h("p", { class: "muted" }, "This version is not on the server."));
      return;
    }
    body.append(h("p", { class: "muted" }, "Loading…"));
    api.artifact(project, String(info.name), ref).then(
      (m) => clear(body).append(manifestBody(m)),
      (e) => { loaded = false; clear(body).append(h("p", { class: "error" }, e.message)); });
  });
  return det;
}

/** name -> version -> {type, size} from the project's artifact list. */
function versionIndex(list) {
  const idx = new Map();
  for (const a of list.artifacts || []) {
    const byVersion = new Map();
    for (const v of a.versions || []) byVersion.set(v.version, { type: a.type, size: v.size, aliases: v.aliases });
    idx.set(a.name, byVersion);
  }
  return idx;
}

/** The run page's "files & artifacts" tab. */
export async function filesTab(project, runId, into) {
  const [files, arts, list] = await Promise.all([api.files(project, runId), api.runArtifacts(project, runId),
    api.artifacts(project).catch(() => ({ artifacts: [] }))]);
  const idx = versionIndex(list);
  const known = (name, version) => (idx.get(name) || new Map()).get(version) || {};
  const logged = arts.logged || [];
  const used = arts.used || [];
  const runLink = (r) => (typeof r === "string" && r && r !== runId ? `from run ${r}` : null);
  clear(into).append(
    h("h2", null, "Files"), filesTable(project, runId, files.files || []),
    h("h2", null, "Logged artifacts"),
    logged.length ? h("div", { class: "artifact-list", id: "logged-artifacts" }, logged.map((a) => {
      const k = known(a.name, a.version);
      // The aliases a version holds now (an alias moves to a newer version); fall back to the log record's.
      return artifactDetails(project, { name: a.name, version: a.version, type: k.type, aliases: k.aliases ?? a.aliases, size: k.size });
    })) : h("p", { class: "muted" }, "This run logged no artifacts."),
    h("h2", null, "Used artifacts"),
    used.length ? h("div", { class: "artifact-list", id: "used-artifacts" }, used.map((a) => {
      const k = known(a.name, a.version);
      return artifactDetails(project, { name: a.name, version: a.version, type: a.type ?? k.type, aliases: k.aliases, size: k.size,
        extra: runLink(a.run) });
    })) : h("p", { class: "muted" }, "This run used no artifacts."));
}

/** The project's artifacts: #/p/<project>/artifacts. */
export async function projectArtifacts(project, into) {
  const list = await api.artifacts(project);
  const arts = list.artifacts || [];
  if (!arts.length) {
    into.append(h("p", { class: "muted" }, "No artifacts were logged in this project."));
    return;
  }
  into.append(h("div", { id: "project-artifacts" }, arts.map((a) => h("section", { class: "artifact-group", dataset: { name: String(a.name) } },
    h("h2", null, h("span", { class: "artifact-group-name" }, String(a.name)), " ", h("span", { class: "muted small" }, String(a.type ?? "")),
      h("span", { class: "muted small" }, ` · ${(a.versions || []).length} version${(a.versions || []).length === 1 ? "" : "s"}`)),
    h("p", { class: "aliases small" }, Object.entries(a.aliases || {}).sort().map(([alias, v]) =>
      h("span", { class: "tag alias" }, `${alias} → v${v}`))),
    h("div", { class: "artifact-list" }, [...(a.versions || [])].reverse().map((v) => artifactDetails(project, {
      name: a.name, version: v.version, type: null, aliases: v.aliases, size: v.size,
      extra: [v.run ? `run ${v.run}` : "", fmtTime(v.created_at)].filter(Boolean).join(" · "),
    })))))));
}

// -------------------------------------------------------------------------------------- alerts

const LEVELS = new Set(["info", "warn", "error"]);

export function levelBadge(level) {
  const l = String(level ?? "").toLowerCase();
  return h("span", { class: `level level-${LEVELS.has(l) ? l : "other"}` }, String(level ?? ""));
}

/** All of a run's alerts (paged). */
export async function loadAlerts(project, runId, max = 10000) {
  const out = [];
  let start = 0;
  while (out.length < max) {
    const page = await api.alerts(project, runId, start, 1000);
    out.push(...(page.alerts || []));
    if (page.next === null || page.next === undefined) break;
    start = page.next;
  }
  return out;
}

// An alert wandb would not have sent (`run.alert`'s wait_duration) comes back with `throttled: true`:
// the server decides it as it stores the alert (wandblite/throttle.py). The wait it was
// measured against is the alert's own wait_duration, or wandb's default (vocab.js) when it has none.

function suppressedNote(a) {
  const w = typeof a.wait_duration === "number" && a.wait_duration ? a.wait_duration : DEFAULT_ALERT_WAIT;
  return `suppressed: same title within ${w} s`;
}

/** The overview's alerts section (filled when loaded; a refresh shows the previous one meanwhile). */
export function alertsSection(project, runId, previous) {
  const el = h("section", { class: "alerts", id: "alerts" },
    previous ? [...previous.childNodes].map((n) => n.cloneNode(true)) : [h("h2", null, "Alerts"), h("p", { class: "muted" }, "Loading…")]);
  loadAlerts(project, runId).then((alerts) => {
    const sent = alerts.filter((a) => !a.throttled).length;
    const count = sent === alerts.length ? ` ${alerts.length}` : ` ${sent} (+${alerts.length - sent} suppressed)`;
    clear(el).append(h("h2", null, "Alerts", alerts.length ? h("span", { class: "count muted" }, count) : null),
      alerts.length ? table("alerts", "alerts-table", [["time"], ["level"], ["title"], ["text"]], alerts.map((a) =>
        h("tr", { class: a.throttled ? "throttled" : null, dataset: { idx: String(a.idx) } },
          h("td", { class: "nowrap" }, fmtTime(a.ts)), h("td", null, levelBadge(a.level)),
          h("td", { class: "alert-title" }, String(a.title ?? "")),
          h("td", null, h("span", { class: "alert-text" }, String(a.text ?? "")),
            a.throttled ? h("span", { class: "alert-note muted" }, suppressedNote(a)) : null))))
        : h("p", { class: "muted" }, "No alerts."));
  }, (e) => clear(el).append(h("h2", null, "Alerts"), h("p", { class: "error" }, e.message)));
  return el;
}

/** The small badge next to a run's name: how many alerts it sent, throttled ones not counted (a link to
 * the overview); null for none. */
export async function alertBadge(project, runId) {
  const page = await api.alerts(project, runId, 0, 1);
  const n = page && Number.isInteger(page.sent) ? page.sent : 0;
  if (n <= 0) return null;
  return h("a", { class: "alert-badge", id: "alert-badge", href: `#/p/${enc(project)}/r/${enc(runId)}/overview`,
    title: `${n} alert${n === 1 ? "" : "s"}`, "aria-label": `${n} alert${n === 1 ? "" : "s"}` }, `⚠ ${n}`);
}
