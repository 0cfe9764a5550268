"""The web dashboard: the single-page app at ``/``, its files under ``/static/``, the shared vocabulary
and plotly.js.

Layer 5. ``dashboard_routes()`` returns the Starlette routes the app adds after its API routes.
What it promises:

* Every asset comes from this server: the files of ``static/`` beside this file (plain JS modules,
  no build step) and ``/static/vendor/plotly.min.js``, the file bundled in the installed ``plotly`` Python
  package (``pip install wandblite[server]``). Nothing is loaded from a CDN: users are air-gapped.
* ``/static/vocab.js`` is made here from ``wandblite.vocab`` (``vocab_js()``): the reserved history
  keys, the run states, the default alert wait, the file-name rule. The JS modules import these
  names from it and never restate them.
* The page is served with a strict Content-Security-Policy (``CSP`` below): scripts only from this
  origin, no plugins, never framed, images and media only from this origin (or ``data:``/``blob:``
  URLs the page makes itself). Inline styles are allowed because plotly sets them.
* The page holds no run data: the app fetches it from ``/api/v1`` and inserts it as text (see the
  security notes at the top of ``static/app.js``).
"""

from __future__ import annotations

import gzip
import json
import threading
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from wandblite import vocab
from wandblite.server.errors import not_found

__all__ = ["CSP", "STATIC_DIR", "dashboard_routes", "plotly_js_path", "vocab_js"]

STATIC_DIR = Path(__file__).resolve().parent / "static"

CSP = ("default-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
       "form-action 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self' 'unsafe-inline'")

_PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def plotly_js_path() -> Path | None:
    """The ``plotly.min.js`` bundled with the installed ``plotly`` package, or None without it."""
    try:
        import plotly
    except ImportError:
        return None
    p = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
    return p if p.is_file() else None


class _Gzipped:
    """One file's gzip bytes, made on first use and kept (plotly.min.js: ~4.8 MB -> ~1.4 MB)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[Path, tuple[float, bytes]] = {}

    def get(self, path: Path) -> bytes:
        mtime = path.stat().st_mtime
        with self._lock:
            hit = self._cache.get(path)
            if hit is None or hit[0] != mtime:
                hit = (mtime, gzip.compress(path.read_bytes(), compresslevel=6, mtime=0))
                self._cache[path] = hit
            return hit[1]


_STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".html": "text/html; charset=utf-8"}
_STATIC_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}


def vocab_js() -> str:
    """``/static/vocab.js``: an ES module exporting ``wandblite.vocab.js_constants()``, one const each."""
    lines = ["// The shared vocabulary of wandblite (wandblite/vocab.py), made by the server",
             "// (wandblite/server/dashboard.py, vocab_js). Not a file in static/: never edited by hand.", ""]
    for name, value in vocab.js_constants().items():
        lines.append(f"export const {name} = {json.dumps(value)};")
    return "\n".join(lines) + "\n"


def dashboard_routes() -> list[Route]:
    """The dashboard's routes: ``/`` (the app), ``/static/vendor/plotly.min.js``, ``/static/vocab.js``
    and ``/static/<file>``.

    ``/static/<file>`` serves only the files of ``static/`` listed when the routes are made (no
    directory walking, no path from the request ever reaches the file system)."""
    gz = _Gzipped()
    files = {p.name: p for p in STATIC_DIR.iterdir() if p.is_file() and p.suffix in _STATIC_TYPES}
    vocab_body = vocab_js()

    async def index(_request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)

    async def plotly_js(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        path = plotly_js_path()
        if path is None:
            # The app sees no window.Plotly and says how to install it.
            return Response("/* plotly is not installed: pip install 'wandblite[server]' */",
                            media_type="text/javascript", status_code=404)
        headers = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff", "Vary": "Accept-Encoding"}
        if "gzip" in request.headers.get("accept-encoding", ""):
            body: Any = await run_in_threadpool(gz.get, path)
            return Response(body, media_type="text/javascript", headers={**headers, "Content-Encoding": "gzip"})
        return FileResponse(path, media_type="text/javascript", headers=headers)

    async def static(request: Request) -> Response:
        path = files.get(request.path_params["name"])
        if path is None:
            raise not_found(f"no dashboard file {request.path_params['name']!r}")
        return FileResponse(path, media_type=_STATIC_TYPES[path.suffix], headers=_STATIC_HEADERS)

    async def vocab_module(_request: Request) -> Response:
        return Response(vocab_body, media_type=_STATIC_TYPES[".js"], headers=_STATIC_HEADERS)

    return [
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/static/vendor/plotly.min.js", plotly_js, methods=["GET", "HEAD"]),
        Route("/static/vocab.js", vocab_module, methods=["GET", "HEAD"]),
        Route("/static/{name}", static, methods=["GET", "HEAD"]),
    ]
