"""Which of a run's fields an edit on the server overrides, and how a later sync of its file meets them.

Layer 5 (the server); pure functions over a ``runs`` row and a batch's encoded run fields, used by
``ingest.apply_batch`` in the batch's transaction (``edits.edit_run`` writes the record).

The rule (W&B's: an edit made in the UI sticks; a later resume that sets a name changes it): the
run's file sends its name, tags and notes with every metadata update. ``runs.edited`` holds, for
each field edited on the server, the value the file had sent when the edit was made. While the
file keeps sending that value, the server's edit stands; once the file sends another value (a
resumed run that sets a new name or tags), the file's value is taken and the edit is forgotten.
"""

from __future__ import annotations

from typing import Any

from wandblite.server.db import dumps, loads

__all__ = ["EDIT_FIELDS", "keep_edits"]

#: The run fields both an edit and the run's file set (``keep_edits`` decides which wins).
EDIT_FIELDS = ("name", "tags", "notes")


def keep_edits(r: Any, meta: dict[str, Any]) -> dict[str, Any]:
    """For a batch's run fields ``meta`` (encoded, ``wire.prep_run``) on the stored run row ``r``:
    drop the fields an edit overrides while the file still sends what it sent when the edit was
    made; forget the edit of a field the file changed since. Returns the row's ``edited`` column
    when it changes, else nothing."""
    if r is None or not r.edited:
        return {}
    edited: dict[str, Any] = loads(r.edited) or {}
    changed = False
    for k in list(edited):
        if k not in meta:
            continue
        if meta[k] == edited[k]:
            del meta[k]  # the file says what it said: the edit stands
        else:
            del edited[k]  # the file has a new value (a resume that sets it): the file wins
            changed = True
    return {"edited": dumps(edited) if edited else None} if changed else {}
