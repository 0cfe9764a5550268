"""``wandblite server``: open (and migrate) the store, print the first admin key once, run uvicorn.

Layer 5. Settings come from the CLI (flags, each with an env var); defaults serve the embedded
store in ``$WANDBLITE_HOME`` (``~/.wandblite``): ``sqlite:///<home>/store.db`` and ``<home>/media``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from wandblite.server.store import Store
from wandblite.vocab import home_dir

__all__ = ["open_store", "serve"]


def open_store(db: str | None = None, media: str | os.PathLike[str] | None = None) -> Store:
    """The store named by ``db`` (a SQLAlchemy URL), or the embedded one; media beside it by default."""
    home = home_dir()
    if db is None:
        db = f"sqlite:///{home / 'store.db'}"
    if media is None:
        media = home / "media"
    return Store(db, media_dir=Path(media))


def serve(host: str, port: int, db: str | None, media: str | None, public_read: bool,
          log_level: str = "warning", max_blob_bytes: int | None = None) -> None:
    """Serve the store; blobs up to ``max_blob_bytes`` (None: ``$WANDBLITE_MAX_BLOB_SIZE`` or 16 GiB)."""
    import uvicorn

    from wandblite.server.app import create_app

    store = open_store(db, media)
    key = store.ensure_admin_key()
    if key is not None:
        # stdout, once: the only time the key exists outside the caller's hands.
        print(f"wandblite: admin API key (shown once): {key}", flush=True)
    print(f"wandblite: serving {store.url.split('@')[-1]} on http://{host}:{port}"
          + (" (public read)" if public_read else ""), file=sys.stderr, flush=True)
    app = create_app(store, public_read=public_read, max_blob_bytes=max_blob_bytes)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
