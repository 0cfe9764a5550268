"""Replay wandblite runs into W&B (wandb.ai or a self-hosted W&B Server) through the ``wandb`` package.

``sync_run(run_dir, WandbTarget(entity, project))`` replays one run with the official client;
``wandb`` is imported inside the call, never at import time. wandb's own environment decides where
the run goes and is never overridden: ``WANDB_BASE_URL``/``WANDB_API_KEY`` for a self-hosted
server, ``WANDB_MODE=offline`` to write the run under ``WANDB_DIR`` for a later ``wandb sync``.

What maps to what:

* id, name, project (``--project`` overrides), entity (``--entity`` overrides), config (without
  ``_wandb*``), tags, notes, group, job_type -> the same ``wandb.init`` arguments, with
  ``resume="allow"`` so a later pass continues the same W&B run.
* ``define_metric`` definitions (``Replay.metrics``) -> ``run.define_metric`` with the same step
  metric, step sync, hidden flag and summary ops (wandblite's ``best`` becomes ``min``/``max`` by
  its goal: wandb 0.31 has no ``best``).
* every history row -> ``run.log(row, step=row["_step"], commit=True)``: ``_step`` and ``_runtime``
  are removed (wandb sets them), ``_timestamp`` is kept (wandb keeps a user ``_timestamp``
  verbatim, so rows keep their original wall time; ``_runtime`` is the replay's own), media become
  wandb types: image-file -> ``wandb.Image(PIL image, caption)``, images/separated -> a list of
  them, video-file -> ``wandb.Video(path)``, audio-file -> ``wandb.Audio(path)``, histogram ->
  ``wandb.Histogram(np_histogram=(values, bins))``, table-file (and a chart's table) ->
  ``wandb.Table`` (media cells converted too), object3D-file -> ``wandb.Object3D(path)``,
  molecule-file -> ``wandb.Molecule(path)`` (mol and xyz, which wandb does not take, as a PDB
  file of the same atoms and bonds), molecule -> a list of them,
  html-file -> ``wandb.Html``, graph-file (``watch(log_graph=True)``'s ``graph_<idx>`` summary
  value) -> ``wandb.Graph`` of the same format, nodes and edges (W&B shows it under the run's
  Model section). Box and mask overlays of images are not carried over.
* summary -> after the history, every summary key is set explicitly (``run.summary[k] = v``) so
  the W&B summary equals wandblite's, define_metric aggregates included; media summary values that
  came from the history are left to wandb (it already holds the same last value).
* console output -> wandb's own console records (``OutputRawRecord``, what wandb's console capture
  writes and what W&B shows as the run's logs / ``output.log``), one per captured chunk, with the
  chunk's original timestamp. The sync process's own stdout is not captured (``console="off"``),
  nor are its system metrics, git state or code (they describe the sync, not the run).
* exit state -> ``run.finish(exit_code=...)``: finished -> 0, failed -> its exit code (1 if none);
  crashed -> exit code 1 and the summary key ``_wandblite`` = ``{"state": "crashed"}`` (W&B itself
  marks a run crashed only when its heartbeats stop, which a replay cannot produce). When a run
  synced as crashed was resumed and has ended, ``_wandblite`` becomes ``{"state": <its state>}``.
* a crashed run's pending row (what its writer had logged with ``commit=False`` or at a step not
  yet closed when it died) is provisional: a resume of the wandblite run continues that row and
  commits it later, with more keys or other values. A step logged to W&B can never be changed or
  logged again (a resumed W&B run starts after its last step), so the row is held back from the
  history: its values are in the summary like every other last value, and ``_wandblite`` says
  ``{"state": "crashed", "pending_step": <its step>}``. Once the wandblite run is resumed and the
  row committed, the next sync logs it at its step with its final values, exactly once. (A crashed
  run that is never resumed keeps that last step in its summary only.)
* a run still being written (state ``running``) is skipped and synced on a later pass once it
  ends.
* a shared run (several writer processes, ``mode="shared"``; docs/semantics.md section 15) goes
  as ONE W&B run: its merged history, summary, config and state as replay gives them. It is sent
  once every writer has ended (its state may read finished while a non-deciding writer still
  appends: such a run is skipped until that writer ends too). Console: every writer's lines in
  time order, each prefixed with ``[<label>] `` (``Replay.console()``; wandb's console records
  carry no writer, and the sync is one process). System metrics: every writer's samples as
  wandb's own system-metrics records (``StatsRecord``) at the sample's time, each metric named as
  wandb's shared mode names a labelled writer's metric, ``<metric>/l:<label>`` (W&B shows
  ``system/<metric>/l:<label>``; a single-writer run's system metrics are not sent, as before).
  Crashed writers' pending rows (flushed by replay at their steps) are held back like a single
  crashed run's: a step holding one is sent with the other writers' values only, or not at all
  when only the pending row is there; ``_wandblite`` = ``{"state", "pending_steps": [...]}``
  lists them. After a resume of that writer, its committed row goes at its step if W&B has not
  passed it (a W&B step is never logged twice: keys a resumed writer adds at steps already sent
  stay out of W&B).

Exactly once: the state file (``wandblite.interop.state``) keyed by run directory and id records
the final rows and console chunks acknowledged by ``run.finish()`` (wandb has flushed them). A run
whose files have not changed since it was fully synced is not opened again; a run that grew (a
resumed wandblite run) is continued with ``resume="allow"``: only later rows and chunks are sent,
starting with a held-back pending row now committed. Online, the server's position wins too: rows
below ``run.starting_step`` (the step W&B reports for the resumed run) are never sent again.
A shared run's position is the last step sent (``last_step``), not a row count (a resumed writer
may add rows between steps already sent), with its system samples sent per writer (``system``)
and its held-back steps (``pending_steps``).
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from wandblite.interop.common import (
    InteropError,
    SyncOutcome,
    final_row_count,
    not_ready,
    probe_http,
    shared_history,
    user_summary,
)
from wandblite.interop.state import SyncState, run_digest, run_key
from wandblite.vocab import RESERVED, STEP, TIMESTAMP, TYPE_KEY, WANDB_KEY, is_typed_value

__all__ = ["WandbTarget", "convert_value", "sync_run"]

_OFFLINE_MODES = ("offline", "dryrun", "disabled")


@dataclass
class WandbTarget:
    """Where to sync: wandb's environment plus optional entity/project overrides."""

    entity: str | None = None
    project: str | None = None
    state_home: str | None = None  # default: $WANDBLITE_HOME/interop

    @property
    def mode(self) -> str:
        return (os.environ.get("WANDB_MODE") or "online").strip().lower()

    @property
    def base_url(self) -> str:
        return (os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").rstrip("/")

    @property
    def label(self) -> str:
        if self.mode in _OFFLINE_MODES:
            return f"W&B ({self.mode}, {os.environ.get('WANDB_DIR') or '.'})"
        return f"W&B at {self.base_url}"


def _import_wandb() -> Any:
    try:
        import wandb
    except ImportError as exc:
        raise InteropError(f"the wandb package is not installed ({exc}); pip install wandb and retry") from None
    return wandb


def _summary_ops(m: Mapping[str, Any]) -> str | None:
    ops: list[str] = []
    for op in m.get("summary") or []:
        op = str(op).lower()
        if op == "best":
            # wandb 0.31 removed "best"; its goal says which extreme it meant.
            op = "max" if str(m.get("goal") or "").lower().startswith("max") else "min"
        if op in ("min", "max", "mean", "last", "first", "none", "copy") and op not in ops:
            ops.append(op)
    return ",".join(ops) or None


def convert_value(wandb: Any, v: Any, run_dir: Any) -> Any:
    """A replayed history value with every media leaf turned into the matching wandb object."""
    from wandblite.media import MediaValue, wrap_media

    if isinstance(v, MediaValue) or (isinstance(v, dict) and TYPE_KEY in v):
        if isinstance(v, dict):
            v = wrap_media(v, run_dir)
        return _convert_media(wandb, v, run_dir)
    if isinstance(v, dict):
        return {k: convert_value(wandb, x, run_dir) for k, x in v.items()}
    if isinstance(v, list) and v and any(isinstance(x, Mapping) for x in v):
        return [convert_value(wandb, x, run_dir) for x in v]
    return v


def _convert_media(wandb: Any, v: Any, run_dir: Any) -> Any:
    from wandblite.media import MediaValue

    t = v.get(TYPE_KEY)
    caption = v.get("caption")
    if t == "histogram":
        return wandb.Histogram(np_histogram=(list(v["values"]), list(v["bins"])))
    if not isinstance(v, MediaValue):
        return dict(v)  # a JSON dict with a _type wandblite stores no bytes for: keep as is
    if t == "image-file":
        img = v.open()
        img.load()  # read the bytes now; the PIL image must outlive its BytesIO
        return wandb.Image(img, caption=caption)
    if t == "video-file":
        return wandb.Video(v.path(), caption=caption)
    if t == "audio-file":
        return wandb.Audio(v.path(), caption=caption)
    if t in ("table-file", "chart"):
        table = v.open()
        rows = [[convert_value(wandb, c, run_dir) for c in row] for row in table.get("data", [])]
        return wandb.Table(columns=list(table.get("columns", [])), data=rows)
    if t == "object3D-file":
        return wandb.Object3D(v.path(), caption=caption)
    if t == "molecule-file":
        return _molecule(wandb, v, caption)
    if t == "html-file":
        return wandb.Html(v.open(), inject=False)
    if t == "graph-file":
        return _graph(wandb, v.open())
    if t in ("images/separated", "videos", "audio", "object3D", "molecule"):
        return [_convert_media(wandb, m, run_dir) for m in v.media()]
    return v.to_dict()


def _molecule(wandb: Any, v: Any, caption: Any) -> Any:
    """A ``wandb.Molecule`` of the file; the types wandb does not take (mol, xyz) go as PDB text of
    the same atoms and bonds (``data_types.molecule.to_pdb``), written beside the cached file."""
    from wandblite.data_types.molecule import read_structure, to_pdb

    path = v.path()
    ext = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if ext in wandb.Molecule.SUPPORTED_TYPES:
        return wandb.Molecule(path, caption=caption)
    pdb = path + ".pdb"
    if not os.path.isfile(pdb):
        tmp = f"{pdb}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(to_pdb(read_structure(v.bytes(), ext), title=os.path.basename(path)))
        os.replace(tmp, pdb)
    return wandb.Molecule(pdb, caption=caption)


def _graph(wandb: Any, doc: Mapping[str, Any]) -> Any:
    """A ``wandb.Graph`` with the nodes (wandb's attribute names kept) and ``[from, to]`` edges of ``doc``."""
    from wandb.data_types import Node

    graph = wandb.Graph(format=str(doc.get("format") or "torch"))
    by_id: dict[Any, Any] = {}
    for n in doc.get("nodes") or []:
        node = Node(id=n.get("id"), name=n.get("name"), class_name=n.get("class_name"),
                    parameters=n.get("parameters"), output_shape=n.get("output_shape"),
                    num_parameters=n.get("num_parameters"))
        by_id[n.get("id")] = graph.add_node(node)
    for edge in doc.get("edges") or []:
        if isinstance(edge, list) and len(edge) == 2 and edge[0] in by_id and edge[1] in by_id:
            graph.add_edge(by_id[edge[0]], by_id[edge[1]])
    return graph


def _explain(exc: BaseException, target: WandbTarget) -> InteropError:
    if isinstance(exc, InteropError):
        return exc
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    name = type(exc).__name__
    low = text.lower()
    if name == "AuthenticationError" or "api key" in low or "api_key" in low or "401" in text or "403" in text:
        return InteropError(
            f"{target.label} refused the API key ({text}); set WANDB_API_KEY (or run `wandb login --host "
            f"{target.base_url}`) and retry"
        )
    if name == "CommError" or "connection" in low or "timed out" in low:
        return InteropError(f"cannot reach {target.label} ({text}); check WANDB_BASE_URL and the network, then retry")
    return InteropError(f"{target.label} failed: {name}: {text}")


def sync_run(run_dir: str | os.PathLike[str], target: WandbTarget,
             log: Callable[[str], None] | None = None) -> SyncOutcome:
    """Send what W&B lacks of the run at ``run_dir``; never raises for target errors."""
    from wandblite.replay import Replay

    r = Replay(run_dir)
    out = SyncOutcome(path=str(run_dir), run_id=r.id, target=target.label, status="synced", state=r.state)
    try:
        _sync(r, target, out)
    except InteropError as exc:
        out.status, out.message = "error", str(exc)
    return out


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    # wandb prints banners on stdout; the CLI's stdout is for one line (or JSON object) per run.
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def _sync(r: Any, target: WandbTarget, out: SyncOutcome) -> None:
    why = not_ready(r)
    if why is not None:
        out.status, out.message = "skipped", why
        return
    mode = target.mode
    identity = "\n".join([mode, target.base_url if mode not in _OFFLINE_MODES else os.environ.get("WANDB_DIR", ""),
                          target.entity or "", target.project or ""])
    state = SyncState("wandb", identity, target.state_home)
    key = run_key(r.path, r.id)
    rec = state.get(key)
    digest = run_digest(r.path)
    if rec.get("done") and rec.get("digest") == digest and rec.get("state") == r.state:
        out.status, out.remote_id = "unchanged", rec.get("remote_id")
        return
    wandb = _import_wandb()
    if mode not in _OFFLINE_MODES:
        probe_http(target.base_url, "W&B", "start the W&B server or fix WANDB_BASE_URL")
    rows_done = int(rec.get("rows") or 0)
    console_done = int(rec.get("console") or 0)
    final_rows = 0 if r.shared else final_row_count(r)  # a shared run: shared_history says it

    settings = wandb.Settings(console="off", x_disable_stats=True, x_disable_meta=True, disable_git=True,
                              save_code=False, x_save_requirements=False, silent=True)
    config = {k: v for k, v in r.config.items() if not str(k).startswith(WANDB_KEY)}
    try:
        with _quiet_stdout():
            run = wandb.init(
                id=r.id, project=target.project or r.project, entity=target.entity or r.entity, name=r.name,
                config=config, tags=list(r.tags) or None, notes=r.notes, group=r.group, job_type=r.job_type,
                resume="allow", settings=settings, reinit="create_new",
                # wandb reads WANDB_DIR once per process (its setup singleton); read it per run.
                dir=os.environ.get("WANDB_DIR") or None,
            )
    except Exception as exc:  # noqa: BLE001 - one line for the user, the other runs go on
        raise _explain(exc, target) from exc
    finished = False
    shared: dict[str, Any] = {}  # a shared run's position, pending steps and system samples sent
    try:
        for name, m in r.metrics.items():
            step_metric = m.get("step_metric")
            run.define_metric(name, step_metric=step_metric,
                              step_sync=m.get("step_sync") if step_metric else None,
                              hidden=m.get("hidden") or None, summary=_summary_ops(m))
        # Online, W&B reports where the resumed run stands; rows below it are there already.
        starting_step = int(getattr(run, "starting_step", 0) or 0)
        history_keys: set[str] = set()
        sent = 0
        pending_step: int | None = None

        def send(row: dict[str, Any]) -> None:
            nonlocal sent
            payload = {k: convert_value(wandb, v, r.path) for k, v in row.items()
                       if k not in RESERVED or k == TIMESTAMP}
            run.log(payload, step=int(row[STEP]), commit=True)
            sent += 1
            out.media += sum(1 for v in row.values() if is_typed_value(v))

        if r.shared:
            shared = _send_shared_history(r, rec, starting_step, history_keys, send)
        else:
            for i, row in enumerate(r.scan_history()):
                if i >= final_rows:
                    pending_step = int(row[STEP])  # a crashed run's provisional row: held back (module doc)
                    break
                for k, v in row.items():
                    if is_typed_value(v):
                        history_keys.add(k)
                if i < rows_done or (starting_step and row[STEP] < starting_step):
                    continue
                send(row)
        out.rows = sent

        chunks = 0
        publish = _console_publisher(wandb, run)
        for j, (ts, stream, text) in enumerate(r.console()):
            chunks = j + 1
            if j >= console_done:
                publish(ts, stream, text)
                out.console += 1
        if r.shared:
            shared["system"] = _send_system_metrics(wandb, run, r, rec, out)

        summary = user_summary(r.summary)
        for k, v in summary.items():
            if is_typed_value(v) and k in history_keys:
                continue  # wandb's summary already holds this media value from the history
            run.summary[k] = convert_value(wandb, v, r.path)
        pending_steps = shared.get("pending_steps") or []
        if r.state == "crashed" or pending_steps:
            marker: dict[str, Any] = {"state": r.state}
            if pending_step is not None:
                marker["pending_step"] = pending_step
            if pending_steps:
                marker["pending_steps"] = pending_steps  # a shared run's crashed writers' pending rows
            run.summary["_wandblite"] = marker
        elif rec.get("state") == "crashed" or rec.get("pending_steps"):
            run.summary["_wandblite"] = {"state": r.state}  # synced as crashed before; resumed since
        exit_code = 0 if r.state == "finished" else (r.exit_code or 1)
        out.remote_id = f"{run.entity}/{run.project}/{run.id}" if mode not in _OFFLINE_MODES else os.path.dirname(run.dir)
        with _quiet_stdout():
            run.finish(exit_code=exit_code)
        finished = True
    except InteropError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _explain(exc, target) from exc
    finally:
        if not finished:
            with contextlib.suppress(Exception), _quiet_stdout():
                run.finish(exit_code=1)
    more = {k: shared[k] for k in ("last_step", "pending_steps", "system")} if r.shared else {}
    state.update(key, run_id=r.id, remote_id=out.remote_id, rows=rows_done + out.rows, console=chunks,
                 state=r.state, done=True, digest=digest, **more)


def _send_shared_history(r: Any, rec: Mapping[str, Any], starting_step: int, history_keys: set[str],
                         send: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Send a shared run's final rows W&B lacks; returns ``{"last_step", "pending_steps"}``.

    The position is the last step sent (``last_step`` in the state file), not a row count: a
    writer resumed after a sync may add rows at steps between the ones sent. Rows holding a crashed
    writer's pending values go without them (``common.shared_history``); their steps are listed.
    """
    last_step = rec.get("last_step")
    pending_steps: list[int] = []
    for srow in shared_history(r):
        if srow.provisional is not None:
            pending_steps.append(srow.step)
        row = srow.final
        if row is None:
            continue
        for k, v in row.items():
            if is_typed_value(v):
                history_keys.add(k)
        if (last_step is not None and srow.step <= last_step) or (starting_step and srow.step < starting_step):
            continue
        send(row)
        last_step = srow.step
    return {"last_step": last_step, "pending_steps": pending_steps}


def _send_system_metrics(wandb: Any, run: Any, r: Any, rec: Mapping[str, Any], out: SyncOutcome) -> dict[str, int]:
    """Every writer's system-metrics samples W&B lacks, as wandb's own system-metrics records.

    Named as wandb's shared mode names them: ``<metric>/l:<label>`` (W&B shows it as
    ``system/<metric>/l:<label>``), at the sample's own time. Returns label -> samples sent in all
    (``system`` in the state file); ``out.extra["system"]`` counts the samples this call sent.
    """
    done = {str(k): int(v) for k, v in (rec.get("system") or {}).items()}
    publish = _stats_publisher(run)
    if publish is None:
        out.message = "system metrics not sent: this wandb version has no interface for them"
        return done
    total = 0
    for w in r.writers:
        label = w["label"]
        name = "" if label is None else str(label)
        samples = r.system_metrics(writer=name)
        for ts, metrics in samples[done.get(name, 0):]:
            suffix = f"/l:{name}" if name else ""
            publish(ts, {f"{k}{suffix}": v for k, v in metrics.items()})
            total += 1
        done[name] = len(samples)
    out.extra["system"] = total
    return done


def _stats_publisher(run: Any) -> Callable[[float, Mapping[str, Any]], None] | None:
    """A function sending one system-metrics sample as wandb's ``StatsRecord`` at its own time, or
    None when this wandb has no such interface (its system monitor sends the same records)."""
    import json

    iface = getattr(run, "_interface", None) or getattr(getattr(run, "_backend", None), "interface", None)
    pb: Any
    try:
        from wandb.proto import wandb_internal_pb2 as pb
    except ImportError:
        return None
    if iface is None or not hasattr(iface, "_make_record") or not hasattr(iface, "_publish"):
        return None

    def publish(ts: float, metrics: Mapping[str, Any]) -> None:
        stats = pb.StatsRecord(stats_type=pb.StatsRecord.StatsType.SYSTEM)
        stats.timestamp.FromNanoseconds(int(ts * 1e9))
        for k, v in metrics.items():
            item = stats.item.add()
            item.key = k
            item.value_json = json.dumps(v, allow_nan=True)
        iface._publish(iface._make_record(stats=stats))

    return publish


def _console_publisher(wandb: Any, run: Any) -> Callable[[float, str, str], None]:
    """A function sending one captured console chunk as wandb's own console record.

    wandb has no public call for "this output was printed at time t"; its console capture sends
    ``OutputRawRecord``s through the run's interface, which is what is used here, with the original
    timestamp. If that private interface is missing (another wandb version), the text goes to
    ``output.log`` in the run's files instead (``run.save``), which W&B shows as the same logs.
    """
    iface = getattr(run, "_interface", None) or getattr(getattr(run, "_backend", None), "interface", None)
    pb: Any
    try:
        from wandb.proto import wandb_internal_pb2 as pb
    except ImportError:
        pb = None
    if iface is not None and pb is not None and hasattr(iface, "_publish_output_raw"):

        def publish(ts: float, stream: str, text: str) -> None:
            otype = pb.OutputRawRecord.OutputType.STDERR if stream == "stderr" else pb.OutputRawRecord.OutputType.STDOUT
            rec = pb.OutputRawRecord(output_type=otype, line=text)
            rec.timestamp.FromNanoseconds(int(ts * 1e9))
            iface._publish_output_raw(rec, nowait=False)

        return publish

    path = os.path.join(run.dir, "output.log")

    def append(ts: float, stream: str, text: str) -> None:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)
        run.save(path, base_path=run.dir, policy="end")

    return append
