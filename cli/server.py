"""``wandblite server [keys create|list|revoke]``: run the HTTP server, manage its API keys."""

from __future__ import annotations

import json
import sys
import time

import click

_DB_HELP = "Database URL: sqlite:///path.db or postgresql://user@host/db (default: the embedded store in $WANDBLITE_HOME)."


def _fail(message: str) -> None:
    click.echo(f"wandblite: error: {message}", err=True)
    sys.exit(1)


def _store(db: str | None, media: str | None = None):  # type: ignore[no-untyped-def]
    try:
        from wandblite.server.serve import open_store
    except ImportError as exc:
        _fail(f"the server needs its extra: pip install 'wandblite[server]' ({exc})")
    try:
        return open_store(db, media)
    except Exception as exc:  # noqa: BLE001 - one clear line instead of a traceback
        _fail(f"cannot open the store {db or '(embedded)'}: {exc}")


def _blob_size(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    from wandblite.server.blobs import parse_size  # stdlib only: no server extra needed to check a flag

    try:
        return parse_size(value, "")
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _threshold(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    size = _blob_size(_ctx, _param, value)
    if size is not None and size < 5 << 20:
        raise click.BadParameter(f"{value} is below S3's smallest multipart part (5M)")
    return size


@click.group("server", invoke_without_command=True)
@click.option("--host", envvar="WANDBLITE_HOST", default="127.0.0.1", show_default=True, help="Address to listen on ($WANDBLITE_HOST).")
@click.option("--port", envvar="WANDBLITE_PORT", default=8080, show_default=True, type=int, help="Port ($WANDBLITE_PORT).")
@click.option("--db", envvar="WANDBLITE_DB", default=None, help=_DB_HELP + " ($WANDBLITE_DB)")
@click.option("--media", envvar="WANDBLITE_MEDIA", default=None,
              help="Where media, saved files and artifact objects are kept: a directory (default: <home>/media) or "
                   "s3://bucket/prefix (credentials and region from the standard AWS variables and files) "
                   "($WANDBLITE_MEDIA).")
@click.option("--s3-endpoint-url", default=None, metavar="URL",
              help="The S3-compatible store to use instead of AWS, e.g. http://minio:9000 for MinIO or Ceph "
                   "(default: boto3's $AWS_ENDPOINT_URL_S3 or $AWS_ENDPOINT_URL, else AWS).")
@click.option("--s3-presign", is_flag=True,
              help="Answer a download with a 302 to a presigned URL of the bucket instead of streaming the bytes "
                   "through the server (the dashboard's origin then needs the bucket's CORS).")
@click.option("--s3-multipart-threshold", callback=_threshold, default=None, metavar="SIZE",
              help="Blobs larger than this go up as multipart uploads in parts of this size; at least 5M "
                   "[default: 16M].")
@click.option("--stale-upload-minutes", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="At start, remove unfinished uploads (temporary files, multipart uploads) untouched this long: "
                   "they died with a server process.")
@click.option("--public-read", is_flag=True, envvar="WANDBLITE_PUBLIC_READ", help="Allow reads without an API key.")
@click.option("--max-blob-size", callback=_blob_size, default=None, metavar="SIZE",
              help="Largest media blob, saved file or artifact object accepted: bytes or 500M, 16G, 1T "
                   "(powers of 1024) [default: $WANDBLITE_MAX_BLOB_SIZE, else 16G].")
@click.option("--forwarded-allow-ips", default=None, metavar="IPS",
              help="Behind a TLS-terminating proxy on another host: the proxy addresses (comma-separated, or "
                   "'*') whose X-Forwarded-Proto/-For headers are trusted, so cookies are Secure and client "
                   "addresses right [default: $FORWARDED_ALLOW_IPS, else 127.0.0.1].")
@click.pass_context
def server(ctx: click.Context, host: str, port: int, db: str | None, media: str | None, s3_endpoint_url: str | None,
           s3_presign: bool, s3_multipart_threshold: int | None, stale_upload_minutes: float, public_read: bool,
           max_blob_size: int | None, forwarded_allow_ips: str | None) -> None:
    """Serve a store over HTTP (first start prints an admin API key once)."""
    ctx.obj = {"db": db, "media": media}
    if ctx.invoked_subcommand is not None:
        return
    try:
        from wandblite.server.serve import BlobSettings, serve
    except ImportError as exc:
        _fail(f"the server needs its extra: pip install 'wandblite[server]' ({exc})")
    settings = BlobSettings(stale_seconds=stale_upload_minutes * 60, s3_endpoint_url=s3_endpoint_url,
                            s3_presign=s3_presign, s3_multipart_threshold=s3_multipart_threshold)
    try:
        serve(host, port, db, media, public_read, max_blob_bytes=max_blob_size, blob_settings=settings,
              forwarded_allow_ips=forwarded_allow_ips)
    except Exception as exc:  # noqa: BLE001
        _fail(str(exc))


@server.group("keys")
def keys() -> None:
    """Create, list and revoke API keys (works on the database directly)."""


_db_option = click.option("--db", envvar="WANDBLITE_DB", default=None, help=_DB_HELP + " ($WANDBLITE_DB)")


def _db(ctx: click.Context, db: str | None) -> str | None:
    return db or (ctx.obj or {}).get("db")


@keys.command("create")
@click.option("--name", default=None, help="A label for the key (who or what uses it).")
@_db_option
@click.pass_context
def keys_create(ctx: click.Context, name: str | None, db: str | None) -> None:
    """Create a key and print it (it is shown only this once)."""
    store = _store(_db(ctx, db))
    key_id, key = store.create_key(name)
    click.echo(f"wandblite: key {key_id} created{f' ({name})' if name else ''}; shown once:", err=True)
    click.echo(key)


@keys.command("list")
@_db_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per key.")
@click.pass_context
def keys_list(ctx: click.Context, db: str | None, as_json: bool) -> None:
    """List keys (id, prefix, name, created, revoked); never the keys themselves."""
    store = _store(_db(ctx, db))
    for k in store.list_keys():
        if as_json:
            click.echo(json.dumps(k))
            continue
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(k["created_at"]))
        revoked = " revoked" if k["revoked_at"] else ""
        click.echo(f"{k['id']:>4}  {k['prefix']}...  {when}  {k['name'] or ''}{revoked}")


@keys.command("revoke")
@click.argument("key_id_or_prefix")
@_db_option
@click.pass_context
def keys_revoke(ctx: click.Context, key_id_or_prefix: str, db: str | None) -> None:
    """Revoke a key by its id, its shown prefix, or the key itself."""
    store = _store(_db(ctx, db))
    n = store.revoke_key(key_id_or_prefix)
    if not n:
        _fail(f"no active key matches {key_id_or_prefix!r}; see `wandblite server keys list`")
    click.echo(f"wandblite: revoked {n} key{'s' if n > 1 else ''}", err=True)


@server.command("backup")
@click.argument("dest", type=click.Path(dir_okay=False))
@_db_option
@click.option("--force", is_flag=True, help="Replace DEST if it exists.")
@click.pass_context
def backup(ctx: click.Context, dest: str, db: str | None, force: bool) -> None:
    """Copy a SQLite store to DEST, consistently, while the server runs (SQLite's online backup API).

    The media directory is not copied: its files never change, so copy it afterwards (rsync).
    PostgreSQL is backed up with pg_dump or WAL archiving; a bucket with its versioning or replication.
    """
    try:
        from wandblite.server.backup import backup_sqlite
        from wandblite.vocab import home_dir
    except ImportError as exc:
        _fail(f"the server needs its extra: pip install 'wandblite[server]' ({exc})")
    url = _db(ctx, db) or f"sqlite:///{home_dir() / 'store.db'}"
    try:
        res = backup_sqlite(url, dest, replace=force)
    except (ValueError, RuntimeError, OSError) as exc:
        _fail(str(exc))
    click.echo(f"wandblite: copied {res.source} to {res.dest} ({res.size} bytes, {res.pages} pages, integrity ok) "
               f"in {res.seconds:.2f} s", err=True)
