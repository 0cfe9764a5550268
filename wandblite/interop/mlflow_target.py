"""Replay wandblite runs into an MLflow tracking server, exactly once.

``sync_run(run_dir, MlflowTarget(tracking_uri, experiment))`` turns one run into one MLflow run
through ``mlflow.tracking.MlflowClient`` (``mlflow`` is imported inside the call, never at import):

=====================  ====================================================================
wandblite              MLflow
=====================  ====================================================================
project                experiment (``--experiment`` overrides; created if missing)
id                     tag ``wandblite.run_id`` (how the run is found again), plus
                       ``wandblite.project``
name                   run name
config                 params: nested keys dotted (``opt.lr``), ``_wandb*`` left out, values
                       ``str()`` (lists/dicts as JSON), keys cut to 250 and values to 6000 chars
numeric history leaf   metric ``<dotted key>`` at the row's ``_step``, timestamp = the row's
                       ``_timestamp`` in ms (bools, strings, None are not metrics)
summary                numeric leaves that differ from the key's last history value (for
                       example define_metric's ``loss.min``) -> one metric point at the last
                       step; other non-media leaves -> tag ``summary.<key>`` (JSON)
tags / notes           tag ``<tag>`` = ``"true"`` for each wandb tag; notes -> ``mlflow.note.content``;
                       group / job_type -> ``wandb.group`` / ``wandb.job_type``
media, tables          artifacts at their wandb logical path (``media/images/img_3_<sha>.png``)
console output         artifact ``output.log``
state                  FINISHED (finished), FAILED (failed), KILLED (crashed); a running run is
                       skipped until it ends; tags ``wandblite.state``, ``wandblite.exit_code``
crashed run's pending  tag ``wandblite.pending`` = ``{"step", "metrics"}`` (JSON), no metric
row                    points (see below); the tag is removed once the row is committed
=====================  ====================================================================

Metric and tag keys with characters MLflow refuses are rewritten (each bad character -> ``_``).

A shared run (several writer processes, ``mode="shared"``) becomes ONE MLflow run, sent once every
writer has ended: the merged history, summary, config and state as replay gives them; console
output as ``output.log`` (every writer's lines in time order, each prefixed ``[<label>] ``) plus
``output-<label>.log`` per writer; each writer's system metrics as ``system/<label>/<metric>``
(MLflow's own name for a node's system metrics is ``system/<node id>/<metric>``) at the sample's
time, step = its index in the writer's stream. Its history position is the last step sent (tag
``wandblite.last_step``; a resumed writer may add rows between steps already sent, and rows at or
below the position are not sent again), its system position the samples sent per writer (tag
``wandblite.system``, JSON, written with the last of them); crashed writers' pending rows go to
``wandblite.pending`` as ``{"steps", "metrics"}``, and once such a writer is resumed and its row
committed, the row of each step listed there is sent, below the position too (the other writers'
points at that step are the same points again, which MLflow keeps once).

Exactly once: the MLflow run holds its own position, the tag ``wandblite.rows`` = history rows
already sent; it is written in the same ``log_batch`` call as (after) the metrics of those rows,
and the media of a batch are uploaded before its metrics. A re-run finds the run by its tag,
reads the position and sends only later rows; MLflow's SQL store ignores a metric point that
already exists (same key, step, timestamp, value), so a batch re-sent after a crash between the two
writes adds nothing. The state file (``wandblite.interop.state``) only saves work: a run whose
files did not change since it was fully synced is not read again (one ``get_run`` checks that the
MLflow run still exists). Batches respect ``log_batch``'s limits: at most 1000 metrics, 100
params, 100 tags and 1000 entities per call.

A crashed run's pending row (logged with ``commit=False``, or at a step not yet closed, when its
writer died) is provisional: a resume of the wandblite run continues that row and commits it
later, with more keys or other values. MLflow keeps every metric point ever logged, so the row's
values are not logged as points until then (its numbers would stay beside the final ones): they
go to the tag ``wandblite.pending`` instead, which the sync after the resume deletes when it logs
the committed row at its step, once. ``wandblite.rows`` counts final rows only.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wandblite.interop.common import (
    InteropError,
    SyncOutcome,
    final_row_count,
    not_ready,
    numeric_leaves,
    probe_http,
    shared_history,
    user_summary,
    writer_file_label,
)
from wandblite.interop.state import SyncState, run_digest, run_key
from wandblite.vocab import STEP, TIMESTAMP, WANDB_KEY, is_number, is_typed_value

__all__ = ["MAX_ENTITIES", "MAX_METRICS", "MAX_PARAMS_TAGS", "MlflowTarget", "batches", "mlflow_key", "sync_run"]

# MLflow's log_batch limits (mlflow/utils/validation.py).
MAX_METRICS = 1000
MAX_PARAMS_TAGS = 100
MAX_ENTITIES = 1000
MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000

POSITION_TAG = "wandblite.rows"
STEP_POSITION_TAG = "wandblite.last_step"  # a shared run: the last step sent
SYSTEM_POSITION_TAG = "wandblite.system"  # a shared run: writer label -> system samples sent (JSON)
PENDING_TAG = "wandblite.pending"
RUN_ID_TAG = "wandblite.run_id"
PROJECT_TAG = "wandblite.project"
STATUS = {"finished": "FINISHED", "failed": "FAILED", "crashed": "KILLED"}

_BAD_KEY_CHARS = re.compile(r"[^/\w.\- :]")


@dataclass
class MlflowTarget:
    """Where to sync: a tracking URI and, optionally, one experiment for every run."""

    tracking_uri: str
    experiment: str | None = None
    state_home: str | None = None  # default: $WANDBLITE_HOME/interop

    @property
    def label(self) -> str:
        return f"MLflow at {self.tracking_uri}"


def mlflow_key(key: str) -> str:
    """``key`` as a name MLflow accepts: bad characters -> ``_``, no ``..``/``//`` paths, <= 250 chars."""
    k = _BAD_KEY_CHARS.sub("_", key)
    if os.path.normpath(k) != k or k.startswith("/") or k in ("", ".", ".."):
        # MLflow treats names as file paths and refuses ones that would resolve to another name.
        k = k.replace("/", "_")
        if k in ("", ".", ".."):
            k = "_" + k
    return k[:MAX_KEY]


