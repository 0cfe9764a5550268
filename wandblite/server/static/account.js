// The dashboard's account: the login form (a user name and password, or an API key), and the
// header's user name, audit link and log out / log in buttons.
//
// The session is an HttpOnly cookie the page never sees (api.js). Who is logged in comes from the
// server (GET /api/v1/me), as does everything shown here: the user name is inserted as text only
// (dom.js's h()), like everything else a server answers.

import { api, onUnauthorized } from "./api.js";
import { clear, h } from "./dom.js";

const main = document.getElementById("main");
const topbar = document.getElementById("topbar");
const logoutBtn = document.getElementById("logout");
const whoEl = h("span", { id: "whoami", class: "whoami", hidden: true, title: "logged in as" });
const auditLink = h("a", { id: "audit-link", href: "#/audit", hidden: true }, "Audit log");
const loginBtn = h("button", { id: "login", type: "button", hidden: true }, "Log in");
topbar.insertBefore(auditLink, logoutBtn);
topbar.insertBefore(whoEl, logoutBtn);
topbar.insertBefore(loginBtn, logoutBtn);

let hooks = { leave: () => {}, setCrumbs: () => {}, route: () => {} };
let current = null; // GET /me's answer, or null when nobody is logged in
let publicRead = false;
let loginShown = false;

/** The app's router hooks: `leave()` stops the current view, `setCrumbs(...)`, `route()`. */
export function initAccount(h0) {
  hooks = h0;
  onUnauthorized.add(() => {
    current = null; // the session ended (logged out elsewhere, key revoked, user disabled)
    paintHeader();
    showLogin();
  });
  loginBtn.addEventListener("click", () => showLogin());
  logoutBtn.addEventListener("click", async () => {
    try {
      await api.logout();
    } finally {
      current = null;
      paintHeader();
      location.hash = "#/";
      showLogin("Logged out.");
    }
  });
}

/** Whoever is logged in (GET /me), or null. */
export function currentUser() {
  return current;
}

/** A route change hides the login form. */
export function loginHidden() {
  loginShown = false;
}

function paintHeader() {
  whoEl.textContent = current ? current.user : "";
  whoEl.hidden = !current;
  logoutBtn.hidden = !current;
  auditLink.hidden = !(current && current.audit);
  loginBtn.hidden = !!current || !publicRead;
}

/** Ask the server who is logged in and show it in the header. */
export async function refreshAccount(session) {
  if (session) publicRead = !!session.public_read;
  current = await api.me();
  paintHeader();
  return current;
}

export function showLogin(message) {
  if (loginShown) return;
  loginShown = true;
  hooks.leave();
  hooks.setCrumbs(["log in", null]);
  const user = h("input", { type: "text", name: "username", autocomplete: "username", id: "login-user", placeholder: "user name" });
  const password = h("input", { type: "password", name: "password", autocomplete: "current-password", id: "login-password", placeholder: "password" });
  const key = h("input", { type: "password", name: "api_key", autocomplete: "off", placeholder: "API key", id: "api-key" });
  const err = h("p", { class: "error", role: "alert" }, message || "");
  const form = h("form", { class: "login", id: "login-form" },
    h("h1", null, "Log in"),
    h("p", { class: "muted" }, "Log in with your user name and password, or with an API key (wandblite server keys create)."),
    h("label", { for: "login-user" }, "User name"), user,
    h("label", { for: "login-password" }, "Password"), password,
    h("p", { class: "muted small or" }, "or"),
    h("label", { for: "api-key" }, "API key"), key,
    h("button", { type: "submit" }, "Log in"), err);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.textContent = "";
    const byKey = key.value.trim() !== "";
    try {
      if (byKey) await api.login(key.value.trim());
      else await api.loginPassword(user.value.trim(), password.value);
      key.value = "";
      password.value = "";
      loginShown = false;
      await refreshAccount();
      hooks.route();
    } catch (e) {
      if (e.status === 401) err.textContent = byKey ? "That key is not valid." : "Wrong user name or password.";
      else err.textContent = e.message;
    }
  });
  clear(main).append(form);
  user.focus();
}
