"""Golden test: one frozen run, synced for real, every read compared with answers recorded once.

The fixture (``fixture/golden/``, written once by ``make_fixture.py`` with the real SDK) holds
scalars, media, console, system samples, saved files, artifacts and alerts. Each test copies it to
a temporary directory and then:

* runs the local CLI on it (``show``, ``show --json``, ``ls``, ``ls --json``, ``logs``, ``export``,
  ``verify``) and compares stdout, stderr and exit code with ``answers/cli/*.json``;
* syncs it with ``wandblite sync`` into a real server (a ``wandblite server`` subprocess on
  127.0.0.1) on SQLite, on PostgreSQL, and into the embedded store (then served by ``wandblite
  server`` without ``--db``), and
  GETs every read endpoint of the REST API (PROTOCOL.md), comparing each answer with
  ``answers/rest/*.json`` and the sync command's own output with ``answers/sync/*.json``. All three
  backends compare against the same recorded answers.

Comparison is strict: the same keys in the same order, the same JSON types (``1`` is not ``1.0``),
the same floats (NaN equals NaN only), the same text line by line. The only fields changed before
comparing are named in the normalising section below, each with the reason it varies from one test
run to the next. A mismatch fails with the answer's name, the first differing path and both values.

Record (rewrite) the answers, on purpose only, before a refactor or after a deliberate change:

    WANDBLITE_GOLDEN_RECORD=1 .venv/bin/python -m pytest tests/golden

In record mode the first backend that runs writes each answer and the others are still compared
with it, so a difference between SQLite, PostgreSQL and the embedded store fails even then.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from ..server.conftest import ServerProc, fresh_postgres_database

HERE = Path(__file__).resolve().parent
FIXTURE_RUN = HERE / "fixture" / "golden"
ANSWERS = HERE / "answers"
RECORD = os.environ.get("WANDBLITE_GOLDEN_RECORD") == "1"

P = "/api/v1/projects/golden"
R = P + "/runs/golden"


def _filters(f: Any) -> str:
    return quote(json.dumps(f))


#: Every JSON read of the REST API, by answer name. Paths are relative to the server's URL.
JSON_READS: dict[str, str] = {
    "health": "/api/v1/health",
    "session": "/api/v1/session",
    "projects": "/api/v1/projects",
    "runs": P + "/runs",
    "runs_order_summary_desc": P + "/runs?order=-summary.acc",
    "runs_order_config": P + "/runs?order=config.lr&limit=5&offset=0",
    "runs_filter_match": P + "/runs?filters=" + _filters(
        {"config.optimizer.name": "adam", "summary.best_loss": {"$lt": 0.1}, "tags": {"$in": ["golden"]}}),
    "runs_filter_regex": P + "/runs?order=-created_at&filters=" + _filters({"name": {"$regex": "^golden-"}}),
    "runs_filter_none": P + "/runs?filters=" + _filters({"$or": [{"state": "crashed"}, {"summary.acc": {"$gt": 1}}]}),
    "runs_search": P + "/runs?search=golden-run",
    "runs_offset_past_end": P + "/runs?limit=1&offset=1",
    "run": R,
    "keys": R + "/keys",
    "series_loss_acc": R + "/series?keys=loss,acc",
    "series_samples": R + "/series?keys=nested.a,loss&samples=4",
    "series_x_epoch": R + "/series?keys=val/acc,val/loss&x_axis=epoch",
    "series_x_runtime": R + "/series?keys=acc&x_axis=_runtime&samples=10",
    "series_x_timestamp": R + "/series?keys=nested.b.c&x_axis=_timestamp",
    "series_x_metric_range": R + "/series?keys=loss&x_axis=acc&min_x=0.2&max_x=0.5",
    "series_unknown_key": R + "/series?keys=nope",
    "media_image": R + "/media?key=image",
    "media_image_limit": R + "/media?key=image&limit=1",
    "media_hist": R + "/media?key=hist",
    "media_table": R + "/media?key=table",
    "media_page": R + "/media?key=page",
    "media_audio": R + "/media?key=audio",
    "media_mesh": R + "/media?key=mesh",
    "media_cloud": R + "/media?key=cloud",
    "history": R + "/history",
    "history_page": R + "/history?start=5&limit=3",
    "history_last_page": R + "/history?start=30&limit=10",
    "console": R + "/console",
    "console_page": R + "/console?start=1&limit=2",
    "console_lines": R + "/console/lines",
    "console_lines_tail": R + "/console/lines?tail=3",
    "console_lines_search": R + "/console/lines?search=EPOCH&tail=2",
    "system": R + "/system",
    "system_page": R + "/system?start=1&limit=1",
    "files": R + "/files",
    "alerts": R + "/alerts",
    "alerts_page": R + "/alerts?start=1&limit=1",
    "run_artifacts": R + "/artifacts",
    "project_artifacts": P + "/artifacts",
    "artifact_v0": P + "/artifacts/model/v0",
    "artifact_v1": P + "/artifacts/model/v1",
    "artifact_best": P + "/artifacts/model/best",
    "artifact_latest": P + "/artifacts/model/latest",
    "artifact_prod": P + "/artifacts/model/prod",
    "position": R + "/position",
    "error_unknown_run": P + "/runs/nope",
    "error_unknown_project_runs": "/api/v1/projects/nope/runs",
    "error_unknown_alias": P + "/artifacts/model/nope",
    "error_missing_file": R + "/files/none.txt",
    "error_bad_file_name": R + "/files/a/../b",
    "error_unsafe_regex": P + "/runs?filters=" + _filters({"name": {"$regex": "(a+)+$"}}),
    "error_bad_filters": P + "/runs?filters=%7Bnot-json",
    "error_unknown_route": "/api/v1/nothing",
    "error_bad_sha": "/api/v1/media/xyz",
    "error_bad_console_tail": R + "/console/lines?tail=0",
}

#: Reads whose answer is bytes: recorded as status, the headers that matter, size and sha256.
BYTE_READS: dict[str, str] = {
    "file_notes": R + "/files/notes.txt",
    "file_result": R + "/files/out/result.json",
}
BYTE_HEADERS = ("content-type", "content-disposition", "x-content-type-options", "content-security-policy")

#: The local CLI commands, run with the copied run at ``runs/golden`` below the working directory.
CLI_COMMANDS: dict[str, list[str]] = {
    "show": ["show", "runs/golden"],
    "show_rows_2": ["show", "--rows", "2", "runs/golden"],
    "show_json": ["show", "--json", "runs/golden"],
    "ls": ["ls", "runs"],
    "ls_json": ["ls", "--json", "runs"],
    "logs": ["logs", "runs/golden"],
    "logs_tail_timestamps": ["logs", "--tail", "3", "--timestamps", "runs/golden"],
    "export_jsonl": ["export", "runs/golden"],
    "export_csv": ["export", "--format", "csv", "runs/golden"],
    "verify": ["verify", "runs/golden"],
}

# --------------------------------------------------------------------------- normalising
#
# Only what genuinely differs between two runs of this test is replaced, by name:
#   * "created_at"/"updated_at" of a PROJECT in GET /projects: the server's clock when the sync
#     created the project, and the latest "updated_at" of its runs (the run's own created_at, and
#     an artifact version's created_at, come from the fixture's records and are compared).
#   * The "LAST WRITE" cell of plain `wandblite ls`: an age relative to now ("3.2d ago"); the
#     replacement keeps the cell's width, so the table's layout is still compared. (The cell fits
#     the header's width until the fixture is 1000 days old; then `ls` widens the column and this
#     answer needs re-recording on unchanged code.)
#   * The run's "updated_at" in the runs list and GET run: the server's clock at the last batch.
#   * The temporary working directory in the CLI's output (`sync` prints the absolute run path):
#     replaced by "<work>".
# Nothing else is touched: SQLite, PostgreSQL and the embedded store answer the same bytes.
SERVER_TIME = "<server time>"


def _server_times(obj: dict[str, Any], *fields: str) -> None:
    for f in fields:
        if f in obj:
            obj[f] = SERVER_TIME if obj[f] is not None else None


def normalise_rest(name: str, body: Any) -> Any:
    if not isinstance(body, dict):
        return body
    if name == "projects":
        for p in body.get("projects", []):
            _server_times(p, "created_at", "updated_at")
    if name.startswith("runs"):
        for r in body.get("runs", []):
            _server_times(r, "updated_at")
    if name == "run":
        _server_times(body, "updated_at")
    return body


_AGO = re.compile(r"\d+(?:\.\d)?[smhd] ago *")


def normalise_cli(name: str, text: str, work: Path) -> str:
    if name == "ls":
        text = _AGO.sub(lambda m: "<age>".ljust(len(m.group(0))), text)
    return text.replace(str(work), "<work>")


# --------------------------------------------------------------------------- comparing


def first_difference(want: Any, got: Any, path: str = "$") -> str | None:
    """Where ``got`` first differs from ``want`` (key order, JSON type and NaN included), or None."""
    if type(want) is not type(got):
        return f"{path}: want {want!r} ({type(want).__name__}), got {got!r} ({type(got).__name__})"
    if isinstance(want, dict):
        if list(want) != list(got):
            missing, extra = [k for k in want if k not in got], [k for k in got if k not in want]
            return f"{path}: keys differ (missing {missing}, extra {extra}, order {list(want)} vs {list(got)})"
        for k in want:
            d = first_difference(want[k], got[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(want, list):
        for i, (w, g) in enumerate(zip(want, got)):
            d = first_difference(w, g, f"{path}[{i}]")
            if d:
                return d
        if len(want) != len(got):
            return f"{path}: length {len(want)} wanted, got {len(got)} (next: {(want + got)[min(len(want), len(got))]!r})"
        return None
    if isinstance(want, float) and math.isnan(want) and math.isnan(got):
        return None
    return None if want == got else f"{path}: want {want!r}, got {got!r}"


_recorded: set[str] = set()  # answers written by this session (record mode): later backends compare


def check(name: str, got: Any) -> None:
    """Compare ``got`` with ``answers/<name>.json``; in record mode write it first (once per session)."""
    path = ANSWERS / f"{name}.json"
    if RECORD and name not in _recorded:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(got, indent=1, ensure_ascii=False, allow_nan=True) + "\n", encoding="utf-8")
        _recorded.add(name)
        return
    assert path.exists(), f"no recorded answer {path.relative_to(HERE)}; record with WANDBLITE_GOLDEN_RECORD=1"
    want = json.loads(path.read_text(encoding="utf-8"))
    diff = first_difference(want, got)
    if diff:
        pytest.fail(f"golden answer {name!r} differs at {diff}", pytrace=False)


def _text_answer(out: CliOutput, name: str, work: Path) -> dict[str, Any]:
    return {"argv": out.argv, "exit_code": out.exit_code,
            "stdout": normalise_cli(name, out.stdout, work).splitlines(keepends=True),
            "stderr": normalise_cli(name, out.stderr, work).splitlines(keepends=True)}


# --------------------------------------------------------------------------- running


@dataclass
class CliOutput:
    argv: list[str]
    exit_code: int
    stdout: str
    stderr: str


def run_cli(cwd: Path, *args: str, home: Path) -> CliOutput:
    """``wandblite ARGS`` through the click command itself, in ``cwd``, in UTC, silent, with its own home.

    In-process (click's CliRunner) rather than one interpreter per command: the same command code
    and output, ten times faster on a busy machine. The environment is the one a user's shell
    would give a fresh process: no WANDB_* or WANDBLITE_* settings but the home and silence.
    """
    from click.testing import CliRunner
    from wandblite_cli.main import cli

    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith(("WANDB_", "WANDBLITE_"))}
    env.update(WANDBLITE_SILENT="1", WANDBLITE_HOME=str(home), TZ="UTC")
    env.update(_speedups_env())
    old_cwd, old_tz = Path.cwd(), os.environ.get("TZ")
    os.chdir(cwd)
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        res = CliRunner(env=env).invoke(cli, list(args), prog_name="wandblite")
    finally:
        os.chdir(old_cwd)
        if old_tz is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old_tz
        time.tzset()
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    return CliOutput(list(args), res.exit_code, res.stdout, res.stderr)


def _speedups_env() -> dict[str, str]:
    """``WANDBLITE_NO_SPEEDUPS`` passed on (to the servers too): the answers must not depend on it."""
    flag = os.environ.get("WANDBLITE_NO_SPEEDUPS")
    return {"WANDBLITE_NO_SPEEDUPS": flag} if flag else {}


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A working directory holding a fresh copy of the fixture at ``runs/golden``."""
    shutil.copytree(FIXTURE_RUN, tmp_path / "runs" / "golden")
    (tmp_path / "home").mkdir()
    return tmp_path


@pytest.fixture(params=["sqlite", "postgres", "embedded"])
def served(request: pytest.FixtureRequest, work: Path) -> Iterator[tuple[ServerProc, Path]]:
    """The fixture synced by `wandblite sync` into a fresh store, and a server reading that store."""
    home = work / "home"
    with fresh_postgres_database("wl_golden") if request.param == "postgres" else contextlib.nullcontext() as pg:
        if request.param == "embedded":
            srv = None
        else:
            db = pg or f"sqlite:///{work / 'store.db'}"
            srv = ServerProc(db, work / "media", home, env=_speedups_env()).start()
        try:
            _sync_and_check(work, home, srv)
            if srv is None:
                srv = ServerProc(None, None, home, env=_speedups_env()).start()
            yield srv, work
        finally:
            if srv is not None:
                srv.stop()


def _sync_and_check(work: Path, home: Path, srv: ServerProc | None) -> None:
    """Sync with the real CLI: a dry run, the sync, and a second sync that finds nothing to send."""
    target = ["--server", srv.url, "--api-key", srv.key] if srv else []
    for name, args in (("dry_run_json", ["--dry-run", "--json"]), ("sync_json", ["--json"]), ("resync_text", [])):
        proc = run_cli(work, "sync", "runs", *target, *args, home=home)
        answer = _text_answer(proc, name, work)
        answer["argv"] = [a for a in answer["argv"] if a not in target]
        check(f"sync/{name}", answer)


# --------------------------------------------------------------------------- the tests


def test_cli_answers(work: Path) -> None:
    for name, args in CLI_COMMANDS.items():
        check(f"cli/{name}", _text_answer(run_cli(work, *args, home=work / "home"), name, work))


def test_rest_answers(served: tuple[ServerProc, Path]) -> None:
    srv, _ = served
    http = requests.Session()  # one kept-alive connection: the reads are many and small
    http.headers.update(srv.h())
    bodies: dict[str, Any] = {}
    for name, path in JSON_READS.items():
        resp = http.get(srv.url + path, timeout=30)
        body = resp.json()
        bodies[name] = body
        check(f"rest/{name}", {"request": path, "status": resp.status_code,
                               "content_type": resp.headers.get("content-type"),
                               "body": normalise_rest(name, json.loads(json.dumps(body)))})
    for name, path in BYTE_READS.items():
        check(f"rest/{name}", _bytes_answer(http, srv.url, path))
    check("rest/media_blobs", {sha: _bytes_answer(http, srv.url, f"/api/v1/media/{sha}") for sha in _blob_shas(bodies)})
    meshes = {sha: http.get(f"{srv.url}/api/v1/media/{sha}/mesh", timeout=30) for sha in _mesh_shas(bodies)}
    check("rest/meshes", {sha: {"status": r.status_code, "body": r.json()} for sha, r in meshes.items()})


def _bytes_answer(http: requests.Session, url: str, path: str) -> dict[str, Any]:
    resp = http.get(url + path, timeout=30)
    return {"request": path, "status": resp.status_code,
            "headers": {h: resp.headers.get(h) for h in BYTE_HEADERS},
            "size": len(resp.content), "sha256": hashlib.sha256(resp.content).hexdigest()}


def _blob_shas(bodies: dict[str, Any]) -> list[str]:
    """Every blob the answers name: media values of the listings, artifact entries, saved files."""
    shas: set[str] = set()
    for name, body in bodies.items():
        if name.startswith("media_"):
            shas.update(s["value"]["sha256"] for s in body["steps"] if "sha256" in s["value"])
        if name.startswith("artifact_"):
            shas.update(e["sha256"] for e in body.get("entries", {}).values() if "sha256" in e)
    shas.update(f["sha256"] for f in bodies["files"]["files"])
    return sorted(shas)


def _mesh_shas(bodies: dict[str, Any]) -> list[str]:
    """The 3D objects (a mesh and a point cloud), plus an image: a blob that is not a mesh."""
    return [s["value"]["sha256"] for name in ("media_mesh", "media_cloud", "media_image_limit")
            for s in bodies[name]["steps"]]


def test_answers_are_all_used() -> None:
    """No stale answer files: each one belongs to a read this test makes."""
    names = ({f"rest/{n}" for n in [*JSON_READS, *BYTE_READS, "media_blobs", "meshes"]} | {"fixture_files"}
             | {f"cli/{n}" for n in CLI_COMMANDS} | {f"sync/{n}" for n in ("dry_run_json", "sync_json", "resync_text")})
    on_disk = {str(p.relative_to(ANSWERS).with_suffix("")) for p in ANSWERS.rglob("*.json")}
    assert on_disk == names or RECORD, f"stale answers: {sorted(on_disk - names)}, missing: {sorted(names - on_disk)}"


def test_fixture_is_small_and_untouched() -> None:
    """The fixture is a small run directory whose bytes are those the answers were recorded from.

    Regenerating it (make_fixture.py --force) changes this answer and every other: do it only on
    purpose, and re-record.
    """
    files = sorted(p for p in FIXTURE_RUN.rglob("*") if p.is_file())
    assert sum(p.stat().st_size for p in files) < 100_000
    check("fixture_files", {p.relative_to(FIXTURE_RUN).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                            for p in files})
