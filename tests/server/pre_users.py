"""Turn a store back into the layout before migration 0007 (users, roles, ownership, the audit log).

The code before 0007 had no ``users``, ``project_members``, ``run_grants`` or ``audit_log`` table, and
no ``api_keys.user_id``/``scope``/``expires_at``, ``projects.visibility`` or ``runs.owner_id`` column.
``to_pre_users`` drops them (SQLite 3.35+ and PostgreSQL drop columns) and forgets the step, so the
next ``Store(url)`` start migrates the store again: tests compare what it answers before and after.
"""

from __future__ import annotations

import sqlalchemy as sa

from wandblite.server.schema import schema_migrations
from wandblite.server.store import Store

__all__ = ["to_pre_users"]

_COLUMNS = {"api_keys": ("user_id", "scope", "expires_at"), "projects": ("visibility",), "runs": ("owner_id",)}


def to_pre_users(store: Store) -> None:
    with store.write_engine.begin() as conn:
        for table in ("audit_log", "run_grants", "project_members", "users"):
            conn.execute(sa.text(f"DROP TABLE {table}"))
        for table, columns in _COLUMNS.items():
            for column in columns:
                conn.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN {column}"))
        conn.execute(schema_migrations.delete().where(schema_migrations.c.name == "0007_users_roles_audit"))
        tables = set(sa.inspect(conn).get_table_names())
    assert not tables & {"users", "audit_log"}
