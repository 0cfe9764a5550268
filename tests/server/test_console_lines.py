"""``GET .../console/lines``: the console joined on the server, as ``wandblite logs`` joins it.

Records go in through the real batch endpoint of a real ``wandblite server`` on SQLite and on
PostgreSQL; the answer is compared with ``wandblite.console.join_records`` (the CLI's joiner) and
with the lines written out by hand. Then the bounds of ``tail``, ``search``, the one error shape,
unknown runs and auth. Paging over many records is checked in process against the ``Store``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from wandblite.console import join_records
from wandblite.server import read
from wandblite.server.errors import ApiError
from wandblite.server.store import Store

from .conftest import ServerProc, uniq

#: A run's console records as the capture writes them: a partial line recorded provisionally and
#: completed later, a bar that moves on with "\r" records, two lines in one stderr record, and an
#: stderr line still open at the end (a crash mid-line).
RECORDS: list[tuple[float, str, str]] = [
    (1.0, "stdout", "starting\n"),
    (2.0, "stdout", "epoch 1 "),
    (3.0, "stderr", "warn: a\nwarn: b\n"),
    (4.0, "stdout", "done\n"),
    (5.0, "stdout", "bar 10%"),
    (6.0, "stdout", "\rbar 50%"),
    (7.0, "stdout", "\rbar 100%\n"),
    (8.0, "stderr", "oops"),
]

LINES = [
    {"ts": 1.0, "stream": "stdout", "text": "starting", "open": False},
    {"ts": 3.0, "stream": "stderr", "text": "warn: a", "open": False},
    {"ts": 3.0, "stream": "stderr", "text": "warn: b", "open": False},
    {"ts": 4.0, "stream": "stdout", "text": "epoch 1 done", "open": False},
    {"ts": 7.0, "stream": "stdout", "text": "bar 100%", "open": False},
    {"ts": 8.0, "stream": "stderr", "text": "oops", "open": True},
]


def _batch(records: list[tuple[float, str, str]], start: int = 0) -> dict[str, Any]:
    return {"console": [{"idx": start + i, "ts": ts, "stream": s, "text": t} for i, (ts, s, t) in enumerate(records)]}


def _joined_lines(records: list[tuple[float, str, str]]) -> list[dict[str, Any]]:
    """What the CLI's joiner makes of ``records``, cut into lines."""
    out = []
    for ts, stream, text in join_records(records):
        ended = text.endswith("\n")
        out += [{"ts": ts, "stream": stream, "text": line, "open": not ended}
                for line in (text[:-1] if ended else text).split("\n")]
    return out


def _lines(server: ServerProc, project: str, run_id: str, query: str = "", key: str | None = "") -> requests.Response:
    return server.get(f"/api/v1/projects/{project}/runs/{run_id}/console/lines{query}", key=key)


def _assert_error(resp: requests.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]


def test_lines_are_joined_as_the_cli_joins_them(server: ServerProc) -> None:
    project = uniq()
    path = f"/api/v1/projects/{project}/runs/c/batch"
    # The provisional record and its completion arrive in different batches, as a live sync sends them.
    assert server.post(path, _batch(RECORDS[:3])).status_code == 200
    early = _lines(server, project, "c").json()
    assert [(x["text"], x["open"]) for x in early["lines"]] == [
        ("starting", False), ("warn: a", False), ("warn: b", False), ("epoch 1 ", True)]
    assert server.post(path, _batch(RECORDS[3:], start=3)).status_code == 200
    body = _lines(server, project, "c").json()
    assert body == {"lines": LINES, "total": 6, "matched": 6, "records": 8}
    assert body["lines"] == _joined_lines(RECORDS)
    assert server.get(f"/api/v1/projects/{project}/runs/c").json()["console"] == body["records"]


