"""The store contract, through a real server process, on SQLite and on PostgreSQL.

Each test uses its own project names, so one server per backend serves them all.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import wandblite

from .conftest import ServerProc, assert_same_history, canon, cli, local_rows, uniq, write_run

#: Every test here runs with the blobs on disk and in an S3-compatible bucket (``--media s3://...``).
MEDIA_KINDS = ("disk", "s3")


def _sync(srv: ServerProc, *paths: Path, extra: tuple[str, ...] = (), home: Path | None = None) -> list[dict]:
    r = cli("sync", *map(str, paths), "--server", srv.url, "--api-key", srv.key, "--json", *extra, home=home)
    assert r.returncode == 0, r.stdout + r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def test_finished_run_arrives_whole_and_a_resync_sends_no_rows(server: ServerProc, tmp_path: Path) -> None:
    project = uniq()
    write_run(tmp_path / "runs", project, "r1", 1200)
    out = _sync(server, tmp_path / "runs", extra=("--batch-size", "250"), home=tmp_path / "h")
    assert out[0]["ok"] and out[0]["rows"] == 1200 and out[0]["state"] == "finished"
    assert_same_history(server, project, "r1", tmp_path / "runs" / "r1")
    run = server.get(f"/api/v1/projects/{project}/runs/r1").json()
    assert run["state"] == "finished" and run["exit_code"] == 0 and run["rows"] == 1200
    local = wandblite.replay(tmp_path / "runs" / "r1")
    assert canon(run["config"]) == canon(local.config)  # NaN in the config survives
    assert canon(run["summary"]) == canon(json.loads(json.dumps(local.summary)))
    # A second sync (cache on) and a third with a fresh cache home both send nothing.
    again = _sync(server, tmp_path / "runs", home=tmp_path / "h")
    assert again[0]["rows"] == 0 and again[0]["unchanged"]
    fresh = _sync(server, tmp_path / "runs", home=tmp_path / "other-home")
    assert fresh[0]["rows"] == 0 and not fresh[0]["meta_updated"]
    assert len(server.history(project, "r1")) == 1200


def test_failed_run_keeps_its_exit_code(server: ServerProc, tmp_path: Path) -> None:
    project = uniq()
    write_run(tmp_path / "runs", project, "bad", 10, mode="fail")
    _sync(server, tmp_path / "runs", home=tmp_path / "h")
    run = server.get(f"/api/v1/projects/{project}/runs/bad").json()
    assert (run["state"], run["exit_code"]) == ("failed", 3)


def test_crashed_pending_row_is_provisional_and_a_resume_arrives_as_one_run(server: ServerProc, tmp_path: Path) -> None:
    project = uniq()
    runs = tmp_path / "runs"
    proc = write_run(runs, project, "req", 300, mode="pending")
    assert proc is not None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    out = _sync(server, runs, home=tmp_path / "h")
    assert out[0]["state"] == "crashed"
    pos = server.position(project, "req")
    assert pos["rows"] == 300 and pos["pending"] is True
    hist = server.history(project, "req")
    assert len(hist) == 301 and hist[-1]["final"] is False and hist[-1]["row"]["pending_only"] == 42.0
    assert_same_history(server, project, "req", runs / "req")
    # The requeued job resumes the run (a second segment) and finishes it.
    write_run(runs, project, "req", 200)
    out = _sync(server, runs, home=tmp_path / "h")
    assert out[0]["state"] == "finished"
    assert len(list((runs / "req").glob("events-*.wlr"))) == 2
    assert_same_history(server, project, "req", runs / "req")
    hist = server.history(project, "req")
    assert all(r["final"] for r in hist) and len(hist) == 500  # the resume logs into the pending step
    assert hist[300]["row"]["pending_only"] == 42.0  # the pending row grew into the resumed step


def test_retried_batch_changes_nothing_and_a_gap_is_409(server: ServerProc) -> None:
    project, base = uniq(), None
    path = f"/api/v1/projects/{project}/runs/x/batch"
    rows = [{"idx": i, "final": True, "row": {"_step": i, "v": i * 1.5}} for i in range(5)]
    body = {"run": {"state": "running"}, "rows": rows, "console": [{"idx": 0, "ts": 1.0, "stream": "stdout", "text": "hi\n"}]}
    first = server.post(path, body)
    assert first.status_code == 200, first.text
    assert first.json()["rows"] == 5 and first.json()["console"] == 1
    again = server.post(path, body)
    assert again.status_code == 200 and again.json() == first.json()
    gap = server.post(path, {"rows": [{"idx": 7, "final": True, "row": {"v": 1}}]})
    assert gap.status_code == 409
    err = gap.json()["error"]
    assert err["code"] == "gap" and err["position"]["rows"] == 5 and base is None
    assert len(server.history(project, "x")) == 5
    # Overlap: rows 3..6 -> 3 and 4 are skipped, 5 and 6 appended.
    over = server.post(path, {"rows": [{"idx": i, "row": {"_step": i, "v": -1}} for i in range(3, 7)]})
    assert over.json()["rows"] == 7
    hist = server.history(project, "x")
    assert [r["row"]["v"] for r in hist] == [0.0, 1.5, 3.0, 4.5, 6.0, -1, -1]


def test_provisional_row_is_replaced_not_duplicated(server: ServerProc) -> None:
    project = uniq()
    path = f"/api/v1/projects/{project}/runs/p/batch"
    server.post(path, {"rows": [{"idx": 0, "row": {"a": 1}}, {"idx": 1, "final": False, "row": {"a": 2}}]})
    assert server.position(project, "p")["pending"] is True
    server.post(path, {"rows": [{"idx": 1, "final": False, "row": {"a": 3}}]})
    server.post(path, {"rows": [{"idx": 1, "row": {"a": 4, "b": 5}}, {"idx": 2, "row": {"a": 6}}]})
    hist = server.history(project, "p")
    assert [(r["idx"], r["final"], r["row"]) for r in hist] == [(0, True, {"a": 1}), (1, True, {"a": 4, "b": 5}), (2, True, {"a": 6})]
    assert server.position(project, "p") | {"digest": None} == {"rows": 3, "pending": False, "console": 0, "system": 0,
                                                                 "digest": None, "state": "running", "files": 0,
                                                                 "artifacts": 0, "uses": 0, "alerts": 0}


def test_nan_and_infinity_round_trip(server: ServerProc) -> None:
    project = uniq()
    row = {"nan": float("nan"), "inf": float("inf"), "ninf": float("-inf"), "s": "NaN", "n": {"x": float("nan")}}
    raw = json.dumps({"run": {"summary": row, "config": {"c": float("inf")}}, "rows": [{"idx": 0, "row": row}]}).encode()
    assert server.post(f"/api/v1/projects/{project}/runs/n/batch", data=raw).status_code == 200
    got = server.history(project, "n")[0]["row"]
    assert canon(got) == canon(row) and got["s"] == "NaN" and isinstance(got["s"], str)
    run = server.get(f"/api/v1/projects/{project}/runs/n").json()
    assert canon(run["summary"]) == canon(row) and run["config"] == {"c": float("inf")}


def test_read_endpoints_list_projects_runs_console_and_system(server: ServerProc, tmp_path: Path) -> None:
    project = uniq()
    runs = tmp_path / "runs"
    run = wandblite.init(project=project, id="rd", dir=str(runs), settings=wandblite.Settings(console="off", disable_stats=True))
    run._write(wandblite.events.CONSOLE, [1.0, "stdout", "line one\n"])  # what console capture writes
    run._write(wandblite.events.SYSTEM, [2.0, {"cpu": 12.5}])
    run.log({"a": 1})
    run.finish()
    _sync(server, runs, home=tmp_path / "h")
    names = [p["name"] for p in server.get("/api/v1/projects").json()["projects"]]
    assert project in names
    listed = server.get(f"/api/v1/projects/{project}/runs").json()["runs"]
    assert [r["id"] for r in listed] == ["rd"] and listed[0]["state"] == "finished"
    cons = server.get(f"/api/v1/projects/{project}/runs/rd/console").json()["console"]
    assert [(c["idx"], c["stream"], c["text"]) for c in cons] == [(0, "stdout", "line one\n")]
    sys_ = server.get(f"/api/v1/projects/{project}/runs/rd/system").json()["system"]
    assert [(s["idx"], s["metrics"]) for s in sys_] == [(0, {"cpu": 12.5})]
    assert server.get(f"/api/v1/projects/{project}/runs/nope").status_code == 404


def test_media_is_uploaded_once_and_served_safely(server: ServerProc, tmp_path: Path) -> None:
    import numpy as np

    project = uniq()
    runs = tmp_path / "runs"
    run = wandblite.init(project=project, id="m", dir=str(runs), settings=wandblite.Settings(console="off", disable_stats=True))
    img = np.zeros((8, 8, 3), dtype=np.uint8)
    run.log({"img": wandblite.Image(img), "page": wandblite.Html("<script>alert(1)</script>")})
    run.log({"img": wandblite.Image(img)})  # the same bytes again
    run.finish()
    out = _sync(server, runs, home=tmp_path / "h")
    assert out[0]["ok"], out
    assert_same_history(server, project, "m", runs / "m")
    row = server.history(project, "m")[0]["row"]
    sha = row["img"]["sha256"]
    got = server.get(f"/api/v1/media/{sha}")
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    assert got.content == wandblite.replay(runs / "m").history()[0]["img"].bytes()
    html = server.get(f"/api/v1/media/{row['page']['sha256']}")
    assert html.status_code == 200 and "html" not in html.headers["content-type"]
    assert "attachment" in html.headers["content-disposition"] and html.headers["x-content-type-options"] == "nosniff"
    missing = server.post("/api/v1/media/missing", {"sha256": [sha, "0" * 64]}).json()["missing"]
    assert missing == ["0" * 64]
    assert out[0]["media"] == 2  # one image (logged twice) and one html page


def test_one_bad_run_is_reported_and_never_blocks_the_others(server: ServerProc, tmp_path: Path) -> None:
    project = uniq()
    runs = tmp_path / "runs"
    write_run(runs, project, "good", 20)
    (runs / "junk").mkdir()
    (runs / "junk" / "events-000.wlr").write_bytes(b"this is not a run file at all" * 10)
    r = cli("sync", str(runs), "--server", server.url, "--api-key", server.key, "--json", home=tmp_path / "h")
    assert r.returncode == 1
    res = {Path(d["path"]).name: d for d in map(json.loads, r.stdout.splitlines())}
    assert res["good"]["ok"] and not res["junk"]["ok"] and res["junk"]["error"]
    assert len(server.history(project, "good")) == 20


def test_dry_run_sends_nothing(server: ServerProc, tmp_path: Path) -> None:
    project = uniq()
    write_run(tmp_path / "runs", project, "d", 30)
    r = cli("sync", str(tmp_path / "runs"), "--server", server.url, "--api-key", server.key, "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert plan["send"]["rows"] == 30 and plan["server"]["rows"] == 0
    assert server.get(f"/api/v1/projects/{project}/runs/d").status_code == 404
    assert local_rows(tmp_path / "runs" / "d")
