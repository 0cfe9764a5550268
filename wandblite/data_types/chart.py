"""``Chart``: the value ``wandblite.plot.*`` returns, a chart kind + field mapping + data table.

JSON: ``{"_type": "chart", "kind": "line"|"scatter"|"bar"|"histogram"|"line_series"|"pr_curve"|
"roc_curve"|"confusion_matrix", "fields": {role: column}, "title": str, "table": <table-file ref>}``.
The table is stored under the logical key ``{key}_table`` (the key wandb gives it). A dashboard
draws the chart from the table alone; nothing is recomputed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wandblite.data_types._base import Media
from wandblite.data_types.table import Table
from wandblite.errors import DataError

if TYPE_CHECKING:
    from wandblite.media import MediaStore

__all__ = ["Chart"]


class Chart(Media):
    """A chart over a ``Table``; ``fields`` maps the chart's roles (x, y, ...) to column names."""

    _log_type = "chart"

    def __init__(
        self,
        kind: str,
        table: Table,
        fields: dict[str, str | None],
        title: str | None = None,
        string_fields: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(table, Table):
            raise DataError(f"a {kind} chart needs a wandb.Table, got {type(table).__name__}")
        for role, col in fields.items():
            if col is not None and col not in table.columns:
                raise DataError(
                    f"{kind} chart: {role}={col!r} is not a column of the table; columns are {table.columns}"
                )
        self.kind = kind
        self.table = table
        self.fields = {k: v for k, v in fields.items() if v is not None}
        self.title = title or ""
        self.string_fields = dict(string_fields or {})

    def to_json(self, store: MediaStore, key: str, step: int) -> dict[str, Any]:
        out: dict[str, Any] = {
            "_type": "chart",
            "kind": self.kind,
            "fields": dict(self.fields),
            "title": self.title,
        }
        if self.string_fields:
            out["string_fields"] = dict(self.string_fields)
        out["table"] = self.table.to_json(store, f"{key}_table", step)
        return out
