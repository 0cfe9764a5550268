"""``Html`` (wandb.Html): an HTML document stored as a blob; wandblite never renders or runs it.

``data`` is a string of HTML, a path to an existing file, or a file object. With ``inject=True``
(the default, as in wandb) a ``<base target="_blank">`` and a small inline stylesheet are added to
the ``<head>`` (wandb links its hosted normalize.css; wandblite stays offline). Dashboards must
show it in a sandboxed iframe.

JSON: ``{"_type": "html-file", "path", "sha256", "size"}`` plus ``blob``/``offset``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from wandblite.data_types._base import Media, read_path, store_bytes
from wandblite.errors import DataError

if TYPE_CHECKING:
    from wandblite.media import MediaStore

__all__ = ["Html"]

_INJECT = '<base target="_blank"><style>body{margin:0;font-family:sans-serif}</style>'


def _inject(html: str) -> str:
    lower = html.lower()
    i = lower.find("<head>")
    if i >= 0:
        return html[: i + 6] + _INJECT + html[i + 6 :]
    i = lower.find("<html")
    if i >= 0:
        j = html.find(">", i)
        if j >= 0:
            return html[: j + 1] + "<head>" + _INJECT + "</head>" + html[j + 1 :]
    return "<head>" + _INJECT + "</head>" + html


class Html(Media):
    """wandb.Html: ``Html("<h1>hi</h1>")``, ``Html("report.html")`` or ``Html(open(...))``."""

    _log_type = "html-file"

    def __init__(self, data: Any, inject: bool = True, data_is_not_path: bool = False) -> None:
        if isinstance(data, (str, os.PathLike)) and not data_is_not_path and _looks_like_path(data):
            text = read_path(data).decode("utf-8", "replace")
        elif isinstance(data, str):
            text = data
        elif hasattr(data, "read"):
            if hasattr(data, "seek"):
                data.seek(0)
            raw = data.read()
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        else:
            raise DataError("html must be a string or an io object")
        self.html = _inject(text) if inject else text

    def to_json(self, store: MediaStore, key: str, step: int) -> dict[str, Any]:
        ref = store_bytes(store, self.html.encode("utf-8"), "html", "html", key, step)
        out: dict[str, Any] = {"_type": "html-file", "path": ref.pop("path"), "sha256": ref.pop("sha256")}
        out["size"] = ref.pop("size")
        out.update(ref)
        return out


def _looks_like_path(data: str | os.PathLike[str]) -> bool:
    """A PathLike, an existing file, or a one-line string ending in .html/.htm (missing -> error)."""
    if isinstance(data, os.PathLike):
        return True
    if "<" in data or "\n" in data:
        return False
    return os.path.isfile(data) or data.lower().endswith((".html", ".htm"))