def test_tail_keeps_the_last_lines_and_search_filters_before_it(server: ServerProc) -> None:
    project = uniq()
    assert server.post(f"/api/v1/projects/{project}/runs/t/batch", _batch(RECORDS)).status_code == 200
    assert _lines(server, project, "t", "?tail=2").json() == {"lines": LINES[-2:], "total": 6, "matched": 6, "records": 8}
    assert _lines(server, project, "t", "?tail=1").json()["lines"] == LINES[-1:]
    assert _lines(server, project, "t", f"?tail={read.MAX_TAIL}").json()["lines"] == LINES
    assert _lines(server, project, "t", "?tail=").json()["lines"] == LINES  # empty: the default
    found = _lines(server, project, "t", "?search=WARN").json()
    assert found == {"lines": LINES[1:3], "total": 6, "matched": 2, "records": 8}
    assert _lines(server, project, "t", "?search=warn&tail=1").json()["lines"] == LINES[2:3]
    assert _lines(server, project, "t", "?search=").json()["matched"] == 6  # empty: every line
    assert _lines(server, project, "t", "?search=nothing-like-it").json() == {
        "lines": [], "total": 6, "matched": 0, "records": 8}


@pytest.mark.parametrize("query", ["?tail=0", "?tail=-1", f"?tail={read.MAX_TAIL + 1}", "?tail=abc", "?tail=1.5",
                                   "?search=" + "x" * (read.MAX_SEARCH + 1)])
def test_bad_parameters_are_400_in_the_one_error_shape(server: ServerProc, query: str) -> None:
    project = uniq()
    assert server.post(f"/api/v1/projects/{project}/runs/b/batch", _batch(RECORDS)).status_code == 200
    _assert_error(_lines(server, project, "b", query), 400, "bad_request")


def test_unknown_run_or_project_is_404_and_a_run_without_console_is_empty(server: ServerProc) -> None:
    project = uniq()
    assert server.post(f"/api/v1/projects/{project}/runs/quiet/batch",
                       {"rows": [{"idx": 0, "row": {"a": 1}}]}).status_code == 200
    assert _lines(server, project, "quiet").json() == {"lines": [], "total": 0, "matched": 0, "records": 0}
    _assert_error(_lines(server, project, "nope"), 404, "not_found")
    _assert_error(_lines(server, uniq(), "nope"), 404, "not_found")


@pytest.mark.parametrize("key", [None, "wl_not-a-real-key"])
def test_reading_lines_needs_a_key(server: ServerProc, key: str | None) -> None:
    project = uniq()
    assert server.post(f"/api/v1/projects/{project}/runs/a/batch", _batch(RECORDS)).status_code == 200
    _assert_error(_lines(server, project, "a", key=key), 401, "unauthorized")
    assert _lines(server, project, "a").status_code == 200


def test_lines_span_pages_of_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Records are read a page at a time; a line started on one page and completed on the next,
    # and a bar replaced across pages, come out exactly as when everything fits on one page.
    records = [(float(i), "stdout", f"line {i}\n") for i in range(10)]
    records += [(10.0, "stdout", "part "), (11.0, "stderr", "e\n"), (12.0, "stdout", "whole\n"),
                (13.0, "stdout", "bar 1"), (14.0, "stdout", "\rbar 2"), (15.0, "stdout", "\rbar 3\n")]
    store = Store(f"sqlite:///{tmp_path / 'store.db'}", media_dir=tmp_path / "media")
    try:
        store.apply_batch("p", "r", _batch(records))
        whole = read.get_console_lines(store, "p", "r", tail=read.MAX_TAIL)
        monkeypatch.setattr(read, "MAX_PAGE", 3)
        assert read.get_console_lines(store, "p", "r", tail=read.MAX_TAIL) == whole
        assert whole["lines"] == _joined_lines(records) and whole["records"] == len(records)
        assert [x["text"] for x in whole["lines"][-3:]] == ["e", "part whole", "bar 3"]
        assert read.get_console_lines(store, "p", "r", tail=2)["lines"] == whole["lines"][-2:]
        for bad in (0, read.MAX_TAIL + 1, True, "3"):
            with pytest.raises(ApiError):
                read.get_console_lines(store, "p", "r", tail=bad)  # type: ignore[arg-type]
    finally:
        store.close()
