"""The user and key commands on a real database (SQLite and PostgreSQL): users with and without a
password (only an argon2id hash stored), several keys per user, listing, members, grants, and the
refusals (a taken name, an admin-scope key for a plain user, disabling the admin user)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import sqlalchemy as sa

from tests.server.conftest import CLI, ROOT, clean_env, cli
from tests.server.teams import uniq_user


def _json_lines(r: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def test_users_keys_members_and_grants_from_the_command_line(backend: str, tmp_path: Path) -> None:
    from wandblite.server.schema import users
    from wandblite.server.store import Store

    db = ["--db", backend]
    alice, bob = uniq_user("alice"), uniq_user("bob")
    made = subprocess.run([*CLI, "server", "users", "create", alice, "--password", *db], input="s3cret pass\n",
                          capture_output=True, text=True, timeout=120, env=clean_env(WANDBLITE_HOME=str(tmp_path)),
                          cwd=str(ROOT))
    assert made.returncode == 0, made.stderr
    assert cli("server", "users", "create", bob, *db, home=tmp_path).returncode == 0
    taken = cli("server", "users", "create", bob, *db, home=tmp_path)
    assert taken.returncode == 1 and "exists already" in taken.stderr
    listed = {u["name"]: u for u in _json_lines(cli("server", "users", "list", "--json", *db, home=tmp_path))}
    assert listed[alice]["password"] is True and listed[bob]["password"] is False
    assert listed["admin"]["admin"] is True

    store = Store(backend)
    with store.read_engine.connect() as conn:
        stored = conn.execute(sa.select(users.c.password_hash).where(users.c.name == alice)).scalar_one()
    assert stored.startswith("$argon2id$") and "s3cret" not in stored
    assert store.check_password(alice, "s3cret pass")
    assert not store.check_password(alice, "s3cret")
    assert not store.check_password(bob, "")
    assert not store.check_password("nobody-" + alice, "s3cret pass")

    keys = [cli("server", "keys", "create", "--user", alice, "--scope", scope, *db, home=tmp_path)
            for scope in ("read", "write")]
    assert all(k.returncode == 0 and k.stdout.strip().startswith("wl_") for k in keys)
    refused = cli("server", "keys", "create", "--user", alice, "--scope", "admin", *db, home=tmp_path)
    assert refused.returncode == 1 and "admin scope" in refused.stderr
    mine = _json_lines(cli("server", "keys", "list", "--user", alice, "--json", *db, home=tmp_path))
    assert [(k["user"], k["scope"]) for k in mine] == [(alice, "read"), (alice, "write")]
    assert store.principal_of_key(keys[0].stdout.strip()).scope == "read"  # type: ignore[union-attr]

    project = "cli" + uniq_user("p").replace("-", "")
    store.apply_batch(project, "r1", {})
    assert cli("server", "members", "set", project, alice, "writer", *db, home=tmp_path).returncode == 0
    info = json.loads(cli("server", "members", "list", project, "--json", *db, home=tmp_path).stdout)
    assert info == {"project": project, "visibility": "internal", "members": [{"user": alice, "role": "writer"}]}
    assert cli("server", "grant", project, "r1", str(mine[1]["id"]), *db, home=tmp_path).returncode == 0
    assert cli("server", "members", "remove", project, alice, *db, home=tmp_path).returncode == 0
    gone = cli("server", "members", "remove", project, alice, *db, home=tmp_path)
    assert gone.returncode == 1 and "not a member" in gone.stderr
    no_admin = cli("server", "users", "disable", "admin", *db, home=tmp_path)
    assert no_admin.returncode == 1 and "cannot be disabled" in no_admin.stderr
    assert cli("server", "users", "disable", bob, *db, home=tmp_path).returncode == 0
    again = cli("server", "users", "disable", bob, *db, home=tmp_path)
    assert again.returncode == 0 and "already" in again.stderr
    assert not store.check_password(alice, "wrong") and store.check_password(alice, "s3cret pass")
    store.close()
