// The one place that collects and applies every piece of a project's workspace view state.
//
// A piece is registered by the code that owns it: registerState(name, get, set). `get()` returns
// the piece as plain JSON (or undefined to leave it out of the document); `set(value)` applies a
// value, where undefined means "the default". The names are the saved document's fields (the server
// validates them: wandblite/server/workspaces.py): "runs", "selection" (the runs table), "charts",
// "sections", "panels" (the charts) and "grouping" (the grouping feature plugs in here with its own
// getGroupingState/setGroupingState).
//
// collectState() makes the document; applyState(doc) hands each registered piece its value and
// keeps the document, so a piece registered later (a view built after the document arrived) is
// given its value when it registers: once per document and name, so a view that registers its
// piece again (the page shown again) keeps the state the user has changed since.

const pieces = new Map(); // name -> {get, set}
let applied = null; // the document applied last (null: none, every piece at its default)
const given = new Set(); // the names that document has been handed to

/** Register a piece; returns a function that unregisters it (when its view goes away). */
export function registerState(name, get, set) {
  const piece = { get, set };
  pieces.set(name, piece);
  if (applied && !given.has(name) && applied[name] !== undefined) {
    given.add(name);
    set(applied[name]);
  }
  return () => {
    if (pieces.get(name) === piece) pieces.delete(name);
  };
}

/** The names registered now. */
export function stateNames() {
  return [...pieces.keys()];
}

/** The workspace document of everything registered, with the server's document `version`. */
export function collectState(version) {
  const doc = { version };
  for (const [name, p] of pieces) {
    const v = p.get();
    if (v !== undefined) doc[name] = v;
  }
  return doc;
}

/** Apply a document (null: every piece back to its default). A piece that fails does not stop the rest. */
export function applyState(doc) {
  applied = doc && typeof doc === "object" ? doc : null;
  given.clear();
  const errors = [];
  for (const [name, p] of pieces) {
    given.add(name);
    try {
      p.set(applied ? applied[name] : undefined);
    } catch (e) {
      errors.push(`${name}: ${e.message}`);
    }
  }
  if (errors.length) throw new Error(`the saved workspace could not be applied in full (${errors.join("; ")})`);
}

/** Forget the applied document (a new project's workspace starts from its own). */
export function forgetState() {
  applied = null;
  given.clear();
}
