"""The read side of what ``save``, ``log_artifact``/``use_artifact`` and ``alert`` recorded.

Layer 5. Plain functions over a ``Store`` returning JSON-able dicts, exposed by the HTTP app under
``/api/v1`` (see ``PROTOCOL.md``): a run's files (latest version per name) and their bytes, a run's
alerts (paged by index, each marked ``throttled`` as stored), a run's logged and used artifacts, a
project's artifacts with their versions and aliases, and one version's manifest. Bytes are served from the content-addressed
media store (``GET /api/v1/media/{sha256}``). Names are validated and reach SQL as parameters only;
unknown projects, runs, files and artifacts raise a 404 ``ApiError``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from wandblite.server.db import loads
from wandblite.server.errors import not_found
from wandblite.server.media_index import MediaBlob
from wandblite.server.read import project_id, run_row
from wandblite.server.schema import (
    alerts,
    artifact_aliases,
    artifact_uses,
    artifacts,
    run_artifacts,
    run_files,
)
from wandblite.server.store import Store
from wandblite.server.wire import MAX_ARTIFACT_VERSION, validate_artifact_name, validate_file_name

__all__ = ["get_artifact", "list_alerts", "list_artifacts", "list_files", "run_artifacts_of", "run_file"]


def list_files(store: Store, project: str, run_id: str) -> dict[str, Any]:
    """``{"files": [{"name", "sha256", "size", "policy", "ts", "lost", "versions"}]}``: the latest
    record of each name (sorted by name) and how many versions were recorded."""
    with store.read_engine.connect() as conn:
        pk = run_row(conn, project, run_id).id
        q = (sa.select(run_files.c.name, run_files.c.sha256, run_files.c.size, run_files.c.policy, run_files.c.ts,
                       run_files.c.lost).where(run_files.c.run == pk).order_by(run_files.c.idx))
        latest: dict[str, dict[str, Any]] = {}
        versions: dict[str, int] = {}
        for r in conn.execute(q).mappings():
            latest[r["name"]] = {**r, "lost": bool(r["lost"])}
            versions[r["name"]] = versions.get(r["name"], 0) + 1
    return {"files": [{**latest[n], "versions": versions[n]} for n in sorted(latest)]}


def run_file(store: Store, project: str, run_id: str, name: str) -> tuple[MediaBlob, str]:
    """The blob of the latest version of a run's file and the name to offer a browser (404 if absent)."""
    validate_file_name(name)
    with store.read_engine.connect() as conn:
        pk = run_row(conn, project, run_id).id
        r = conn.execute(sa.select(run_files.c.sha256, run_files.c.lost)
                         .where(run_files.c.run == pk, run_files.c.name == name)
                         .order_by(run_files.c.idx.desc()).limit(1)).first()
    if r is None:
        raise not_found(f"run {project}/{run_id} has no file {name!r}")
    if r.lost:
        raise not_found(f"the latest version of {name!r} of run {project}/{run_id} was not uploaded "
                        "(its bytes had changed in the run directory before it was synced)")
    return store.media_blob(r.sha256), name.rsplit("/", 1)[-1]


def list_alerts(store: Store, project: str, run_id: str, start: int = 0, limit: int = 1000) -> dict[str, Any]:
    """A run's alerts from idx ``start``: ``{"alerts": [{"idx", "ts", "title", "text", "level",
    "wait_duration", "throttled"}], "next", "sent"}``. ``throttled``: wandb would not have sent the
    alert (``wait_duration``, ``wandblite/throttle.py``), decided when it was stored, so it is the same on
    every page; ``sent``: how many of all the run's alerts are not throttled (what a badge counts)."""
    with store.read_engine.connect() as conn:
        pk = run_row(conn, project, run_id).id
        q = (sa.select(alerts.c.idx, alerts.c.ts, alerts.c.title, alerts.c.text, alerts.c.level,
                       alerts.c.wait_duration, alerts.c.throttled)
             .where(alerts.c.run == pk, alerts.c.idx >= start).order_by(alerts.c.idx).limit(limit))
        recs = [{**r, "throttled": bool(r["throttled"])} for r in conn.execute(q).mappings()]
        sent = conn.execute(sa.select(sa.func.count()).select_from(alerts)
                            .where(alerts.c.run == pk, alerts.c.throttled == sa.false())).scalar_one()
    return {"alerts": recs, "next": recs[-1]["idx"] + 1 if len(recs) == limit else None, "sent": int(sent)}


def _aliases(conn: Any, pid: int, name: str | None = None) -> dict[int, list[str]]:
    """artifact id -> the aliases it holds now (sorted)."""
    q = sa.select(artifact_aliases.c.artifact, artifact_aliases.c.alias).where(artifact_aliases.c.project_id == pid)
    if name is not None:
        q = q.where(artifact_aliases.c.name == name)
    out: dict[int, list[str]] = {}
    for aid, alias in conn.execute(q.order_by(artifact_aliases.c.alias)):
        out.setdefault(int(aid), []).append(alias)
    return out


