// Editing one run from its page: rename, tags, notes, archive / restore, move, delete.
//
// The server decides who may (docs/roles.md: the run's owner or a project admin); a refusal is
// shown as the server's message. Everything a run carries is shown as text (dom.js's h(), never
// innerHTML). Deleting asks first, in the page: the run's name must be typed back.

import { api } from "./api.js";
import { h } from "./dom.js";

const enc = encodeURIComponent;

/** Tags as typed: comma-separated, trimmed, empty ones dropped, each once. */
export function parseTags(text) {
  return [...new Set(String(text).split(",").map((t) => t.trim()).filter(Boolean))];
}

/**
 * The edit section of a run's page. `onChanged(run)` is called with the run as the server answers
 * after an edit (the page redraws its header); a move or a delete leaves for the new place.
 */
export function editSection(project, run, onChanged) {
  const msg = h("p", { class: "error", role: "alert", id: "edit-msg" });
  const done = h("p", { class: "muted", role: "status", id: "edit-done" });
  const name = h("input", { type: "text", id: "edit-name", "aria-label": "run name", value: run.name || "", size: 40 });
  const tags = h("input", { type: "text", id: "edit-tags", "aria-label": "tags, comma-separated", value: (run.tags || []).join(", "), size: 40 });
  const notes = h("textarea", { id: "edit-notes", "aria-label": "notes", rows: 3, cols: 60 });
  notes.value = run.notes || "";
  const target = h("input", { type: "text", id: "move-target", "aria-label": "move to project", placeholder: "another project" });
  let current = run;

  async function act(what, fn) {
    msg.textContent = "";
    done.textContent = "";
    try {
      await fn();
    } catch (e) {
      msg.textContent = `${what}: ${e.message}`;
    }
  }

  const save = h("button", { type: "submit", class: "primary", id: "edit-save" }, "save");
  const form = h("form", { class: "edit-form", id: "edit-form" },
    h("label", null, "name ", name), h("label", null, "tags ", tags), h("label", null, "notes ", notes), save);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    act("saving", async () => {
      const changes = {};
      const newName = name.value.trim() || null;
      if (newName !== (current.name || null)) changes.name = newName;
      const newTags = parseTags(tags.value);
      if (JSON.stringify(newTags) !== JSON.stringify(current.tags || [])) changes.tags = newTags;
      const newNotes = notes.value === "" ? null : notes.value;
      if (newNotes !== (current.notes || null)) changes.notes = newNotes;
      if (!Object.keys(changes).length) {
        done.textContent = "nothing changed";
        return;
      }
      current = await api.editRun(project, run.id, changes);
      done.textContent = "saved";
      onChanged(current);
    });
  });

  const archive = h("button", { type: "button", id: "edit-archive" });
  const drawArchive = () => { archive.textContent = current.archived ? "restore (unarchive)" : "archive"; };
  drawArchive();
  archive.addEventListener("click", () => act("archiving", async () => {
    current = await api.editRun(project, run.id, { archived: !current.archived });
    drawArchive();
    done.textContent = current.archived ? "archived: hidden from the runs list unless archived runs are shown" : "restored";
    onChanged(current);
  }));

  const move = h("button", { type: "button", id: "move-run" }, "move");
  move.addEventListener("click", () => act("moving", async () => {
    const to = target.value.trim();
    if (!to) throw new Error("name the project to move the run to");
    await api.moveRun(project, run.id, to);
    location.hash = `#/p/${enc(to)}/r/${enc(run.id)}`;
  }));

  const confirmBox = h("div", { class: "confirm", id: "delete-confirm", hidden: true, role: "dialog", "aria-label": "confirm delete" });
  const del = h("button", { type: "button", class: "danger", id: "delete-run" }, "delete…");
  del.addEventListener("click", () => {
    const typed = h("input", { type: "text", id: "delete-typed", "aria-label": "type the run id to confirm" });
    const yes = h("button", { type: "button", class: "danger", id: "delete-yes", disabled: true }, "delete for good");
    const no = h("button", { type: "button", id: "delete-no" }, "cancel");
    typed.addEventListener("input", () => { yes.disabled = typed.value !== run.id; });
    no.addEventListener("click", () => { confirmBox.hidden = true; confirmBox.replaceChildren(); });
    yes.addEventListener("click", () => act("deleting", async () => {
      await api.deleteRun(project, run.id);
      location.hash = `#/p/${enc(project)}`;
    }));
    confirmBox.replaceChildren(
      h("p", null, "Delete run ", h("strong", null, current.name || run.id), ` (${run.id})? Its history, console, system metrics, `
        + "files, media and artifact links go, with the blobs no other run uses. This cannot be undone. Type the run id to confirm:"),
      typed, " ", yes, " ", no);
    confirmBox.hidden = false;
    typed.focus();
  });

  return h("details", { class: "edit-run", id: "edit-run" }, h("summary", null, "edit run"),
    form, h("div", { class: "edit-actions" }, archive, " ", target, " ", move, " ", del), confirmBox, msg, done);
}
