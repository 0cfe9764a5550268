"""``wandblite server``: open (and migrate) the store and its blob store, print the first admin key once, run uvicorn.

Layer 5. Settings come from the CLI (flags, each with an env var); defaults serve the embedded
store in ``$WANDBLITE_HOME`` (``~/.wandblite``): ``sqlite:///<home>/store.db`` and ``<home>/media``.
``--media s3://bucket/prefix`` keeps the blobs in an S3-compatible bucket (``blobstore_s3``); at
start the server checks that the blob store can be used (a clear error and exit 1 if not) and
sweeps the debris of uploads that died with an earlier process (``BlobStore.sweep``).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from wandblite.server.blobs import S3_SCHEME, STALE_TMP_SECONDS, BlobStore, DiskBlobStore
from wandblite.server.store import Store
from wandblite.vocab import home_dir

#: The largest request line and headers uvicorn (h11) reads; a longer one is a 400 from uvicorn itself.
MAX_REQUEST_HEAD = 1 << 20

__all__ = ["MAX_REQUEST_HEAD", "BlobSettings", "open_blob_store", "open_store", "prepare_blobs", "serve"]


def open_blob_store(location: str | os.PathLike[str], *, stale_seconds: float = STALE_TMP_SECONDS,
                    s3_endpoint_url: str | None = None, s3_presign: bool = False,
                    s3_multipart_threshold: int | None = None) -> BlobStore:
    """The blob store at ``location``: ``s3://bucket/prefix`` (``blobstore_s3``, boto3) or a directory.

    The ``s3_*`` settings apply to a bucket only; given with a directory they are a ``ValueError``.
    """
    text = os.fspath(location)
    if text.startswith(S3_SCHEME):
        from wandblite.server.blobstore_s3 import S3BlobStore

        try:  # boto3 is imported by the bucket's store only
            return S3BlobStore(text, endpoint_url=s3_endpoint_url, presign=s3_presign,
                               multipart_threshold=s3_multipart_threshold, stale_seconds=stale_seconds)
        except ImportError as exc:
            raise ValueError(f"--media {text} needs boto3: pip install 'wandblite[server]' ({exc})") from exc
    if s3_endpoint_url or s3_presign or s3_multipart_threshold is not None:
        raise ValueError(f"the S3 settings (--s3-endpoint-url, --s3-presign, --s3-multipart-threshold) need "
                         f"--media s3://bucket/prefix, not the directory {text!r}")
    return DiskBlobStore(text, stale_seconds=stale_seconds)


@dataclass(frozen=True)
class BlobSettings:
    """Where and how the blobs are kept (the ``--media``, ``--s3-*`` and ``--stale-upload-minutes`` flags)."""

    stale_seconds: float = STALE_TMP_SECONDS
    s3_endpoint_url: str | None = None
    s3_presign: bool = False
    s3_multipart_threshold: int | None = None


def open_store(db: str | None = None, media: str | os.PathLike[str] | None = None,
               blob_settings: BlobSettings | None = None) -> Store:
    """The store named by ``db`` (a SQLAlchemy URL), or the embedded one; its blobs in ``media`` (a
    directory or ``s3://bucket/prefix``), by default the directory ``media`` beside the embedded store."""
    home = home_dir()
    if db is None:
        db = f"sqlite:///{home / 'store.db'}"
    if media is None:
        media = home / "media"
    bs = blob_settings or BlobSettings()
    blobs = open_blob_store(media, stale_seconds=bs.stale_seconds, s3_endpoint_url=bs.s3_endpoint_url,
                            s3_presign=bs.s3_presign, s3_multipart_threshold=bs.s3_multipart_threshold)
    media_dir = None if os.fspath(media).startswith(S3_SCHEME) else Path(media)
    return Store(db, media_dir=media_dir, blobs=blobs)


def prepare_blobs(blobs: BlobStore) -> int:
    """Check that the blob store can be used (``ApiError`` if not); sweep stale uploads; how many were swept."""
    blobs.check()
    return blobs.sweep()


def serve(host: str, port: int, db: str | None, media: str | None, public_read: bool,
          log_level: str = "warning", max_blob_bytes: int | None = None,
          blob_settings: BlobSettings | None = None, forwarded_allow_ips: str | None = None) -> None:
    """Serve the store; blobs up to ``max_blob_bytes`` (None: ``$WANDBLITE_MAX_BLOB_SIZE`` or 16 GiB).

    ``forwarded_allow_ips`` (``--forwarded-allow-ips``): the addresses of the proxies whose
    ``X-Forwarded-Proto``/``X-Forwarded-For`` are believed (uvicorn's proxy headers), so that behind a
    TLS-terminating proxy on another host the session cookie is ``Secure`` and the client's address
    is the client's. None keeps uvicorn's default: ``$FORWARDED_ALLOW_IPS``, else 127.0.0.1 (a proxy
    on this host); from any other peer the headers are ignored.
    """
    import uvicorn

    from wandblite.server.app import create_app

    store = open_store(db, media, blob_settings)
    blobs = store.blobs
    if blobs is None:  # open_store always gives one; a guard for the type checker, never a branch
        raise RuntimeError("the store has no blob store")
    swept = prepare_blobs(blobs)
    key = store.ensure_admin_key()
    if key is not None:
        # stdout, once: the only time the key exists outside the caller's hands.
        print(f"wandblite: admin API key (shown once): {key}", flush=True)
    if swept:
        print(f"wandblite: removed {swept} unfinished upload(s) left by a stopped server in {blobs.location}",
              file=sys.stderr, flush=True)
    print(f"wandblite: serving {store.url.split('@')[-1]} with blobs in {blobs.location} on http://{host}:{port}"
          + (" (public read)" if public_read else ""), file=sys.stderr, flush=True)
    app = create_app(store, public_read=public_read, max_blob_bytes=max_blob_bytes)
    # h11 reads a request head of up to MAX_REQUEST_HEAD bytes: the longest query string the API's
    # contract allows (openapi: 8192 characters a parameter, up to 12 bytes each percent-encoded) fits.
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False,
                proxy_headers=True, forwarded_allow_ips=forwarded_allow_ips or None,
                h11_max_incomplete_event_size=MAX_REQUEST_HEAD)
