"""``wandblite server [keys|users|members|visibility|grant|audit|backup]``: run the HTTP server, manage
its API keys, users, project roles and grants, read its audit log (all on the database directly)."""

from __future__ import annotations

import json
import sys
import time

import click

from wandblite.vocab import KEY_SCOPES, ROLES, VISIBILITIES

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


def _run(fn, *args, **kw):  # type: ignore[no-untyped-def]
    """``fn(*args, **kw)``; the store's refusal (an ``ApiError``) as one line and exit 1."""
    from wandblite.server.errors import ApiError

    try:
        return fn(*args, **kw)
    except ApiError as exc:
        _fail(exc.message)


def _cli_actor():  # type: ignore[no-untyped-def]
    from wandblite.server.auth import Principal

    return Principal.cli()


_DURATION = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _expiry(_ctx: click.Context, _param: click.Parameter, value: str | None) -> float | None:
    """``--expires-in 30d``: seconds from now (s, m, h, d, w) as an absolute time."""
    if value is None:
        return None
    unit = value[-1:].lower()
    number = value[:-1] if unit in _DURATION else value
    try:
        n = float(number)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a duration such as 3600, 90m, 12h, 30d or 2w") from None
    if n <= 0:
        raise click.BadParameter("the duration must be positive")
    return time.time() + n * _DURATION.get(unit, 1)


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else ""


@keys.command("create")
@click.option("--name", default=None, help="A label for the key (who or what uses it).")
@click.option("--user", default=None, help="The user the key belongs to (default: the admin user).")
@click.option("--scope", type=click.Choice(KEY_SCOPES), default="write", show_default=True,
              help="read: reads only; write: reads and writes as the user's project roles allow; admin: also "
                   "the whole audit log (the admin user's keys only).")
@click.option("--expires-in", "expires_at", callback=_expiry, default=None, metavar="DURATION",
              help="The key stops working after this long: seconds, or 90m, 12h, 30d, 2w [default: never].")
@_db_option
@click.pass_context
def keys_create(ctx: click.Context, name: str | None, user: str | None, scope: str, expires_at: float | None,
                db: str | None) -> None:
    """Create a key and print it (it is shown only this once)."""
    store = _store(_db(ctx, db))
    key_id, key = _run(store.create_key, name, user, scope, expires_at, _cli_actor())
    owner = user or "admin"
    click.echo(f"wandblite: key {key_id} of user {owner} ({scope}) created{f' ({name})' if name else ''}; "
               "shown once:", err=True)
    click.echo(key)


@keys.command("list")
@_db_option
@click.option("--user", default=None, help="Only this user's keys.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per key.")
@click.pass_context
def keys_list(ctx: click.Context, db: str | None, user: str | None, as_json: bool) -> None:
    """List keys (id, prefix, user, scope, created, name, expiry, revoked); never the keys themselves."""
    store = _store(_db(ctx, db))
    for k in store.list_keys(user):
        if as_json:
            click.echo(json.dumps(k))
            continue
        revoked = " revoked" if k["revoked_at"] else ""
        expires = f" expires {_when(k['expires_at'])}" if k["expires_at"] else ""
        click.echo(f"{k['id']:>4}  {k['prefix']}...  {k['user'] or '':<12} {k['scope'] or '':<5}  "
                   f"{_when(k['created_at'])}  {k['name'] or ''}{expires}{revoked}")


@keys.command("revoke")
@click.argument("key_id_or_prefix")
@_db_option
@click.pass_context
def keys_revoke(ctx: click.Context, key_id_or_prefix: str, db: str | None) -> None:
    """Revoke a key by its id, its shown prefix, or the key itself."""
    store = _store(_db(ctx, db))
    n = store.revoke_key(key_id_or_prefix, _cli_actor())
    if not n:
        _fail(f"no active key matches {key_id_or_prefix!r}; see `wandblite server keys list`")
    click.echo(f"wandblite: revoked {n} key{'s' if n > 1 else ''}", err=True)


@server.group("users")
def users_group() -> None:
    """Create, list and disable users (who hold keys and are members of projects)."""


@users_group.command("create")
@click.argument("name")
@click.option("--password", "with_password", is_flag=True,
              help="Ask for a password (for the dashboard's login; stored as an argon2id hash). "
                   "Read from stdin when it is not a terminal.")
@click.option("--admin", is_flag=True, help="A server administrator (every project as its admin).")
@_db_option
@click.pass_context
def users_create(ctx: click.Context, name: str, with_password: bool, admin: bool, db: str | None) -> None:
    """Create a user NAME (then give it keys: `wandblite server keys create --user NAME`)."""
    password = None
    if with_password:
        password = (click.prompt("Password", hide_input=True, confirmation_prompt=True) if sys.stdin.isatty()
                    else sys.stdin.readline().rstrip("\n"))
        if not password:
            _fail("the password is empty")
    store = _store(_db(ctx, db))
    _run(store.create_user, name, password, admin, _cli_actor())
    click.echo(f"wandblite: user {name} created{' (server admin)' if admin else ''}", err=True)


