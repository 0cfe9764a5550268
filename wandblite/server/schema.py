"""The database's tables: SQLAlchemy Core metadata for SQLite and PostgreSQL alike, nothing else.

Layer 5 (the server). What it promises: one ``metadata`` holding every table the store has ever had,
each column commented where its meaning is not its name. It creates nothing and runs no query:
``migrations.py`` creates and alters these tables, one named step at a time, and the other server
modules read and write them. A table is never edited here without a migration that makes a stored
database agree (the step that added each table is named beside it).

Conventions: ``run`` columns are the ``runs.id`` surrogate key; ``idx`` is a record's index in its
run's stream (history rows, console and system records, files, artifacts, uses, alerts); JSON
columns are TEXT written by ``db.dumps`` (NaN and Infinity kept as tokens).
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = [
    "alerts", "api_keys", "artifact_aliases", "artifact_uses", "artifacts", "console", "derived_state", "history",
    "history_chunks", "history_pending", "login_failures", "media", "media_rows", "metadata", "projects", "run_artifacts", "run_files",
    "project_members", "run_grants", "audit_log", "users", "workspaces",
    "runs", "schema_migrations", "series", "series_agg", "series_chunks", "sessions", "system",
    "run_writers", "writer_rows", "media_refs",
]

metadata = sa.MetaData()

# The migrations' own ledger: one row per applied step.
schema_migrations = sa.Table(
    "schema_migrations", metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("applied_at", sa.Float, nullable=False),
)

# The first schema (migration 0001): keys, projects, runs, their streams and the media index.
api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.Text),
    sa.Column("prefix", sa.String(32), nullable=False),  # shown in `keys list` to tell keys apart
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),  # sha256 hex of the key
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float),
    # Added by 0007_users_roles_audit (no foreign keys: an upgraded store gets them by ALTER TABLE ADD COLUMN).
    sa.Column("user_id", sa.Integer),  # users.id: whose key it is (the "admin" user's for older keys)
    sa.Column("scope", sa.String(16)),  # read | write | admin (vocab.KEY_SCOPES); NULL on no current store
    sa.Column("expires_at", sa.Float),  # NULL: never
)

projects = sa.Table(
    "projects", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("visibility", sa.String(16)),  # 0007: private | internal | public (vocab.VISIBILITIES)
)

runs = sa.Table(
    "runs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("run_id", sa.String(128), nullable=False),
    sa.Column("name", sa.Text),
    sa.Column("group", sa.Text),
    sa.Column("job_type", sa.Text),
    sa.Column("entity", sa.Text),
    sa.Column("tags", sa.Text),
    sa.Column("notes", sa.Text),
    sa.Column("config", sa.Text),
    sa.Column("summary", sa.Text),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("exit_code", sa.BigInteger),
    sa.Column("error", sa.Text),
    sa.Column("signal", sa.Text),
    sa.Column("created_at", sa.Float),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("heartbeat_at", sa.Float),  # the last moment the writer was known alive
    sa.Column("ended_at", sa.Float),
    sa.Column("host", sa.Text),
    sa.Column("context", sa.Text),
    sa.Column("metrics", sa.Text),  # define_metric definitions
    sa.Column("rows_final", sa.BigInteger, nullable=False),
    sa.Column("pending", sa.Boolean, nullable=False),  # a provisional row sits at idx rows_final
    sa.Column("console_count", sa.BigInteger, nullable=False),
    sa.Column("system_count", sa.BigInteger, nullable=False),
    sa.Column("digest", sa.Text),  # the client's digest of the metadata it last sent
    sa.Column("owner_id", sa.Integer),  # 0007: users.id of the user whose key created the run
    # 0009: a shared run's writers and its crash report, computed by the server from its writers'
    # facts (``writers.run_metadata``: ``report.writers_report``); NULL for a single writer's run.
    sa.Column("writers", sa.Text),
    # Added by 0010_run_edits (``edits.py``): when the run was archived (NULL: not archived; hidden
    # from the default runs list while set), and which of name/tags/notes were edited on the server,
    # as a JSON object: field -> the value the run's file had sent when the edit was made.
    sa.Column("archived_at", sa.Float),
    sa.Column("edited", sa.Text),
    sa.UniqueConstraint("project_id", "run_id", name="uq_runs_project_run"),
)

# Retired by migration 0006 (``history_chunks``, ``series_chunks`` and ``history_pending`` hold what
# ``history`` and ``series`` held): one row per history row and one per numeric point.
history = sa.Table(
    "history", metadata,
    sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("step", sa.BigInteger),
    sa.Column("runtime", sa.Float),
    sa.Column("timestamp", sa.Float),
    sa.Column("row", sa.Text, nullable=False),
    sa.Column("final", sa.Boolean, nullable=False),
)

series = sa.Table(
    "series", metadata,
    sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("step", sa.BigInteger),
    sa.Column("runtime", sa.Float),
    sa.Column("timestamp", sa.Float),
    sa.Column("value", sa.Float),
)

console = sa.Table(
    "console", metadata,
    sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("ts", sa.Float),
    sa.Column("stream", sa.String(16)),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("writer", sa.String(64)),  # 0009: the label of the shared run's writer that printed it (NULL: single writer)
)

system = sa.Table(
    "system", metadata,
    sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("ts", sa.Float),
    sa.Column("metrics", sa.Text, nullable=False),
    sa.Column("writer", sa.String(64)),  # 0009: the label of the shared run's writer that sampled it (NULL: single writer)
)

media = sa.Table(
    "media", metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("ext", sa.String(64)),
    sa.Column("created_at", sa.Float, nullable=False),
)

# Browser sessions (migration 0002). A session is a random token in an HttpOnly cookie; only its
# sha256 is stored, tied to the API key that opened it, so revoking the key ends its sessions (the
# check joins ``api_keys``), or (0008_user_sessions) to the user who logged in with a password, so
# disabling the user ends them. Exactly one of ``key_id`` and ``user_id`` is set.
sessions = sa.Table(
    "sessions", metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("key_id", sa.Integer, sa.ForeignKey("api_keys.id")),  # NOT NULL before 0008
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("user_id", sa.Integer),  # 0008: users.id of a session opened by password
)

# Failed dashboard logins per submitted user name (0008_user_sessions): the throttle that answers
# 429 after ``auth.LOGIN_MAX_FAILURES`` failures within ``auth.LOGIN_WINDOW_SECONDS``. In the
# database, not in a process, so every replica counts the same failures.
login_failures = sa.Table(
    "login_failures", metadata,
    sa.Column("name", sa.String(128), primary_key=True),  # the name as submitted (a user's or not)
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("window_start", sa.Float, nullable=False),
)

# Retired by migration 0006 (``series_chunks`` carries each chunk's statistics). Min/max pyramid of a numeric series for chart downsampling: level L aggregates the points of
# ``(run, key)`` whose history idx falls in ``[bucket * 16**(L+1), (bucket+1) * 16**(L+1))``.
# Derived from ``series``, final rows only: extended by ``apply_batch`` in the batch's transaction
# (``indexes.py``; since migration 0004, before it by the first read). ``min_v``/``max_v`` are over
# finite values only (NULL when the bucket has none).
series_agg = sa.Table(
    "series_agg", metadata,
    sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("level", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("bucket", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("n", sa.BigInteger, nullable=False),
    sa.Column("first_idx", sa.BigInteger, nullable=False),
    sa.Column("last_idx", sa.BigInteger, nullable=False),
    sa.Column("min_v", sa.Float),
    sa.Column("min_idx", sa.BigInteger),
    sa.Column("max_v", sa.Float),
    sa.Column("max_idx", sa.BigInteger),
)

# Which history rows hold a media (or other ``_type``) value under which dotted key (final rows
# only; written with the rows since migration 0004).
media_rows = sa.Table(
    "media_rows", metadata,
    sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("step", sa.BigInteger),
    sa.Column("type", sa.String(64)),
)

# Which run names which blob (migration 0012): a sha256 of a media value in one of the run's history
# rows (final or provisional), of a file it saved, or of a blob-store file of an artifact version it
# logged. A set per run, written in the batch's transaction; it goes with the run (a move keeps it, a
# delete removes it). ``GET /media/{sha256}`` reads it to decide who may fetch a blob.
media_refs = sa.Table(
    "media_refs", metadata,
    sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Index("ix_media_refs_sha256", "sha256"),
)

# What ``wandblite.save``, ``log_artifact``/``use_artifact`` and ``run.alert`` record (migration
# 0003). Each run's FILES entries, ARTIFACT, USE and ALERT records are numbered by their order in the
# run's files (like console records) and keyed (run, idx): a retried batch is skipped below the
# stored count, so every record is stored exactly once. Bytes live in the content-addressed media
# store.
run_files = sa.Table(
    "run_files", metadata,
    sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("name", sa.Text, nullable=False),  # validated relative path (``validate_file_name``)
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("policy", sa.String(16)),
    sa.Column("ts", sa.Float),
    sa.Column("lost", sa.Boolean, nullable=False),  # a superseded version whose bytes the client no longer had
    sa.Index("ix_run_files_name", "run", "name"),
)

# One row per (project, name, digest): the server's versions of an artifact.
artifacts = sa.Table(
    "artifacts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("type", sa.Text),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("metadata", sa.Text),  # JSON object
    sa.Column("manifest", sa.Text, nullable=False),  # JSON: path -> {sha256, size} | {ref[, sha256, size]}
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("run_id", sa.String(128)),  # the run that logged this version first
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("project_id", "name", "digest", name="uq_artifacts_digest"),
    sa.UniqueConstraint("project_id", "name", "version", name="uq_artifacts_version"),
)

# Which version an alias names now: the one whose log record carrying the alias is the most recent.
artifact_aliases = sa.Table(
    "artifact_aliases", metadata,
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), primary_key=True),
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("alias", sa.String(128), primary_key=True),
    sa.Column("artifact", sa.Integer, sa.ForeignKey("artifacts.id"), nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
)

# A run's ARTIFACT records (log_artifact calls), pointing at the version they logged.
run_artifacts = sa.Table(
    "run_artifacts", metadata,
    sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("artifact", sa.Integer, sa.ForeignKey("artifacts.id"), nullable=False),
    sa.Column("aliases", sa.Text, nullable=False),  # JSON list: the aliases this record gave
    sa.Column("ts", sa.Float),
)

# A run's USE records (use_artifact calls); ``artifact`` is set when the server holds that digest.
artifact_uses = sa.Table(
    "artifact_uses", metadata,
    sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("version", sa.Integer),  # as the using client saw it
    sa.Column("digest", sa.String(64)),
    sa.Column("type", sa.Text),
    sa.Column("source_run", sa.String(128)),
    sa.Column("artifact", sa.Integer, sa.ForeignKey("artifacts.id")),
    sa.Column("ts", sa.Float),
)

alerts = sa.Table(
    "alerts", metadata,
    sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("ts", sa.Float),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("wait_duration", sa.Float),
    # Since migration 0005: wandb would not have sent this alert (``wait_duration``; throttle.py).
    # Decided at ingest from the run's earlier stored alerts, so no read depends on a page.
    sa.Column("throttled", sa.Boolean, nullable=False, server_default=sa.false()),
)

# Retired: how far (exclusive history idx) each derived index of a run was built by the read side,
# name "media" or "agg:<key>". Created by migration 0002, read once by migration 0004 (to finish
# those indexes) and dropped by it; no current store has it.
derived_state = sa.Table(
    "derived_state", metadata,
    sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("upto", sa.BigInteger, nullable=False),
)


# The compact layout (migration 0006; the codec is ``chunks.py``, reads and writes ``history_store.py``).
# A run's final rows ``[0, rows_final)`` are chunked by index: chunk ``c`` holds rows
# ``[c * CHUNK_ROWS, (c + 1) * CHUNK_ROWS)``; only the run's last chunk may be partial (a later
# batch rewrites it). ``history_chunks`` holds each chunk's rows without their numeric leaves
# (templates, steps, runtimes, timestamps), ``series_chunks`` each key's points in that chunk with
# their statistics, so a chart reads statistics first and decodes only the chunks it must.
history_chunks = sa.Table(
    "history_chunks", metadata,
    sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("chunk", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("n", sa.Integer, nullable=False),  # rows in the chunk (from its first index on)
    sa.Column("step0", sa.BigInteger),  # set when the chunk's steps are step0, step0 + 1, ... (no decode to place a point)
    sa.Column("data", sa.LargeBinary, nullable=False),  # chunks.encode_rows
)

series_chunks = sa.Table(
    "series_chunks", metadata,
    sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("chunk", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("n", sa.Integer, nullable=False),  # points (NaN and +-Infinity included)
    sa.Column("first_idx", sa.BigInteger, nullable=False),
    sa.Column("last_idx", sa.BigInteger, nullable=False),
    sa.Column("first_step", sa.BigInteger),
    sa.Column("last_step", sa.BigInteger),
    sa.Column("min_v", sa.Float),  # over finite values (NULL when none), at the first index holding it
    sa.Column("min_idx", sa.BigInteger),
    sa.Column("max_v", sa.Float),
    sa.Column("max_idx", sa.BigInteger),
    sa.Column("data", sa.LargeBinary, nullable=False),  # chunks.encode_points
    # Added by 0013_chunk_sums: chunks.point_sums of the points (NULL for a chunk not summed yet: read by decoding).
    sa.Column("sums", sa.LargeBinary),
    sa.Index("ix_series_chunks_run_chunk", "run", "chunk"),  # every key of a chunk: reading whole rows
)

# A crashed run's provisional row (``final: false``) at index ``rows_final``, as JSON text; at most
# one per run, replaced by the next row sent at that index.
history_pending = sa.Table(
    "history_pending", metadata,
    sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("idx", sa.BigInteger, nullable=False),
    sa.Column("step", sa.BigInteger),
    sa.Column("runtime", sa.Float),
    sa.Column("timestamp", sa.Float),
    sa.Column("row", sa.Text, nullable=False),
)


# Migration 0007_users_roles_audit: who may do what (``access.py``), and what was done (``audit.py``).
# A user holds keys (``api_keys.user_id``); the "admin" user (``vocab.ADMIN_USER``) is the server's
# administrator and holds the first-start key and every key made before 0007.
users = sa.Table(
    "users", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("password_hash", sa.Text),  # argon2id (argon2-cffi's PasswordHasher); NULL: no password
    sa.Column("is_admin", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("disabled_at", sa.Float),  # a disabled user's keys and sessions no longer pass
)

# A project's members and their role (viewer | writer | admin, ``vocab.ROLES``).
project_members = sa.Table(
    "project_members", metadata,
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

# Keys a run's owner (or a project admin) allowed to append to the run.
run_grants = sa.Table(
    "run_grants", metadata,
    sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("key_id", sa.Integer, sa.ForeignKey("api_keys.id"), primary_key=True),
    sa.Column("granted_by", sa.Integer),  # users.id
    sa.Column("created_at", sa.Float, nullable=False),
)

# Every write: who (user, key), when, from where, what (an action of ``vocab.AUDIT_ACTIONS``, its
# project and run, and a JSON object saying what changed). Written in the transaction of the write.
audit_log = sa.Table(
    "audit_log", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("user_id", sa.Integer),  # NULL: the server's own command line without a user
    sa.Column("key_id", sa.Integer),  # NULL: not through a key (the command line)
    sa.Column("client", sa.Text),  # the client's address, or "cli"
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("project", sa.String(128)),
    sa.Column("run_id", sa.String(128)),
    sa.Column("detail", sa.Text, nullable=False),  # JSON object
    sa.Index("ix_audit_log_project", "project", "id"),
)


# Migration 0011_saved_workspaces: saved dashboard workspaces (``workspaces.py``). A project holds one
# row per slot: "user:<users.id>" (that user's own view), "default" (the project's default view, saved
# by a writer or admin) and "view:<token>" (an immutable snapshot behind a shareable URL).
workspaces = sa.Table(
    "workspaces", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("slot", sa.String(64), nullable=False),
    sa.Column("user_id", sa.Integer),  # users.id of who saved it last
    sa.Column("doc", sa.Text, nullable=False),  # the validated workspace document, JSON
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.UniqueConstraint("project_id", "slot", name="uq_workspaces_project_slot"),
)

# Migration 0009_writer_streams: a shared run's writers, each synced on its own (``writers.py``).
# One row per (run, writer label): the writer's identity, its own position in every stream (what
# it sent: the destination's position is the truth, per writer) and its fold as the client last
# sent it (what the merge needs of it besides its rows). The run's own history, summary, config and
# state are the merge of these (``wandblite.merge``), rebuilt when a writer's batch lands.
run_writers = sa.Table(
    "run_writers", metadata,
    sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("label", sa.String(64), primary_key=True),
    sa.Column("is_primary", sa.Boolean, nullable=False),
    sa.Column("update_finish_state", sa.Boolean, nullable=False),
    # JSON: rows, pending, console, system, files, artifacts, uses, alerts, digest, state
    sa.Column("position", sa.Text, nullable=False),
    sa.Column("fold", sa.Text),  # JSON: the writer's fold without its rows (``writers.fold_from_wire``); NULL: not sent yet
    sa.Column("facts", sa.Text),  # JSON: ``report.writer_facts`` as the writer sent them with its fold; NULL: not sent
)

# A shared run's writer's own committed rows (its fold's, indexed in its order), the input of the
# run's merged history; ``final`` false: its crashed writer's pending row at index ``rows``.
writer_rows = sa.Table(
    "writer_rows", metadata,
    sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("label", sa.String(64), primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("final", sa.Boolean, nullable=False),
    sa.Column("row", sa.Text, nullable=False),  # JSON (``db.dumps``)
    sa.Index("ix_writer_rows_step", "run", "step"),
)