def list_artifacts(store: Store, project: str) -> dict[str, Any]:
    """``{"artifacts": [{"name", "type", "versions": [{"version", "digest", "size", "run", "created_at",
    "aliases"}], "aliases": {alias: version}}]}`` sorted by name, versions by number."""
    with store.read_engine.connect() as conn:
        pid = project_id(conn, project)
        held = _aliases(conn, pid)
        q = (sa.select(artifacts.c.id, artifacts.c.name, artifacts.c.type, artifacts.c.version, artifacts.c.digest,
                       artifacts.c.size, artifacts.c.run_id, artifacts.c.created_at)
             .where(artifacts.c.project_id == pid).order_by(artifacts.c.name, artifacts.c.version))
        out: dict[str, dict[str, Any]] = {}
        for r in conn.execute(q):
            a = out.setdefault(r.name, {"name": r.name, "type": r.type, "versions": [], "aliases": {}})
            a["type"] = r.type  # the newest version's type
            names = held.get(int(r.id), [])
            a["versions"].append({"version": int(r.version), "digest": r.digest, "size": int(r.size),
                                  "run": r.run_id, "created_at": r.created_at, "aliases": names})
            for alias in names:
                a["aliases"][alias] = int(r.version)
    return {"artifacts": list(out.values())}


def get_artifact(store: Store, project: str, name: str, ref: str) -> dict[str, Any]:
    """One version's manifest, by ``vN`` or an alias (``latest`` too): ``{"name", "type", "version",
    "digest", "aliases", "description", "metadata", "size", "run", "created_at", "entries"}`` with
    entries ``path -> {"sha256", "size"}`` (bytes at ``/api/v1/media/{sha256}``) or ``{"ref", ...}``."""
    validate_artifact_name(name)
    with store.read_engine.connect() as conn:
        pid = project_id(conn, project)
        where = (artifacts.c.project_id == pid, artifacts.c.name == name)
        if ref[:1] == "v" and ref[1:].isascii() and ref[1:].isdigit():
            version = int(ref[1:])
            if version > MAX_ARTIFACT_VERSION:  # never stored (``wire.prep_artifact``); beyond a 64-bit column too
                raise not_found(f"project {project!r} has no artifact {name}:{ref[:40]}: versions run from v0 to "
                                f"v{MAX_ARTIFACT_VERSION}")
            r = conn.execute(sa.select(artifacts).where(*where, artifacts.c.version == version)).first()
        else:
            validate_artifact_name(ref, "alias")
            r = conn.execute(sa.select(artifacts).join(artifact_aliases, artifact_aliases.c.artifact == artifacts.c.id)
                             .where(*where, artifact_aliases.c.alias == ref)).first()
        if r is None:
            raise not_found(f"project {project!r} has no artifact {name}:{ref}")
        held = _aliases(conn, pid, name).get(int(r.id), [])
    return {"name": r.name, "type": r.type, "version": int(r.version), "digest": r.digest, "aliases": held,
            "description": r.description, "metadata": loads(r.metadata) or {}, "size": int(r.size),
            "run": r.run_id, "created_at": r.created_at, "entries": loads(r.manifest)}


def run_artifacts_of(store: Store, project: str, run_id: str) -> dict[str, Any]:
    """What a run logged and used: ``{"logged": [{"idx", "name", "version", "digest", "aliases", "ts"}],
    "used": [{"idx", "name", "version", "digest", "type", "run", "ts"}]}``. A logged ``version`` is the
    server's; a used one is the server's when it holds that digest, else the using client's."""
    with store.read_engine.connect() as conn:
        run = run_row(conn, project, run_id)
        pk = run.id
        q = (sa.select(run_artifacts.c.idx, run_artifacts.c.aliases, run_artifacts.c.ts, artifacts.c.name,
                       artifacts.c.version, artifacts.c.digest)
             .join(artifacts, artifacts.c.id == run_artifacts.c.artifact)
             .where(run_artifacts.c.run == pk).order_by(run_artifacts.c.idx))
        logged = [{"idx": r.idx, "name": r.name, "version": int(r.version), "digest": r.digest,
                   "aliases": loads(r.aliases), "ts": r.ts} for r in conn.execute(q)]
        u = artifact_uses
        q = (sa.select(u.c.idx, u.c.name, u.c.version, u.c.digest, u.c.type, u.c.source_run, u.c.ts,
                       artifacts.c.version.label("server_version"))
             # Joined by digest, not by the id stored at insert: the logging run may sync later.
             .select_from(u.outerjoin(artifacts, sa.and_(artifacts.c.project_id == run.project_id,
                                                         artifacts.c.name == u.c.name,
                                                         artifacts.c.digest == u.c.digest)))
             .where(u.c.run == pk).order_by(u.c.idx))
        used = [{"idx": r.idx, "name": r.name, "digest": r.digest, "type": r.type, "run": r.source_run, "ts": r.ts,
                 "version": r.server_version if r.server_version is not None else r.version}
                for r in conn.execute(q)]
    return {"logged": logged, "used": used}