@users_group.command("list")
@_db_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per user.")
@click.pass_context
def users_list(ctx: click.Context, db: str | None, as_json: bool) -> None:
    """List users (name, admin, live keys, password set, created, disabled)."""
    store = _store(_db(ctx, db))
    for u in store.list_users():
        if as_json:
            click.echo(json.dumps(u))
            continue
        flags = [f for f, on in (("admin", u["admin"]), ("password", u["password"]),
                                 (f"disabled {_when(u['disabled_at'])}", u["disabled_at"])) if on]
        click.echo(f"{u['name']:<20} {u['keys']:>3} keys  {_when(u['created_at'])}  {' '.join(flags)}")


@users_group.command("disable")
@click.argument("name")
@_db_option
@click.pass_context
def users_disable(ctx: click.Context, name: str, db: str | None) -> None:
    """Disable user NAME: none of its keys or sessions pass any more (its runs and the log keep its name)."""
    store = _store(_db(ctx, db))
    if not _run(store.disable_user, name, _cli_actor()):
        click.echo(f"wandblite: user {name} was disabled already", err=True)
        return
    click.echo(f"wandblite: user {name} disabled", err=True)


@server.group("members")
def members() -> None:
    """List and set the members of a project and their roles (viewer, writer, admin)."""


@members.command("list")
@click.argument("project")
@_db_option
@click.option("--json", "as_json", is_flag=True, help="The project's visibility and members as one JSON object.")
@click.pass_context
def members_list(ctx: click.Context, project: str, db: str | None, as_json: bool) -> None:
    """The visibility of PROJECT and its members with their roles."""
    store = _store(_db(ctx, db))
    info = _run(store.list_members, project)
    if as_json:
        click.echo(json.dumps(info))
        return
    click.echo(f"{project}: {info['visibility']}")
    for m in info["members"]:
        click.echo(f"  {m['user']:<20} {m['role']}")


@members.command("set")
@click.argument("project")
@click.argument("user")
@click.argument("role", type=click.Choice(ROLES))
@_db_option
@click.pass_context
def members_set(ctx: click.Context, project: str, user: str, role: str, db: str | None) -> None:
    """Make USER a member of PROJECT with ROLE, or change its role."""
    store = _store(_db(ctx, db))
    done = _run(store.set_member, project, user, role, _cli_actor())
    click.echo(f"wandblite: {user} is {role} of {project}" + ("" if done else " already"), err=True)


@members.command("remove")
@click.argument("project")
@click.argument("user")
@_db_option
@click.pass_context
def members_remove(ctx: click.Context, project: str, user: str, db: str | None) -> None:
    """Remove USER from the members of PROJECT."""
    store = _store(_db(ctx, db))
    if not _run(store.remove_member, project, user, _cli_actor()):
        _fail(f"{user} is not a member of {project}")
    click.echo(f"wandblite: {user} removed from {project}", err=True)


@server.command("visibility")
@click.argument("project")
@click.argument("visibility", type=click.Choice(VISIBILITIES))
@_db_option
@click.pass_context
def visibility(ctx: click.Context, project: str, visibility: str, db: str | None) -> None:
    """Who may read PROJECT: its members (private), every user (internal), anyone (public)."""
    store = _store(_db(ctx, db))
    _run(store.set_visibility, project, visibility, _cli_actor())
    click.echo(f"wandblite: {project} is {visibility}", err=True)


@server.command("grant")
@click.argument("project")
@click.argument("run_id")
@click.argument("key_id", type=int)
@_db_option
@click.pass_context
def grant(ctx: click.Context, project: str, run_id: str, key_id: int, db: str | None) -> None:
    """Let the key KEY_ID (see `keys list`) append to run RUN_ID of PROJECT, whoever owns it."""
    store = _store(_db(ctx, db))
    _run(store.grant, project, run_id, key_id, _cli_actor())
    click.echo(f"wandblite: key {key_id} may append to {project}/{run_id}", err=True)


@server.command("audit")
@click.option("--project", default=None, help="Only the entries of this project.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True, help="The newest N entries.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per entry.")
@_db_option
@click.pass_context
def audit(ctx: click.Context, project: str | None, limit: int, as_json: bool, db: str | None) -> None:
    """The audit log, newest first: who (user, key id) did what, when, from where."""
    store = _store(_db(ctx, db))
    for e in store.audit(project, limit)["entries"]:
        if as_json:
            click.echo(json.dumps(e))
            continue
        where = "/".join(x for x in (e["project"], e["run_id"]) if x)
        key = f" key {e['key_id']}" if e["key_id"] is not None else ""
        click.echo(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(e['ts']))}  {e['user'] or '-'}{key} "
                   f"({e['client'] or '-'})  {e['action']}  {where}  {json.dumps(e['detail'], sort_keys=True)}")


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
