"""What the interop targets share: the outcome of one run's sync, the error type, value helpers.

Layer 5. Stdlib, ``wandblite.errors`` and ``wandblite.vocab`` (the reserved keys, the subtree rule,
what a number is); ``final_row_count`` reads the run with ``wandblite.replay`` when called.
``SyncOutcome`` is what ``sync_run`` of every target returns and what the CLI prints (one line per
run, or one JSON object with ``--json``). ``not_ready`` says why a run cannot be sent yet;
``shared_history`` is a shared run's history split into what is final and what is provisional, and
``writer_file_label`` a writer label as a file or metric name part (the three targets share them). ``InteropError`` (a ``wandblite.Error``) carries a message
that is already a complete sentence for the user: it names what went wrong and what to do; the CLI
prefixes the run id.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from wandblite.errors import Error
from wandblite.vocab import FINAL_STATES, RESERVED, RUNTIME, STEP, SUMMARY_BOOKKEEPING, is_number, is_subtree

__all__ = [
    "InteropError",
    "SharedRow",
    "SyncOutcome",
    "final_row_count",
    "not_ready",
    "numeric_leaves",
    "shared_history",
    "user_summary",
    "writer_file_label",
]


class InteropError(Error):
    """A target refused or is unreachable; ``str(exc)`` says what to do (without the run id).

    The interop branch of the one exception tree (``wandblite.errors``)."""


@dataclass
class SyncOutcome:
    """What happened to one run: ``status`` is ``synced``, ``unchanged``, ``skipped`` or ``error``."""

    path: str
    run_id: str
    target: str
    status: str
    state: str = ""
    rows: int = 0  # history rows sent by this call
    metrics: int = 0  # metric points (MLflow) sent by this call
    media: int = 0  # media files sent by this call
    console: int = 0  # console chunks sent by this call
    remote_id: str | None = None  # the target's id for the run (MLflow run id, W&B run path)
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status != "error"

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        return d

    def line(self) -> str:
        """The one line the CLI prints for this run."""
        if self.status == "error":
            return f"run {self.run_id}: {self.message}"
        if self.status == "skipped":
            return f"run {self.run_id}: skipped ({self.message})"
        if self.status == "unchanged":
            return f"run {self.run_id} ({self.state}): already synced to {self.target}, nothing to send"
        parts = [f"{self.rows} rows"]
        if self.metrics:
            parts.append(f"{self.metrics} metric points")
        parts.append(f"{self.media} media")
        if self.console:
            parts.append(f"{self.console} console chunks")
        if self.extra.get("system"):  # a shared run's writers' system-metrics samples
            parts.append(f"{self.extra['system']} system samples")
        where = f" as {self.remote_id}" if self.remote_id else ""
        return f"run {self.run_id} ({self.state}): sent {', '.join(parts)} to {self.target}{where}"


def final_row_count(r: Any) -> int:
    """How many of the replayed run's history rows are final (``r`` is a ``wandblite.replay.Replay``).

    All of them, except the last one of a crashed run whose writer died with a pending
    (uncommitted) row: replay flushes that row at its step, as wandb does at exit, but it is
    provisional. A resume of the run continues it (more keys, other values) and commits it later,
    so a target where a logged step cannot be changed must not get it before then. The native
    server gets it marked provisional and replaces it (``wandblite/server/PROTOCOL.md``).

    Found by reading the run once more as if its writer were still alive (the pending row is then
    held back, as for a running run). Rows below the count stay final whatever a later resume
    writes, so a run resumed meanwhile only makes the count larger, never wrong.
    """
    rows = int(r.rows)
    if r.state != "crashed":
        return rows
    import math

    from wandblite.replay import Replay

    return int(Replay(r.path, writer_alive=True, grace=math.inf).rows)


def not_ready(r: Any) -> str | None:
    """Why the run ``r`` (a ``wandblite.replay.Replay``) cannot be sent yet, or None when it can.

    A run is sent once it has ended. A shared run is sent once every writer has ended: its state
    is decided by its deciding writers only (docs/semantics.md section 15), so it may read finished
    while another writer still appends rows at steps a target would already hold.
    """
    if r.state not in FINAL_STATES:
        return f"still being written ({r.state}); it will be synced once it ends"
    if r.shared:
        busy = [str(w["label"]) for w in r.writers if w["state"] not in FINAL_STATES]
        if busy:
            return (f"still being written (writer {', '.join(busy)} running); "
                    "it will be synced once every writer has ended")
    return None


@dataclass
class SharedRow:
    """One step of a shared run's history as a target sends it.

    ``final`` is the row of every writer's committed records at ``step`` (None when only a crashed
    writer's pending row is at that step); ``provisional`` is the replayed row when it differs from
    ``final``: it holds a crashed writer's pending (uncommitted) values, which a resume of that
    writer may still change (``final_row_count`` says the same for a single writer's last row).
    """

    step: int
    final: dict[str, Any] | None
    provisional: dict[str, Any] | None = None


def shared_history(r: Any) -> Iterator[SharedRow]:
    """The history of the shared run ``r`` (a ended ``Replay``), step by step, in constant memory.

    Without a crashed writer every row is final. With one, the run is read twice, as replayed
    (crashed writers' pending rows flushed at their steps) and as if every writer were still alive
    (no pending row flushed), and the two streams, both ordered by ``_step``, are walked side by
    side: a step whose rows differ holds pending values.
    """
    if not any(w["state"] == "crashed" for w in r.writers):
        for row in r.scan_history():
            yield SharedRow(int(row[STEP]), row)
        return
    import math

    from wandblite.replay import Replay

    committed = iter(Replay(r.path, writer_alive=True, grace=math.inf).scan_history())
    nxt = next(committed, None)
    for row in r.scan_history():
        step = int(row[STEP])
        while nxt is not None and int(nxt[STEP]) < step:  # not expected: pending rows only add
            yield SharedRow(int(nxt[STEP]), nxt)
            nxt = next(committed, None)
        final = None
        if nxt is not None and int(nxt[STEP]) == step:
            final, nxt = nxt, next(committed, None)
        if final is not None and _same_row(row, final):
            yield SharedRow(step, row)
        else:
            yield SharedRow(step, final, row)
    while nxt is not None:
        yield SharedRow(int(nxt[STEP]), nxt)
        nxt = next(committed, None)


def _same_row(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal but for ``_runtime``, which each reading derives from its writers' lifetimes, not a value
    that was logged."""
    return {k: v for k, v in a.items() if k != RUNTIME} == {k: v for k, v in b.items() if k != RUNTIME}


def writer_file_label(label: Any) -> str:
    """A writer's label as one path or metric name part: ``/`` and other separators become ``_``."""
    text = str(label if label is not None else "")
    return "".join(c if c.isalnum() or c in "-_.@+" else "_" for c in text).strip(".") or "_"


def numeric_leaves(row: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Dotted key -> float for every numeric leaf of a (nested) row, reserved columns excluded."""
    out: dict[str, float] = {}
    for k, v in row.items():
        key = f"{prefix}{k}"
        if not prefix and k in RESERVED:
            continue
        if is_subtree(v):
            out.update(numeric_leaves(v, key + "."))
        elif is_number(v):
            out[key] = float(v)
    return out


def user_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary without wandb's own bookkeeping (``_step``, ``_runtime``, ``_timestamp``, ``_wandb``)."""
    return {k: v for k, v in summary.items() if k not in SUMMARY_BOOKKEEPING}


def probe_http(url: str, what: str, fix: str, shown: str | None = None, timeout: float = 5.0) -> None:
    """Raise ``InteropError`` if nothing answers HTTP at ``url`` (any HTTP status counts as an answer).

    The targets' own clients retry a refused connection for minutes with backoff; one quick probe
    turns "server not started" into an immediate, clear error instead.
    """
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=timeout):
            return
    except urllib.error.HTTPError:
        return  # it answered; whether it accepts us is for the real request to say
    except (TimeoutError, urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, ConnectionRefusedError):
            why = "connection refused"
        elif isinstance(reason, TimeoutError):
            why = f"no answer within {timeout:g}s"
        else:
            why = str(reason) or type(reason).__name__
        raise InteropError(f"cannot reach {what} at {shown or url} ({why}); {fix}") from None
