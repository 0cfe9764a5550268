// The dashboard's client of the server's read API (/api/v1, see PROTOCOL.md).
//
// Requests go to this origin only and carry the session cookie (HttpOnly, SameSite=Strict)
// set by POST /api/v1/session; the page never sees or stores the API key itself.

import { FILE_NAME_MAX, FILE_NAME_PATTERN } from "./vocab.js";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const enc = encodeURIComponent;

/** Listeners called with no argument when a read answers 401 (the app shows the login form). */
export const onUnauthorized = new Set();

/** The header the server asks of the writes a session may make (members, visibility): no
 * cross-site page can send it without a CORS preflight, which the server never grants. */
const PAGE_HEADER = { "X-Requested-With": "wandblite" };

/** `opts.quiet`: a 401 is the caller's answer (who am I?), not a reason to show the login form. */
async function request(method, path, body, opts = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json", ...(opts.headers || {}) } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch("/api/v1" + path, init);
  } catch (e) {
    throw new ApiError(0, "network", `the server did not answer (${e.message})`);
  }
  const text = await resp.text();
  let data = null;
  try {
    data = text ? parseJson(text) : null;
  } catch {
    data = null;
  }
  if (!resp.ok) {
    const err = (data && data.error) || {};
    if (resp.status === 401 && !opts.quiet) for (const f of onUnauthorized) f();
    throw new ApiError(resp.status, err.code || "http_error", err.message || `${method} ${path}: HTTP ${resp.status}`);
  }
  return data;
}

/** JSON with the server's NaN/Infinity tokens (outside strings) read as numbers. */
export function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch (e) {
    if (!/NaN|Infinity/.test(text)) throw e;
  }
  // Replace the bare tokens by sentinels strings, then revive them.
  const out = [];
  let inStr = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inStr) {
      out.push(c);
      if (c === "\\") out.push(text[++i]);
      else if (c === '"') inStr = false;
      continue;
    }
    if (c === '"') {
      inStr = true;
      out.push(c);
    } else if (text.startsWith("NaN", i)) {
      out.push('"\u0000NaN"');
      i += 2;
    } else if (text.startsWith("-Infinity", i)) {
      out.push('"\u0000-Infinity"');
      i += 8;
    } else if (text.startsWith("Infinity", i)) {
      out.push('"\u0000Infinity"');
      i += 7;
    } else out.push(c);
  }
  const special = { "\u0000NaN": NaN, "\u0000Infinity": Infinity, "\u0000-Infinity": -Infinity };
  return JSON.parse(out.join(""), (_k, v) => (typeof v === "string" && v in special ? special[v] : v));
}

const runPath = (p, r) => `/projects/${enc(p)}/runs/${enc(r)}`;

const FILE_NAME = new RegExp(`^(?:${FILE_NAME_PATTERN})$`);

/** A saved file name the server accepts (wandblite/vocab.py's file-name rule, from vocab.js). */
export function validFileName(name) {
  return typeof name === "string" && name.length > 0 && name.length <= FILE_NAME_MAX && FILE_NAME.test(name);
}

/** The download URL of a run's saved file (null for a name no link may be built from). */
export function fileUrl(p, r, name) {
  if (!validFileName(name)) return null;
  return "/api/v1" + runPath(p, r) + "/files/" + name.split("/").map(enc).join("/");
}