def batches(metrics: list[Any], params: list[Any], tags: list[Any]) -> Iterator[tuple[list[Any], list[Any], list[Any]]]:
    """Split into ``log_batch`` calls of <= 1000 metrics, <= 100 params, <= 100 tags, <= 1000 in all.

    The last call carries the last tags, so a position tag placed last is written after everything
    it counts.
    """
    m, p, t = list(metrics), list(params), list(tags)
    while m or p or t:
        bp = p[:MAX_PARAMS_TAGS]
        p = p[len(bp):]
        room = MAX_ENTITIES - len(bp)
        bm = m[: min(MAX_METRICS, room)]
        m = m[len(bm):]
        room -= len(bm)
        bt: list[Any] = []
        if not m:  # tags go with the last metrics: the position tag must follow the points it counts
            bt = t[: min(MAX_PARAMS_TAGS, room)]
            t = t[len(bt):]
        yield bm, bp, bt


def _param_value(v: Any) -> str:
    s = v if isinstance(v, str) else json.dumps(v, default=str) if isinstance(v, (list, dict, tuple)) else str(v)
    return s[:MAX_PARAM_VALUE]


def _tag_value(v: Any) -> str:
    s = v if isinstance(v, str) else json.dumps(v, default=str, allow_nan=True)
    return s[:MAX_TAG_VALUE]


def _ms(ts: Any, default: float) -> int:
    t = float(ts) if is_number(ts) else default
    return round(t * 1000)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _explain(exc: BaseException, target: MlflowTarget) -> InteropError:
    """One actionable line for an error from the MLflow client."""
    if isinstance(exc, InteropError):
        return exc
    msg = _one_line(exc)
    low = str(exc).lower()
    status = getattr(exc, "get_http_status_code", lambda: None)()
    if status in (401, 403) or "401" in msg or "403" in msg or "unauthorized" in low or "permission" in low:
        return InteropError(
            f"{target.label} refused the request ({msg}); check MLFLOW_TRACKING_USERNAME/"
            "MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN"
        )
    if "connection refused" in low or "max retries exceeded" in low or "failed to establish" in low:
        return InteropError(f"cannot reach {target.label} ({msg}); start the tracking server or fix --tracking-uri")
    return InteropError(f"{target.label} failed: {msg}")


def _flat_params(config: Mapping[str, Any]) -> dict[str, str]:
    from wandblite.replay import flatten

    flat = flatten({k: v for k, v in config.items() if not str(k).startswith(WANDB_KEY)})
    return {mlflow_key(k): _param_value(v) for k, v in flat.items() if v is not None}


