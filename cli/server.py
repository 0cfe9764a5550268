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


@click.group("server", invoke_without_command=True)
@click.option("--host", envvar="WANDBLITE_HOST", default="127.0.0.1", show_default=True, help="Address to listen on ($WANDBLITE_HOST).")
@click.option("--port", envvar="WANDBLITE_PORT", default=8080, show_default=True, type=int, help="Port ($WANDBLITE_PORT).")
@click.option("--db", envvar="WANDBLITE_DB", default=None, help=_DB_HELP + " ($WANDBLITE_DB)")
@click.option("--media", envvar="WANDBLITE_MEDIA", default=None, help="Media blob directory (default: <home>/media) ($WANDBLITE_MEDIA).")
@click.option("--public-read", is_flag=True, envvar="WANDBLITE_PUBLIC_READ", help="Allow reads without an API key.")
@click.option("--max-blob-size", callback=_blob_size, default=None, metavar="SIZE",
              help="Largest media blob, saved file or artifact object accepted: bytes or 500M, 16G, 1T "
                   "(powers of 1024) [default: $WANDBLITE_MAX_BLOB_SIZE, else 16G].")
@click.pass_context
def server(ctx: click.Context, host: str, port: int, db: str | None, media: str | None, public_read: bool,
           max_blob_size: int | None) -> None:
    """Serve a store over HTTP (first start prints an admin API key once)."""
    ctx.obj = {"db": db, "media": media}
    if ctx.invoked_subcommand is not None:
        return
    try:
        from wandblite.server.serve import serve
    except ImportError as exc:
        _fail(f"the server needs its extra: pip install 'wandblite[server]' ({exc})")
    try:
        serve(host, port, db, media, public_read, max_blob_bytes=max_blob_size)
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