export const api = {
  session: () => request("GET", "/session"),
  login: (apiKey) => request("POST", "/session", { api_key: apiKey }, { quiet: true }),
  loginPassword: (user, password) => request("POST", "/session", { user, password }, { quiet: true }),
  /** Who the session is (null when anonymous); with a project, the role in it and whether one manages it. */
  me: async (project) => {
    try {
      return await request("GET", "/me" + (project ? `?${new URLSearchParams({ project })}` : ""), undefined, { quiet: true });
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return null;
      throw e;
    }
  },
  members: (p) => request("GET", `/projects/${enc(p)}/members`),
  setMember: (p, user, role) => request("PUT", `/projects/${enc(p)}/members/${enc(user)}`, { role }, { headers: PAGE_HEADER }),
  removeMember: (p, user) => request("DELETE", `/projects/${enc(p)}/members/${enc(user)}`, undefined, { headers: PAGE_HEADER }),
  setVisibility: (p, visibility) => request("PUT", `/projects/${enc(p)}/visibility`, { visibility }, { headers: PAGE_HEADER }),
  audit: ({ project, before, limit } = {}) => {
    const q = new URLSearchParams();
    if (project) q.set("project", project);
    if (before) q.set("before", String(before));
    if (limit) q.set("limit", String(limit));
    return request("GET", `/audit?${q}`);
  },
  logout: () => request("DELETE", "/session"),
  projects: () => request("GET", "/projects"),
  runs: (project, { order, search, filters, limit, offset, archived } = {}) => {
    const q = new URLSearchParams();
    if (archived) q.set("archived", archived);
    if (order) q.set("order", order);
    if (search) q.set("search", search);
    if (filters && Object.keys(filters).length) q.set("filters", JSON.stringify(filters));
    if (limit) q.set("limit", String(limit));
    if (offset) q.set("offset", String(offset));
    return request("GET", `/projects/${enc(project)}/runs?${q}`);
  },
  run: (p, r) => request("GET", runPath(p, r)),
  // Run edits (edits.py): the session cookie may make them (app.py's edit_auth), JSON bodies only.
  editRun: (p, r, changes) => request("PATCH", runPath(p, r), changes, { headers: PAGE_HEADER }),
  moveRun: (p, r, target) => request("POST", runPath(p, r) + "/move", { project: target }, { headers: PAGE_HEADER }),
  deleteRun: (p, r) => request("DELETE", runPath(p, r), undefined, { headers: PAGE_HEADER }),
  keys: (p, r) => request("GET", runPath(p, r) + "/keys"),
  series: (p, r, keys, xAxis, samples = 1500) =>
    request("GET", runPath(p, r) + `/series?${new URLSearchParams({ keys: keys.join(","), x_axis: xAxis, samples: String(samples) })}`),
  /** A group of runs' metrics aligned on x buckets (group_query.py): mean, median, min, max, std per bucket. */
  groupedSeries: (p, runIds, keys, xAxis, buckets = 500) =>
    request("GET", `/projects/${enc(p)}/grouped-series?${new URLSearchParams({ runs: runIds.join(","), keys: keys.join(","), x_axis: xAxis, buckets: String(buckets) })}`),
  media: (p, r, key) => request("GET", runPath(p, r) + `/media?${new URLSearchParams({ key })}`),
  /** The console as whole lines, joined by the server: the last `tail` lines containing `search`. */
  consoleLines: (p, r, { tail, search, writer } = {}) => {
    const q = new URLSearchParams();
    if (tail) q.set("tail", String(tail));
    if (search) q.set("search", search);
    if (writer) q.set("writer", writer); // a shared run's writer label: its lines only
    return request("GET", runPath(p, r) + `/console/lines?${q}`);
  },
  system: (p, r, start = 0, limit = 1000, writer = null) =>
    request("GET", runPath(p, r) + `/system?${new URLSearchParams({ start: String(start), limit: String(limit), ...(writer ? { writer } : {}) })}`),
  mesh: (sha) => request("GET", `/media/${sha}/mesh`),
  // Saved files, alerts and artifacts (PROTOCOL.md: "Files, artifacts, uses and alerts").
  position: (p, r) => request("GET", runPath(p, r) + "/position"),
  files: (p, r) => request("GET", runPath(p, r) + "/files"),
  alerts: (p, r, start = 0, limit = 1000) => request("GET", runPath(p, r) + `/alerts?start=${start}&limit=${limit}`),
  runArtifacts: (p, r) => request("GET", runPath(p, r) + "/artifacts"),
  artifacts: (p) => request("GET", `/projects/${enc(p)}/artifacts`),
  artifact: (p, name, ref) => request("GET", `/projects/${enc(p)}/artifacts/${enc(name)}/${enc(ref)}`),
  // Saved workspaces (wandblite/server/workspaces.py): the session cookie may save them (JSON, with PAGE_HEADER).
  workspace: (p) => request("GET", `/projects/${enc(p)}/workspace`),
  workspaceView: (p, id) => request("GET", `/projects/${enc(p)}/workspace/views/${enc(id)}`),
  saveWorkspace: (p, which, doc) => request("PUT", `/projects/${enc(p)}/workspace/${which === "default" ? "default" : "user"}`, doc, { headers: PAGE_HEADER }),
  resetWorkspace: (p, which) => request("DELETE", `/projects/${enc(p)}/workspace/${which === "default" ? "default" : "user"}`, undefined, { headers: PAGE_HEADER }),
  shareWorkspace: (p, doc) => request("POST", `/projects/${enc(p)}/workspace/views`, doc, { headers: PAGE_HEADER }),
  /** A JSON media blob (tables, boxes): fetched, parsed with NaN support. */
  mediaJson: async (sha) => {
    const resp = await fetch(`/api/v1/media/${sha}`, { credentials: "same-origin" });
    if (!resp.ok) throw new ApiError(resp.status, "media", `media ${sha.slice(0, 12)}…: HTTP ${resp.status}`);
    return parseJson(await resp.text());
  },
};
