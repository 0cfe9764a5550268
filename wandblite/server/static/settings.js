// A project's settings page (members with their roles, visibility) and the audit log page.
//
// Who may change what is the server's decision: the page asks GET /api/v1/me?project=P whether the
// user manages the project and draws the controls only then; the server refuses a change from
// anyone else anyway. Roles and visibilities come from vocab.js (wandblite/vocab.py). User names,
// project names and audit details are inserted as text only (dom.js's h()).

import { api } from "./api.js";
import { clear, fmtTime, h } from "./dom.js";
import { ROLES, VISIBILITIES } from "./vocab.js";

const enc = encodeURIComponent;
const AUDIT_PAGE = 100;

function select(id, values, value, label) {
  const el = h("select", { id, "aria-label": label }, values.map((v) => h("option", { value: v }, v)));
  el.value = value;
  return el;
}

/** #/p/<project>/settings: the project's visibility and members; controls for its admins only. */
export async function settingsView(project, { main, setCrumbs, projectLinks }) {
  setCrumbs(["projects", "#/"], [project, `#/p/${enc(project)}`], ["settings", null]);
  const [info, me] = await Promise.all([api.members(project), api.me(project)]);
  const manage = !!(me && me.manage);
  const msg = h("p", { class: "error", role: "alert", id: "settings-error" });
  const body = h("div", { class: "settings", id: "project-settings", dataset: { manage: String(manage) } });
  clear(main).append(h("h1", null, project), projectLinks(project, "settings"), msg, body);

  /** Run a change, then draw what the server answers (the members and visibility after it). */
  const change = async (f) => {
    msg.textContent = "";
    try {
      draw(await f());
    } catch (e) {
      msg.textContent = e.message;
    }
  };

  function draw(state) {
    const vis = manage
      ? select("visibility", VISIBILITIES, state.visibility, "visibility")
      : h("strong", { id: "visibility" }, state.visibility);
    if (manage) vis.addEventListener("change", () => change(() => api.setVisibility(project, vis.value)));
    const rows = state.members.map((m) => {
      let roleCell = h("span", { class: "role" }, m.role);
      let actions = null;
      if (manage) {
        const sel = select(`role-${m.user}`, ROLES, m.role, `role of ${m.user}`);
        sel.addEventListener("change", () => change(() => api.setMember(project, m.user, sel.value)));
        roleCell = sel;
        actions = h("button", { type: "button", class: "remove", "aria-label": `remove ${m.user}`,
          onclick: () => change(() => api.removeMember(project, m.user)) }, "remove");
      }
      return h("tr", { dataset: { user: m.user } }, h("td", { class: "user" }, m.user), h("td", null, roleCell),
        manage ? h("td", null, actions) : null);
    });
    const table = h("table", { class: "data members", id: "members-table" },
      h("thead", null, h("tr", null, h("th", null, "user"), h("th", null, "role"), manage ? h("th", null, "") : null)),
      h("tbody", null, rows));
    const parts = [h("h2", null, "Visibility"), h("p", null, vis, " ",
      h("span", { class: "muted small" }, "private: members only · internal: every user of this server · public: anyone")),
    h("h2", null, "Members"), h("div", { class: "table-scroll" }, table)];
    if (manage) {
      const who = h("input", { type: "text", id: "new-member", placeholder: "user name", "aria-label": "user name" });
      const role = select("new-member-role", ROLES, ROLES[0], "role of the new member");
      const add = h("form", { class: "toolbar", id: "add-member" }, who, role, h("button", { type: "submit" }, "add member"));
      add.addEventListener("submit", (ev) => {
        ev.preventDefault();
        if (who.value.trim()) change(() => api.setMember(project, who.value.trim(), role.value));
      });
      parts.push(add, h("p", null, h("a", { href: `#/audit/${enc(project)}`, id: "project-audit-link" }, "this project's audit log")));
    } else {
      parts.push(h("p", { class: "muted", id: "settings-readonly" }, "Only the project's admins change its members and visibility."));
    }
    clear(body).append(...parts);
  }
  draw(info);
}

function detailText(d) {
  if (d === null || d === undefined) return "";
  if (typeof d !== "object") return String(d);
  return Object.entries(d).map(([k, v]) => `${k}: ${typeof v === "object" && v !== null ? JSON.stringify(v) : String(v)}`).join(", ");
}

/** #/audit[/<project>]: the audit log, newest first, a page at a time (the server decides who reads it). */
export async function auditView(project, { main, setCrumbs }) {
  setCrumbs(["projects", "#/"], ["audit log", null]);
  const filter = h("input", { type: "text", id: "audit-project", placeholder: "project", value: project || "", "aria-label": "project" });
  const form = h("form", { class: "toolbar", id: "audit-filter" }, h("label", { for: "audit-project" }, "project"), filter,
    h("button", { type: "submit" }, "filter"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const p = filter.value.trim();
    location.hash = p ? `#/audit/${enc(p)}` : "#/audit";
  });
  const tbody = h("tbody");
  const more = h("button", { type: "button", id: "audit-more", hidden: true }, "older entries");
  clear(main).append(h("h1", null, project ? `Audit log of ${project}` : "Audit log"), form,
    h("div", { class: "table-scroll" }, h("table", { class: "data audit", id: "audit-table" },
      h("thead", null, h("tr", null, ["time", "user", "key", "client", "action", "project", "run", "what"].map((c) => h("th", null, c)))),
      tbody)), h("div", { class: "pager" }, more));
  let next = null;
  const load = async () => {
    const page = await api.audit({ project, before: next, limit: AUDIT_PAGE });
    for (const e of page.entries) {
      tbody.append(h("tr", { dataset: { action: e.action, id: String(e.id) } },
        h("td", null, fmtTime(e.ts)), h("td", null, e.user ?? ""), h("td", null, e.key_id ?? ""), h("td", null, e.client ?? ""),
        h("td", { class: "action" }, e.action), h("td", null, e.project ?? ""), h("td", null, e.run_id ?? ""),
        h("td", { class: "detail" }, detailText(e.detail))));
    }
    next = page.next;
    more.hidden = next === null || next === undefined;
  };
  more.addEventListener("click", () => load().catch((e) => { more.replaceWith(h("p", { class: "error" }, e.message)); }));
  await load();
}