def _run_tags(r: Any) -> dict[str, str]:
    tags: dict[str, str] = {}
    for t in r.tags:
        tags[mlflow_key(str(t))] = "true"
    if r.notes:
        tags["mlflow.note.content"] = _tag_value(r.notes)
    if r.group:
        tags["wandb.group"] = _tag_value(r.group)
    if r.job_type:
        tags["wandb.job_type"] = _tag_value(r.job_type)
    if r.project:
        tags[PROJECT_TAG] = _tag_value(r.project)
    if r.entity:
        tags["wandb.entity"] = _tag_value(r.entity)
    if r.host:
        tags["wandblite.host"] = _tag_value(r.host)
    tags[RUN_ID_TAG] = r.id
    return tags


def _media_refs(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    from wandblite.media import iter_refs

    return list(iter_refs({k: v for k, v in row.items() if is_typed_value(v) or isinstance(v, Mapping)}))


class _Client:
    """The few MlflowClient calls used here, each turning failures into one clear line."""

    def __init__(self, target: MlflowTarget) -> None:
        try:
            from mlflow.entities import Metric, Param, RunTag
            from mlflow.tracking import MlflowClient
        except ImportError as exc:
            raise InteropError(
                f"the mlflow package is not installed ({exc}); pip install mlflow (the MLflow client) and retry"
            ) from None
        self.Metric, self.Param, self.RunTag = Metric, Param, RunTag
        self.target = target
        self.client = MlflowClient(tracking_uri=target.tracking_uri)

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every client failure becomes one line for the user
            raise _explain(exc, self.target) from exc

    def experiment_id(self, name: str) -> str:
        exp = self.call(self.client.get_experiment_by_name, name)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                raise InteropError(
                    f"experiment {name!r} is deleted in {self.target.label}; restore it or choose another --experiment"
                )
            return str(exp.experiment_id)
        try:
            return str(self.client.create_experiment(name))
        except Exception:  # noqa: BLE001 - another sync may have created it meanwhile
            exp = self.call(self.client.get_experiment_by_name, name)
            if exp is None:
                raise
            return str(exp.experiment_id)

    def find_run(self, experiment_id: str, run_id: str, project: str | None) -> Any:
        flt = f"tags.`{RUN_ID_TAG}` = '{run_id}'"
        runs = self.call(self.client.search_runs, [experiment_id], filter_string=flt, max_results=50)
        same = [x for x in runs if project is None or x.data.tags.get(PROJECT_TAG) in (None, project)]
        return same[0] if same else None

    def log_batch(self, run_id: str, metrics: list[Any], params: list[Any], tags: list[Any]) -> None:
        for bm, bp, bt in batches(metrics, params, tags):
            self.call(self.client.log_batch, run_id, metrics=bm, params=bp, tags=bt)


def sync_run(run_dir: str | os.PathLike[str], target: MlflowTarget, batch_rows: int = 200,
             log: Callable[[str], None] | None = None) -> SyncOutcome:
    """Send what the MLflow run lacks of the run at ``run_dir``; never raises for target errors."""
    from wandblite.replay import Replay

    r = Replay(run_dir)
    out = SyncOutcome(path=str(run_dir), run_id=r.id, target=target.label, status="synced", state=r.state)
    try:
        _sync(r, target, out, batch_rows)
    except InteropError as exc:
        out.status, out.message = "error", str(exc)
    return out


def _sync(r: Any, target: MlflowTarget, out: SyncOutcome, batch_rows: int) -> None:
    why = not_ready(r)
    if why is not None:
        out.status, out.message = "skipped", why
        return
    state = SyncState("mlflow", f"{target.tracking_uri}\n{target.experiment or ''}", target.state_home)
    key = run_key(r.path, r.id)
    rec = state.get(key)
    digest = run_digest(r.path)
    if target.tracking_uri.startswith(("http://", "https://")):
        probe_http(target.tracking_uri.rstrip("/") + "/health", "MLflow",
                   "start the tracking server or fix --tracking-uri", shown=target.tracking_uri)
    mc = _Client(target)
    client = mc.client

    if rec.get("done") and rec.get("digest") == digest and rec.get("state") == r.state and rec.get("remote_id"):
        try:
            client.get_run(rec["remote_id"])
            out.status, out.remote_id = "unchanged", rec["remote_id"]
            return
        except Exception:  # noqa: BLE001 - gone on the server: look it up (or create it) again
            pass

    exp_id = mc.experiment_id(target.experiment or r.project or "Default")
    run = mc.find_run(exp_id, r.id, r.project)
    if run is None:
        created_ms = _ms(r.created_at, time.time())
        run = mc.call(client.create_run, exp_id, start_time=created_ms, tags=_run_tags(r), run_name=r.name)
    mlflow_id = run.info.run_id
    out.remote_id = mlflow_id
    conflicts = _send_params_and_tags(r, mc, run)
    sent = _send_history(r, mc, run, out, batch_rows, lambda rows: state.update(
        key, run_id=r.id, remote_id=mlflow_id, rows=rows, state=r.state, done=False))
    if r.shared:
        _send_system_metrics(r, mc, run, out)
    _send_summary(r, mc, run, out, sent, conflicts)
    _send_console(r, mc, mlflow_id, out)
    with contextlib.redirect_stdout(io.StringIO()):  # MLflow prints "View run" links; stdout is for --json
        mc.call(client.set_terminated, mlflow_id, status=STATUS[r.state], end_time=_ms(sent.end_s, sent.created))
    state.update(key, run_id=r.id, remote_id=mlflow_id, rows=sent.total_rows, state=r.state, done=True,
                 digest=digest, experiment_id=exp_id)


def _send_params_and_tags(r: Any, mc: _Client, run: Any) -> list[str]:
    """Send the params the MLflow run lacks and the tags that differ; returns the conflicting params.

    Params are write-once in MLflow: send only missing ones; a changed value (the config was
    updated after an earlier sync) is reported, not forced.
    """
    have = dict(run.data.params)
    params = _flat_params(r.config)
    conflicts = sorted(k for k, v in params.items() if k in have and have[k] != v)
    new_params = [mc.Param(k, v) for k, v in params.items() if k not in have]
    tags = [mc.RunTag(k, v) for k, v in _run_tags(r).items() if run.data.tags.get(k) != v]
    mc.log_batch(run.info.run_id, [], new_params, tags)
    return conflicts


@dataclass
class _Sent:
    """What ``_send_history`` leaves for the summary and the end of the run."""

    created: float  # the run's start (seconds): the timestamp of rows that have none
    end_s: float  # the run's end (seconds)
    total_rows: int = 0  # final rows MLflow holds now (the position tag)
    last_step: int = 0  # the step of the last final row
    last_value: dict[str, float] = field(default_factory=dict)  # each metric key's last history value
    pending_row: dict[str, Any] | None = None  # provisional rows: ``{"step", "metrics"}`` (shared: ``"steps"``)


def _send_history(r: Any, mc: _Client, run: Any, out: SyncOutcome, batch_rows: int,
                  acknowledged: Callable[[int], object]) -> _Sent:
    """Send the final history rows after the MLflow run's position, in batches, media first.

    Each batch's metrics go with the position tag in one ``log_batch``; ``acknowledged(rows)`` is
    called after each. A crashed run's provisional row is not sent but returned in ``pending_row``.
    """
    from wandblite.media import export as export_media

    mlflow_id = run.info.run_id
    position = int(run.data.tags.get(POSITION_TAG, "0") or 0)
    created = float(r.created_at or time.time())
    sent = _Sent(created=created, end_s=0.0)
    count = 0
    pending: list[Any] = []
    pending_refs: list[dict[str, Any]] = []
    pending_rows = 0

    # A shared run's position is its last step sent: a writer resumed after a sync may add rows at
    # steps between the ones sent, which a row count would miss.
    # Steps held back as provisional by the last sync are sent once final, even below the position
    # (MLflow takes points at any step; the other writers' points there again are the same points).
    last_sent = run.data.tags.get(STEP_POSITION_TAG) if r.shared else None
    last_sent_step = int(last_sent) if last_sent not in (None, "") else None
    held_back = _pending_steps(run.data.tags.get(PENDING_TAG)) if r.shared else set()

    def flush(upto: int) -> None:
        nonlocal pending, pending_refs, pending_rows
        if pending_refs:
            with tempfile.TemporaryDirectory(prefix="wandblite-mlflow-") as tmp:
                written = export_media(r.path, tmp, pending_refs)
                if written:
                    mc.call(mc.client.log_artifacts, mlflow_id, tmp)
                out.media += len(written)
        tags = [mc.RunTag(POSITION_TAG, str(upto))]
        if r.shared:
            tags.append(mc.RunTag(STEP_POSITION_TAG, str(sent.last_step)))
        mc.log_batch(mlflow_id, pending, [], tags)
        out.metrics += len(pending)
        acknowledged(upto)
        pending, pending_refs, pending_rows = [], [], 0

    for i, step, row, provisional in _final_rows(r):
        if provisional is not None:  # a crashed writer's provisional row: in a tag until it is committed
            values = numeric_leaves(provisional)
            for k, v in values.items():
                sent.last_value[mlflow_key(k)] = v  # its values are in the tag, not a summary metric
            committed = numeric_leaves(row) if row is not None else {}  # the other writers' values there
            _add_pending(sent, step, {mlflow_key(k): v for k, v in values.items() if committed.get(k) != v},
                         r.shared)
        if row is None:
            continue
        values = numeric_leaves(row)
        if provisional is None:
            for k, v in values.items():
                sent.last_value[mlflow_key(k)] = v
        sent.last_step = max(sent.last_step, step) if r.shared else step
        if (i < position) if not r.shared else (
                last_sent_step is not None and step <= last_sent_step and step not in held_back):
            continue  # MLflow has this row already
        ts = _ms(row.get(TIMESTAMP), created)
        pending.extend(mc.Metric(mlflow_key(k), v, ts, step) for k, v in values.items())
        pending_refs.extend(_media_refs(row))
        pending_rows += 1
        count += 1
        if pending_rows >= batch_rows or len(pending) >= MAX_METRICS * 5:
            flush(position + count if r.shared else i + 1)
    sent.total_rows = position + count
    if pending_rows:
        flush(sent.total_rows)
    out.rows = count
    sent.end_s = float(r.ended_at or r.last_alive or created)
    return sent


def _final_rows(r: Any) -> Iterator[tuple[int, int, dict[str, Any] | None, dict[str, Any] | None]]:
    """``(index, step, final row, provisional row)`` per step of the history, ``index`` counting the
    final rows before this one.

    A single writer: every row is final but a crashed run's last pending row (``final_row_count``),
    which comes as provisional and ends the history. A shared run: ``common.shared_history``.
    """
    if r.shared:
        i = 0
        for srow in shared_history(r):
            yield i, srow.step, srow.final, srow.provisional
            i += srow.final is not None
        return
    final_rows = final_row_count(r)
    for i, row in enumerate(r.scan_history()):
        if i >= final_rows:
            yield i, int(row[STEP]), None, row
            return
        yield i, int(row[STEP]), row, None


def _pending_steps(tag: str | None) -> set[int]:
    """The steps a shared run's ``wandblite.pending`` tag lists (none if absent or unreadable)."""
    try:
        steps = json.loads(tag or "{}").get("steps") or []
        return {int(x) for x in steps}
    except (ValueError, TypeError, AttributeError):
        return set()


def _add_pending(sent: _Sent, step: int, metrics: dict[str, float], shared: bool) -> None:
    """Note a provisional row: a single writer has one (``{"step", "metrics"}``); a shared run may
    have one per crashed writer (``{"steps", "metrics"}``, the latest value of each key)."""
    if not shared:
        sent.pending_row = {"step": step, "metrics": metrics}
        return
    if sent.pending_row is None:
        sent.pending_row = {"steps": [], "metrics": {}}
    sent.pending_row["steps"].append(step)
    sent.pending_row["metrics"].update(metrics)


def _send_system_metrics(r: Any, mc: _Client, run: Any, out: SyncOutcome) -> None:
    """A shared run's system-metrics samples MLflow lacks, writer by writer.

    Named as MLflow names a node's system metrics (``system/<node id>/<metric>``):
    ``system/<label>/<metric>``, at the sample's time, step = the sample's index in its writer's
    stream. The position, label -> samples sent (tag ``wandblite.system``, JSON), goes in the same
    ``log_batch`` as (after) the last of those points; ``out.extra["system"]`` counts the samples
    this call sent.
    """
    mlflow_id = run.info.run_id
    try:
        done = {str(k): int(v) for k, v in json.loads(run.data.tags.get(SYSTEM_POSITION_TAG) or "{}").items()}
    except (ValueError, TypeError, AttributeError):
        done = {}
    metrics: list[Any] = []
    samples_sent = 0
    now = dict(done)
    for w in r.writers:
        name = "" if w["label"] is None else str(w["label"])
        samples = r.system_metrics(writer=name)
        prefix = f"system/{writer_file_label(name)}/" if name else "system/"
        for idx in range(done.get(name, 0), len(samples)):
            ts, values = samples[idx]
            metrics.extend(mc.Metric(mlflow_key(prefix + k), float(v), _ms(ts, 0.0), idx)
                           for k, v in values.items() if is_number(v))
            samples_sent += 1
        now[name] = len(samples)
    if now != done:
        mc.log_batch(mlflow_id, metrics, [], [mc.RunTag(SYSTEM_POSITION_TAG, json.dumps(now, sort_keys=True))])
    out.metrics += len(metrics)
    out.extra["system"] = samples_sent


def _send_summary(r: Any, mc: _Client, run: Any, out: SyncOutcome, sent: _Sent, conflicts: list[str]) -> None:
    """The summary, state, error, conflicts, pending row and position, in one last ``log_batch``.

    Numeric leaves MLflow's latest value (or the last history value) would not already show become
    one metric point at the last step; the rest become tags.
    """
    from wandblite.replay import flatten

    mlflow_id = run.info.run_id
    latest = dict(run.data.metrics)  # MLflow's latest value per key: what a summary need not repeat
    summary = user_summary(r.summary)
    final_metrics = []
    for k, v in numeric_leaves(summary).items():
        mk = mlflow_key(k)
        if sent.last_value.get(mk) != v and latest.get(mk) != v:
            final_metrics.append(mc.Metric(mk, v, _ms(sent.end_s, sent.created), sent.last_step))
    final_tags = []
    for k, v in flatten(summary).items():
        if v is None or is_typed_value(v) or is_number(v):
            continue  # numbers went in as metrics above; media are artifacts already
        final_tags.append(mc.RunTag(mlflow_key(f"summary.{k}"), _tag_value(_plain(v))))
    final_tags.append(mc.RunTag("wandblite.state", r.state))
    if r.exit_code is not None:
        final_tags.append(mc.RunTag("wandblite.exit_code", str(r.exit_code)))
    if r.error:
        final_tags.append(mc.RunTag("wandblite.error", _tag_value(_plain(r.error))))
    if conflicts:
        final_tags.append(mc.RunTag("wandblite.param_conflicts", _tag_value(conflicts)))
        out.message = f"params not updated (MLflow params are write-once): {', '.join(conflicts[:5])}"
    if sent.pending_row is not None:
        final_tags.append(mc.RunTag(PENDING_TAG, _pending_tag(sent.pending_row)))
    final_tags.append(mc.RunTag(POSITION_TAG, str(sent.total_rows)))
    if r.shared:
        final_tags.append(mc.RunTag(STEP_POSITION_TAG, str(sent.last_step)))
    mc.log_batch(mlflow_id, final_metrics, [], final_tags)
    out.metrics += len(final_metrics)
    if sent.pending_row is None and PENDING_TAG in run.data.tags:
        mc.call(mc.client.delete_tag, mlflow_id, PENDING_TAG)  # the row it held was committed and sent above


def _send_console(r: Any, mc: _Client, mlflow_id: str, out: SyncOutcome) -> None:
    """The run's console output as the artifact ``output.log``.

    A shared run: ``output.log`` holds every writer's lines in time order, each prefixed with
    ``[label] `` (``Replay.output()``), and ``output-<label>.log`` each writer's own lines.
    """
    files = {"output.log": r.output()}
    if r.shared:
        for w in r.writers:
            name = "" if w["label"] is None else str(w["label"])
            files[f"output-{writer_file_label(name)}.log"] = r.output(writer=name)
    files = {name: text for name, text in files.items() if text}
    if files:
        with tempfile.TemporaryDirectory(prefix="wandblite-mlflow-") as tmp:
            for name, text in files.items():
                (Path(tmp) / name).write_text(text, "utf-8")
            if r.shared:
                mc.call(mc.client.log_artifacts, mlflow_id, tmp)
            else:
                mc.call(mc.client.log_artifact, mlflow_id, str(Path(tmp) / "output.log"))
        out.console = len(files)


def _pending_tag(row: dict[str, Any]) -> str:
    """``{"step", "metrics"}`` as JSON within MLflow's tag limit (``"more"``: metrics left out)."""
    metrics = dict(sorted(row["metrics"].items()))
    while True:
        text = json.dumps({**row, "metrics": metrics}, allow_nan=True)
        if len(text) <= MAX_TAG_VALUE or not metrics:
            return text[:MAX_TAG_VALUE]
        keep = max(0, len(metrics) * MAX_TAG_VALUE // len(text) - 1)
        metrics = dict(list(metrics.items())[:keep])
        row = {**row, "more": len(row["metrics"]) - keep}


def _plain(v: Any) -> Any:
    """A JSON-able copy (media values become their JSON dicts)."""
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v

