"""The SDK's Run: ``init``, ``log``, ``config``, ``summary``, ``define_metric``, ``finish``.

Layer 4. Imports the layers below and the standard library; never click, requests, sqlite3, a
database driver, the server or sync. Its collaborators (``files``, ``artifacts``, ``watch``,
``disabled``, ``login``, ``env``) never import this module: they use a run through its
``RunSurface`` (``wandblite.surface``), which ``Run`` implements, and find the active run through
``wandblite.env``; so ``run`` may import them (lazily, on first use) without an import cycle.

How ``log`` stays cheap and crash-safe: a call is validated, encoded with one msgpack Packer, framed
and handed to the kernel in one ``os.write`` (``RunFileWriter.append``). Nothing is buffered in
user space and no helper process is involved. The step bookkeeping (``run.step``, the smaller-step
warning) uses ``fold.plan_log``; everything else the run knows about itself (``run.summary``) is
the fold of its own file, caught up on demand, so the live run and a later replay cannot disagree.
``finish`` reads nothing: the exit record, the fsync and the close cost the same after ten steps or
ten million; the fold reads the rest lazily, and the ticker keeps it near the end while a banner is due.

In the training process a logging failure never kills training: write errors become one warning
per cause (``wandblite: WARNING ...`` on stderr) and the run goes on. Bad *data* raises
``DataError`` before anything is written, as wandb does.
"""

from __future__ import annotations

import atexit
import os
import shlex
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple, cast

from wandblite import events as ev
from wandblite.config_input import config_dict
from wandblite.encode import encode_value
from wandblite.env import current_run, set_active_run
from wandblite.env import env_first as _env
from wandblite.errors import ConfigError, DataError, Error, ResumeError, RunLockedError, UsageError
from wandblite.fold import (
    FLUSH_AFTER_AT_STEP,
    FLUSH_AFTER_NO_STEP,
    Fold,
    parse_metric,
    plan_log,
    step_drop_warning,
)
from wandblite.format import MAX_RECORD_SIZE, RecordReader, frame_log
from wandblite.runfile import (
    RunFileWriter,
    RunLock,
    Ticker,
    _register_fork_close,
    has_segments,
    probe_writer,
    read_events,
    segment_path,
    segments,
    validate_run_id,
    writer_streams,
)
from wandblite.shared import WriterSetup, shared_requested, shared_run_id, writer_setup
from wandblite.surface import RunSurface
from wandblite.term import is_silent, summary_lines, termlog, termwarn
from wandblite.vocab import FILES_DIR

__all__ = ["Config", "Run", "Summary", "init"]

_NO_INTS = frozenset({float, str, bool})
_SCALARS = frozenset({float, int, str, bool})
_PLAIN = frozenset({float, int, str, bool, type(None)})
_time = time.time
_LOG = ev.LOG
_LOG_SCALARS = ev.LOG_SCALARS
_frame_log = frame_log
_MAX_RECORD = MAX_RECORD_SIZE
_NO_DATA: Any = object()
_FLUSH_NO_STEP = FLUSH_AFTER_NO_STEP
_FLUSH_AT_STEP = FLUSH_AFTER_AT_STEP
_decode = ev.decode


def _skip_undecodable(offset: int, payload: bytes, exc: Exception) -> None:
    """The live fold skips a record it cannot decode (replay and ``wandblite verify`` report it)."""


def _env_float(names: tuple[str, ...], default: float) -> float:
    v = _env(*names)
    if v is None:
        return default
    try:
        return float(v)
    except ValueError:
        termwarn(f"ignoring {names[0]}={v!r}: not a number", repeat=False)
        return default


def _new_run_id() -> str:
    # Not from the global `random` state: seeded training scripts would collide.
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(alphabet[b % 36] for b in os.urandom(8))


_ADJ = ("amber", "brave", "calm", "dark", "eager", "fair", "gentle", "hazy", "icy", "jolly", "keen",
        "lucky", "misty", "noble", "olive", "proud", "quiet", "rapid", "silent", "tidy", "vivid", "wise")
_NOUN = ("river", "forest", "meadow", "comet", "harbor", "glade", "ember", "summit", "canyon", "breeze",
         "galaxy", "lagoon", "valley", "planet", "dune", "frost", "aurora", "cedar", "delta", "fjord")


def _new_run_name() -> str:
    b = os.urandom(4)
    return f"{_ADJ[b[0] % len(_ADJ)]}-{_NOUN[b[1] % len(_NOUN)]}-{int.from_bytes(b[2:], 'big') % 1000}"


class _Metric:
    """What ``define_metric`` returns (wandb returns a ``wandb_metric.Metric``)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.name = spec["name"]
        self.step_metric = spec.get("step_metric")
        self.step_sync = spec.get("step_sync")
        self.hidden = spec.get("hidden")
        self.summary = tuple(spec.get("summary") or ())
        self.goal = spec.get("goal")

    def __repr__(self) -> str:
        return f"<Metric {self.name!r}>"


class Config(MutableMapping[str, Any]):
    """``run.config``: attribute and item access; writes are recorded in the run file."""

    def __init__(self, run: Run | None) -> None:
        object.__setattr__(self, "_run", run)
        object.__setattr__(self, "_items", {})

    # reading
    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        try:
            return self._items[key]
        except KeyError:
            raise AttributeError(f"config has no key {key!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __repr__(self) -> str:
        return repr(self._items)

    def as_dict(self) -> dict[str, Any]:
        return dict(self._items)

    def keys(self) -> Any:
        return self._items.keys()

    def items(self) -> Any:
        return self._items.items()

    def get(self, key: str, default: Any = None) -> Any:
        return self._items.get(key, default)

    # writing
    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __setattr__(self, key: str, value: Any) -> None:
        if key.startswith("_"):
            object.__setattr__(self, key, value)
        else:
            self.update({key: value})

    def __delitem__(self, key: str) -> None:
        raise Error("config keys cannot be deleted")

    def update(self, d: Any = None, allow_val_change: bool | None = None, **kwargs: Any) -> None:  # type: ignore[override]
        items = config_dict(d)
        items.update(kwargs)
        self._apply(items, allow_val_change)

    def setdefaults(self, d: Any) -> None:
        items = {k: v for k, v in config_dict(d).items() if k not in self._items}
        self._apply(items, True)

    def _apply(self, items: dict[str, Any], allow_val_change: bool | None) -> None:
        enc: dict[str, Any] = {}
        for k, v in items.items():
            if not isinstance(k, str):
                raise DataError(f"config keys must be strings, not {type(k).__name__} ({k!r})")
            val = encode_value(v, (k,), "config")
            if not allow_val_change and k in self._items and not _same(self._items[k], val):
                raise ConfigError(
                    f'Attempted to change value of key "{k}" from {self._items[k]} to {val}\n'
                    "If you really want to do this, pass allow_val_change=True to config.update()"
                )
            enc[k] = val
        if not enc:
            return
        run = self._run
        if run is not None and not run._write(ev.CONFIG, [time.time(), enc]):
            return
        self._items.update(enc)


class Summary(MutableMapping[str, Any]):
    """``run.summary``: reads are the fold of the run file; writes are explicit summary records."""

    def __init__(self, run: Run) -> None:
        self._run = run

    def _data(self) -> dict[str, Any]:
        return self._run._caught_up().summary

    def __getitem__(self, key: str) -> Any:
        return self._data()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._data()))

    def __len__(self) -> int:
        return len(self._data())

    def __contains__(self, key: object) -> bool:
        return key in self._data()

    def __repr__(self) -> str:
        return repr(self._data())

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            return self._data()[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        if key not in self._data():
            raise KeyError(key)
        self._run._write(ev.SUMMARY, [time.time(), {}, [key]])

    def update(self, d: Any = None, **kwargs: Any) -> None:  # type: ignore[override]
        items = dict(d or {})
        items.update(kwargs)
        enc: dict[str, Any] = {}
        for k, v in items.items():
            if not isinstance(k, str):
                raise DataError("Key values passed to `wandb.summary` must be strings.")
            enc[k] = encode_value(v, (k,), "summary", self._run, self._run.step)
        if enc:
            self._run._write(ev.SUMMARY, [time.time(), enc, []])

    def as_dict(self) -> dict[str, Any]:
        return dict(self._data())


class Run:
    """One run: a directory with one run file per attempt. Create with ``wandblite.init``."""

    _pending_hist: dict[str, Any] | None = None  # add_to_next_row's values (watch's histograms)

    def __init__(
        self,
        *,
        root: Path,
        run_id: str,
        project: str,
        entity: str | None,
        name: str | None,
        group: str | None,
        job_type: str | None,
        tags: list[str],
        notes: str | None,
        resume: str | None,
        fsync_interval: float,
        heartbeat: float,
        config: dict[str, Any],
        allow_val_change: bool,
        console: str = "off",
        console_cap: int = 64 << 20,
        stats_interval: float = 0.0,
        quiet: bool = False,
        writer: WriterSetup | None = None,
    ) -> None:
        self._lock = threading.RLock()  # re-entrant: a console sink may fire while this thread prints
        self._acquire, self._release = self._lock.acquire, self._lock.release  # log()'s cheap hold
        _register_fork_close(self)  # a forked child gets a lock of its own (_close_in_child)
        self._pending_hist = None
        self._finished = False
        self._pid = os.getpid()
        self.id = run_id
        self.entity = entity
        self._root = root
        self._path = root / run_id
        self._media: Any = None
        self._packer = ev.new_packer()
        self._finish_callbacks: list[Callable[[], None]] = []
        self._writer_setup = writer  # None: the run's one writer; else this process's place in a shared run
        self._writer_label = writer.label if writer is not None else None
        existing = self._check_resume(resume)
        self._open_run_file(existing)
        meta = self._fold.meta
        self.project = project if project else meta.get("project") or "uncategorized"
        self._name = name or meta.get("name") or _new_run_name()
        self.group = group if group is not None else meta.get("group")
        self.job_type = job_type if job_type is not None else meta.get("job_type")
        self._tags = tuple(tags) if tags else tuple(meta.get("tags") or ())
        self._notes = notes if notes is not None else meta.get("notes")
        self.resumed = existing
        self.start_time = time.time()
        self.heartbeat = heartbeat
        self._cur = self._fold.step
        self._has_pending = self._fold.pending is not None
        self.config = Config(self)
        self.config._items.update(self._fold.config)
        self.summary = Summary(self)
        self.dir = str(self._path / FILES_DIR)  # created by _open_run_file, while the lock is held
        self._write(ev.START, self._start_record())
        if config:
            self.config.update(config, allow_val_change=allow_val_change)
        self._quiet = quiet
        self._ticker = Ticker(self._fsync, self._beat, fsync_interval, heartbeat)
        self._ticker.start()
        self._capture: Any = None
        self._sampler: Any = None
        if not quiet:  # before console capture starts: the banner is not the run's console output
            termlog(self._init_banner())
        self._start_samplers(console, console_cap, stats_interval)

    def _check_resume(self, resume: str | None) -> bool:
        """Whether the run (in shared mode: this writer's stream) exists already; ``ResumeError``
        when ``resume`` forbids what we found."""
        if self._writer_label is not None:
            return self._check_writer_resume(resume)
        existing = has_segments(self._path)
        if existing and any(label is not None for label in writer_streams(self._path)):
            raise UsageError(
                f"run {self.id!r} in {self._path} is a shared run (written by several processes); join it "
                "with settings=Settings(mode='shared', x_label=...) or WANDBLITE_SHARED=1"
            )
        if resume == "must" and not existing:
            raise ResumeError(
                f"resume='must' but run {self.id!r} does not exist under {self._root}; "
                "check the id and the runs directory (dir= or $WANDBLITE_DIR)"
            )
        if existing and resume in (None, "never"):
            raise ResumeError(
                f"run {self.id!r} already exists in {self._path}; pass resume='allow' to continue it, "
                "or choose another id"
            )
        return existing

    def _check_writer_resume(self, resume: str | None) -> bool:
        """Shared mode: the run may exist (other writers made it); this writer's own stream is new,
        or a resume of it (a requeued job) when ``resume`` allows."""
        existing = bool(segments(self._path, self._writer_label))
        if resume == "must" and not has_segments(self._path):
            raise ResumeError(
                f"resume='must' but run {self.id!r} does not exist under {self._root}; "
                "check the id and the runs directory (dir= or $WANDBLITE_DIR)"
            )
        if existing and resume in (None, "never"):
            raise ResumeError(
                f"writer {self._writer_label!r} of run {self.id!r} already wrote in {self._path}; pass resume='allow' "
                "to continue its stream, or give this process another label (settings x_label)"
            )
        return existing

    def _open_run_file(self, existing: bool) -> None:
        """Take the run's lock, fold what earlier attempts wrote, open this attempt's run file.

        On any failure the lock is released and nothing stays open."""
        self._path.mkdir(parents=True, exist_ok=True)
        if self._writer_label is not None and probe_writer(self._path):
            raise RunLockedError(
                f"run directory {self._path} is being written by a live process that is not in shared mode; "
                "wait for it to finish, or use another run id"
            )
        self._lockfile = RunLock(self._path, self._writer_label)
        self._lockfile.acquire()
        try:
            self._fold = Fold()
            self._fold_lock = threading.Lock()  # the fold and _read_pos; never taken inside _lock
            self._read_pos: tuple[int, int] | None = None
            self._read_all = False  # finished and read to the end: nothing more will come
            attempt = 0
            if existing:
                # Resume: fold everything earlier attempts wrote; their torn tails stay where they are.
                positions: dict[int, int] = {}
                for e in read_events(self._path, positions=positions, label=self._writer_label):
                    self._fold.apply(e.kind, e.data)
                self._fold.warnings.clear()
                attempt = max(positions) + 1 if positions else len(segments(self._path, self._writer_label))
            self.attempt = attempt
            self._writer = RunFileWriter(segment_path(self._path, attempt, self._writer_label), on_error=self._write_error)
            self._read_pos = (attempt, self._writer.size)
            self._append = self._writer.append  # bound once: log() is the hottest path we have
            self._append_framed = self._writer.append_framed
            self._pack = self._packer.pack
            os.makedirs(self._path / FILES_DIR, exist_ok=True)
        except BaseException:
            if getattr(self, "_writer", None) is not None:
                self._writer.close()
            self._lockfile.release()
            raise

    def _start_record(self) -> dict[str, Any]:
        """The START record of this attempt: who, where, what, and whether it resumed; in shared
        mode also which writer this process is (``writer``)."""
        rec = {
            "v": ev.EVENT_SCHEMA_VERSION,
            "ts": self.start_time,
            "id": self.id,
            "project": self.project,
            "entity": self.entity,
            "name": self._name,
            "group": self.group,
            "job_type": self.job_type,
            "tags": list(self._tags),
            "notes": self._notes,
            "attempt": self.attempt,
            "resumed": self.resumed,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "heartbeat": self.heartbeat,
            "context": _job_context(),
        }
        if self._writer_setup is not None:
            rec["writer"] = self._writer_setup.record()
        return rec

    def _init_banner(self) -> list[str]:
        """What wandb users look for at ``init``: the run's name, id, project and directory."""
        verb = "resuming" if self.resumed else "tracking"
        who = f" as writer {self._writer_label}" if self._writer_label is not None else ""
        return [
            f"{verb} run {self._name} (id {self.id}) in project {self.project}, offline{who}",
            f"run data is saved locally in {self._path}",
        ]

    def _finish_banner(self) -> list[str]:
        """What wandb prints at ``finish``: the summary, where the files are, how to sync them."""
        return [
            *summary_lines(self._caught_up().summary),
            f"run {self._name} (id {self.id}) finished; its files are in {self._path}",
            f"sync it with: wandblite sync {shlex.quote(str(self._path))}",
        ]

    def _start_samplers(self, console: str, console_cap: int, stats_interval: float) -> None:
        """Start console capture (unless ``console`` is "off") and the system sampler (interval > 0)."""
        if console != "off":
            from wandblite.console import ConsoleCapture

            self._capture = ConsoleCapture(self._console_sink, mode=console, cap_bytes=console_cap)
            self._capture.start()
        if stats_interval > 0:
            from wandblite.system import SystemSampler

            self._sampler = SystemSampler(self._system_sink, interval=stats_interval, path=str(self._path))
            self._sampler.start()

    # ------------------------------------------------------------------ properties
    @property
    def step(self) -> int:
        """The step the next implicit ``log`` will use (wandb's ``run.step``)."""
        return self._cur

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._name = str(value)
        self._write(ev.RUN, [time.time(), {"name": self._name}])

    @property
    def tags(self) -> tuple[str, ...]:
        return self._tags

    @tags.setter
    def tags(self, value: Any) -> None:
        self._tags = tuple(str(t) for t in value)
        self._write(ev.RUN, [time.time(), {"tags": list(self._tags)}])

    @property
    def notes(self) -> str | None:
        return self._notes

    @notes.setter
    def notes(self, value: str) -> None:
        self._notes = str(value)
        self._write(ev.RUN, [time.time(), {"notes": self._notes}])

    @property
    def finished(self) -> bool:
        """True once ``finish`` ran in this process (logging to the run is then an error)."""
        return self._finished

    @property
    def writer_label(self) -> str | None:
        """This process's label in a shared run (``mode="shared"``), None for a single-writer run."""
        return self._writer_label

    @property
    def owner_pid(self) -> int:
        """The process that started the run: a forked child that sees it does not own it."""
        return self._pid

    @property
    def path(self) -> str:
        """The run directory (wandb's ``run.path`` is entity/project/id; ours is where the files are)."""
        return str(self._path)

    @property
    def runs_root(self) -> Path:
        """The directory that holds this run's directory and its siblings (``dir=``, ``$WANDBLITE_DIR``)."""
        return self._root

    @property
    def url(self) -> str | None:
        return None

    @property
    def offline(self) -> bool:
        return True

    @property
    def disabled(self) -> bool:
        return False

    @property
    def settings(self) -> Any:
        from wandblite.settings import Settings

        return Settings(project=self.project, run_id=self.id, root_dir=str(self._root))

    def __repr__(self) -> str:
        return f"<wandblite Run {self.id} ({self.project}/{self._name}) at {self._path}>"

    # ------------------------------------------------------------------ writing
    def _write(self, kind: int, obj: Any, call: str | None = None) -> bool:
        """Encode and append one non-log record under the run's lock."""
        if self._finished:
            raise UsageError(
                f"Run ({self.id}) is finished. The call to `{call or ev.KIND_NAMES.get(kind, 'log')}` will be "
                "ignored. Please make sure that you are using an active run."
            )
        with self._lock:
            try:
                payload = self._packer.pack(obj)
            except (TypeError, ValueError, OverflowError) as exc:
                self._packer.reset()
                raise DataError(f"cannot encode {ev.KIND_NAMES.get(kind)} record: {exc}") from exc
            return self._writer.append(kind, payload)

    def _write_error(self, cause: str, message: str) -> None:
        termwarn(message)

    # ------------------------------------------------------------------ the RunSurface of collaborators
    def append_event(self, kind: int, body: Any, call: str) -> bool:
        """Encode and append one record of ``kind`` (``wandblite.events``); False if the write failed.

        Raises wandb's ``UsageError`` (naming ``call``) on a finished run and ``DataError`` when
        ``body`` cannot be encoded. What ``wandblite.save``, artifacts and the like record goes here.
        """
        return self._write(kind, body, call)

    def add_finish_callback(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when this run finishes, before its exit record is written.

        ``finish`` runs its callbacks on every path that ends a run (``run.finish()``,
        ``wandblite.finish()``, ``with run:``, the atexit and excepthook handlers, SIGTERM), once
        each. A failing callback becomes one warning; the run still finishes.
        """
        self._finish_callbacks.append(callback)

    def add_to_next_row(self, key: str, value: Any) -> None:
        """Attach ``key: value`` to the next ``log`` row (the user's own keys win on a clash).

        ``watch``'s histograms ride on rows this way, as wandb's hooks log with ``commit=False``.
        """
        pending = self._pending_hist
        pending = {} if pending is None else pending
        pending[key] = value
        self._pending_hist = pending

    def clear_next_row(self) -> None:
        """Drop what ``add_to_next_row`` left waiting for the next row."""
        self._pending_hist = None

    def _close_in_child(self) -> None:
        """In a forked child (runfile's fork guard): the run's lock may have been held at the fork
        by a thread of the parent (the system sampler, the console pump) that the child does not
        have, so the child takes a lock of its own: its ``log`` and ``finish`` then warn that the
        run file is closed and go on, instead of waiting for that lock forever."""
        self._lock = threading.RLock()
        self._acquire, self._release = self._lock.acquire, self._lock.release

    def log(
        self,
        data: Any = _NO_DATA,
        step: int | None = None,
        commit: bool | None = None,
        sync: bool | None = None,
    ) -> None:
        """Log a dict of values to the run's history (wandb's ``run.log``, semantics to the letter).

        The hot path (a dict of plain scalars) is: frame the record (in C when built, else
        validate the keys and pack it), one ``os.write``. ``log()`` with no data commits the
        pending row, as in old wandb.
        """
        if self._finished:
            raise UsageError(
                f"Run ({self.id}) is finished. The call to `log` will be ignored. "
                "Please make sure that you are using an active run."
            )
        if type(data) is not dict:
            if data is _NO_DATA:
                data = {}  # `run.log()`: old wandb scripts commit the pending row this way
            elif not isinstance(data, Mapping):
                raise DataError("wandb.log must be passed a dictionary")
            else:
                data = dict(data)
        hists = self._pending_hist
        if hists is not None:
            # watch()'s histograms ride on the next row; the user's own keys win on a clash.
            self._pending_hist = None
            data = {**hists, **data}
        # The C accelerator frames a call of plain scalars whole (str keys, float/int64/bool/str
        # values, an int or no step, a bool or no commit; the payload is byte-identical to the
        # Python path's), stamped with time.time() read in C (ts None). None means "not that
        # simple": _log_python validates, encodes and plans with plan_log itself.
        framed = _frame_log(data, None, step, commit, _LOG_SCALARS, _MAX_RECORD) if _frame_log is not None else None
        if framed is None:
            self._log_python(data, step, commit, sync, hists)
            return
        if sync is not None:
            termwarn("`sync` argument is deprecated and does not affect the behaviour of `wandb.log`", repeat=False)
        # The step plan without a Python call: commit is None, True or False here and step None or
        # an int, so plan_log's answer is in the fold's tables unless the step is below the
        # current one (then plan_log says what happens: the call is dropped, with wandb's warning).
        # acquire/release rather than `with`: half the cost, on the hottest path there is.
        self._acquire()
        try:
            cur = self._cur
            if step is None:
                at = cur
                flush_after = _FLUSH_NO_STEP[commit]
            elif step >= cur:
                at = step
                flush_after = _FLUSH_AT_STEP[commit]
            else:
                drop, _flush_before, at, flush_after = plan_log(cur, self._has_pending, step, commit)
                if drop:
                    termwarn(step_drop_warning(step, cur))
                    return
            if self._append_framed(framed):  # self._advance(at, flush_after), inlined
                if flush_after:
                    self._cur = at + 1
                    self._has_pending = False
                else:
                    self._cur = at
                    self._has_pending = True
        finally:
            self._release()

    def _log_python(self, data: dict[str, Any], step: Any, commit: Any, sync: Any,
                    hists: dict[str, Any] | None) -> None:
        """``log`` for a call the C accelerator did not frame (or without it): check, plan, encode, write."""
        try:
            "".join(data)
        except TypeError:
            self._pending_hist = hists
            raise DataError("Key values passed to `wandb.log` must be strings.") from None
        if step is not None and type(step) is not int:
            try:
                step = step.__index__()  # numpy ints are fine, floats and strings are not
            except AttributeError:
                self._pending_hist = hists
                raise DataError(f"'{type(step).__name__}' object cannot be interpreted as an integer") from None
        if sync is not None:
            termwarn("`sync` argument is deprecated and does not affect the behaviour of `wandb.log`", repeat=False)
        ts = _time()
        with self._lock:
            cur = self._cur
            drop, _flush_before, at, flush_after = plan_log(cur, self._has_pending, step, commit)
            if drop:
                termwarn(step_drop_warning(step, cur))
                return
            if self._append(*self._log_record(data, ts, step, commit, at)):
                self._advance(at, flush_after)

    def _advance(self, at: int, flush_after: bool) -> None:
        """The run's step after a written log call merged at ``at`` (``log`` inlines it)."""
        if flush_after:
            self._cur = at + 1
            self._has_pending = False
        else:
            self._cur = at
            self._has_pending = True

    def _log_record(self, data: dict[str, Any], ts: float, step: int | None, commit: Any,
                    at: int) -> tuple[int, bytes]:
        """The kind and payload of a log call (the pure-Python path; the caller holds the lock)."""
        payload = None
        values = data.values()
        ints = False
        if _NO_INTS.issuperset(map(type, values)):
            kind = _LOG_SCALARS
        elif _SCALARS.issuperset(map(type, values)):
            kind, ints = _LOG_SCALARS, True
        elif _PLAIN.issuperset(map(type, values)):
            kind, ints = _LOG, True
        else:
            kind = 0
        if kind:
            try:
                payload = self._pack([ts, data, step, commit])
            except (OverflowError, UnicodeEncodeError, ValueError):
                self._packer.reset()
            else:
                # 0xcf marks a uint64: an int beyond int64, which wandb stores as a float.
                # memchr is cheap; the rare hit (float bytes can hold 0xcf too) is checked.
                if ints and b"\xcf" in payload and _has_big_int(data):
                    payload = None
        if payload is None:
            kind = _LOG
            enc = {k: encode_value(v, (k,), "history", self, at) for k, v in data.items()}
            payload = self._pack([ts, enc, step, commit])
        return kind, payload

    def define_metric(
        self,
        name: str,
        step_metric: Any = None,
        step_sync: bool | None = None,
        hidden: bool | None = None,
        summary: str | None = None,
        goal: str | None = None,
        overwrite: bool | None = None,
        **kwargs: Any,
    ) -> _Metric:
        """Customise a metric's x-axis and summary (wandb's ``define_metric``)."""
        if kwargs:
            raise Error(f"Unhandled define_metric() arg: {next(iter(kwargs))}")
        if self._finished:
            self._write(ev.METRIC, None, call="define_metric")  # raises wandb's UsageError
        spec = parse_metric(name, step_metric, step_sync, hidden, summary, goal, overwrite)
        if "copy" in spec["summary"]:
            termwarn("define_metric(summary='copy') is deprecated and will be removed.", repeat=False)
        self._write(ev.METRIC, [time.time(), spec], call="define_metric")
        return _Metric(spec)

    def media_store(self) -> Any:
        """The run's media blob store, opened on first use (media values call this)."""
        if self._media is None:
            from wandblite.media import MediaStore

            self._media = MediaStore(self._path)
        return self._media

    def _label(self, *args: Any, **kwargs: Any) -> None:
        """wandb's private telemetry hook (Transformers calls ``_label(code=...)``): nothing to record."""

    @property
    def _attach_id(self) -> str | None:
        """wandb's id for re-attaching from another process; None: Lightning then resumes by ``id``."""
        return None

    def _fsync(self) -> None:
        with self._lock:
            self._writer.fsync()
            if self._media is not None:
                self._media.fsync()
        self._keep_up()  # outside the write lock: log() is not held up while the fold reads

    def _console_sink(self, ts: float, stream: str, text: str) -> None:
        with self._lock:
            if not self._finished:
                self._writer.append(ev.CONSOLE, self._packer.pack([ts, stream, text]))

    def _system_sink(self, ts: float, metrics: dict[str, Any]) -> None:
        with self._lock:
            if not self._finished:
                self._writer.append(ev.SYSTEM, self._packer.pack([ts, metrics]))

    def _beat(self) -> None:
        with self._lock:
            if not self._finished:
                self._writer.append(ev.HEARTBEAT, self._packer.pack([time.time()]))

    # ------------------------------------------------------------------ reading back
    def _caught_up(self, background: bool = False) -> Fold:
        """The fold of this run's own file, advanced to everything written so far.

        It reads only what was written since the last catch-up, and never under the write lock:
        ``log`` goes on while it reads (a record being appended is a torn tail, read next time).
        After ``finish`` the rest of the file (the exit record included) is read once, on the
        first call, so ``finish`` itself reads nothing. A ``background`` catch-up (the ticker's)
        stops at the next batch of records once the run is finishing: ``finish`` never waits for it.
        """
        with self._fold_lock:
            pos = self._read_pos
            if pos is None or self._read_all:
                return self._fold
            finished = self._finished  # read before the file: then its exit record is in it
            seg, start = pos
            fold = self._fold
            # This attempt's segment only: earlier attempts were folded when the run opened.
            reader = RecordReader(segment_path(self._path, seg, self._writer_label), start=start, decode_kind=_LOG_SCALARS)
            try:
                for batch in reader.batches():  # the batched fold, as replay's: the same state, faster
                    if background and self._finished:
                        self._read_pos = (seg, batch[0][0])  # the rest is read on demand
                        break
                    fold.fold_records(batch, _decode, _skip_undecodable)
                else:
                    self._read_pos = (seg, reader.end_offset)
                    self._read_all = finished
            except FileNotFoundError:
                self._read_all = finished  # the run directory was removed: what was folded stays
            fold.warnings.clear()
            return fold

    def _keep_up(self) -> None:
        """The ticker's catch-up: keeps the unread tail short, so the finish banner's summary is cheap.

        A quiet or silenced run prints no banner and pays nothing: its fold is caught up only when read."""
        pos = self._read_pos
        if self._quiet or self._finished or pos is None or self._writer.size <= pos[1] or is_silent():
            return
        self._caught_up(background=True)

    # ------------------------------------------------------------------ lifecycle
    def finish(self, exit_code: int | None = None, quiet: bool | None = None, _error: dict[str, Any] | None = None,
               _signal: str | None = None) -> None:
        """Flush the pending row, write the exit record, fsync, release the lock. Twice is a no-op."""
        if self._finished or os.getpid() != self._pid:
            return  # finished already, or a forked child (it never finishes its parent's run)
        callbacks, self._finish_callbacks = self._finish_callbacks, []
        for cb in callbacks:  # wandblite.save's live/end files, watch's hooks (add_finish_callback)
            try:
                cb()
            except Exception as exc:  # noqa: BLE001 - finishing must go on
                termwarn(f"at finish, {getattr(cb, '__qualname__', cb)} failed: {exc}")
        # Stop the samplers first, so their last records land before the exit record.
        for part in (self._sampler, self._capture):
            if part is not None:
                try:
                    part.stop()
                except Exception as exc:  # noqa: BLE001 - finishing must go on
                    termwarn(f"stopping {type(part).__name__} failed: {exc}")
        with self._lock:
            if self._finished:
                return
            code = 0 if exit_code is None else int(exit_code)
            ts = time.time()
            self._writer.append(
                ev.EXIT,
                self._packer.pack({"ts": ts, "exit_code": code, "error": _error, "signal": _signal}),
            )
            if self._has_pending:  # the exit record flushes the pending row at its step
                self._cur += 1
            self._has_pending = False
            self._finished = True
        self._ticker.stop()
        with self._lock:
            if self._media is not None:
                try:
                    self._media.close()
                except Exception as exc:  # noqa: BLE001
                    termwarn(f"closing the media store failed: {exc}")
            self._writer.close()
            self._lockfile.release(remove=True)  # a clean finish leaves no .lock behind
        _on_finish(self)
        if not (quiet or self._quiet or is_silent()):  # after console capture stopped: not recorded as output
            termlog(self._finish_banner())  # its summary: the only read of the run file at finish

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.finish(exit_code=1, _error=_error_info(exc_type, exc, tb))

    # ------------------------------------------------------------------ wandb API odds and ends
    def save(self, glob_str: Any = None, base_path: Any = None, policy: str = "live") -> Any:
        """Keep files matching ``glob_str`` with the run (``wandblite.files``): live, now or end."""
        from wandblite.files import save_run

        return save_run(self, glob_str, base_path=base_path, policy=policy)

    def watch(self, models: Any, criterion: Any = None, log: str | None = "gradients", log_freq: int = 1000,
              idx: int | None = None, log_graph: bool = False) -> Any:
        """Histograms of a torch model's gradients/parameters on the next rows (``wandblite.watch``)."""
        from wandblite.watch import watch_run

        return watch_run(self, models, criterion=criterion, log=log, log_freq=log_freq, idx=idx,
                         log_graph=log_graph)

    def unwatch(self, models: Any = None) -> None:
        """Remove the hooks ``watch`` installed on ``models`` (all when None)."""
        from wandblite.watch import unwatch_run

        unwatch_run(self, models)

    def log_artifact(self, artifact_or_path: Any, name: str | None = None, type: str | None = None,  # noqa: A002
                     aliases: list[str] | None = None, tags: list[str] | None = None) -> Any:
        """Store an artifact with the run: content-addressed, versioned by digest (``wandblite.artifacts``)."""
        from wandblite.artifacts import log_artifact_run

        return log_artifact_run(self, artifact_or_path, name=name, type=type, aliases=aliases, tags=tags)

    def use_artifact(self, artifact_or_name: Any, type: str | None = None,  # noqa: A002
                     aliases: list[str] | None = None, use_as: str | None = None) -> Any:
        """Find ``"name:alias"`` among the runs under this run's root and record the use."""
        from wandblite.artifacts import use_artifact_run

        return use_artifact_run(self, artifact_or_name, type=type, aliases=aliases, use_as=use_as)

    def alert(self, title: str, text: str, level: Any = None, wait_duration: Any = None) -> None:
        """Record an alert with the run (shown by ``wandblite show``, listed by replay's ``alerts``)."""
        from wandblite.integrations.api import alert_record

        self._write(ev.ALERT, [time.time(), alert_record(title, text, level, wait_duration)], call="alert")

    def mark_preempting(self) -> None:
        """Record that this run is about to be preempted (``wandblite.preempt``; ``show`` prints it)."""
        from wandblite.preempt import mark_preempting_run

        mark_preempting_run(self)

    def log_code(self, root: str | None = ".", name: str | None = None, include_fn: Any = None,
                 exclude_fn: Any = None) -> Any:
        """Keep the source files below ``root`` with the run as a ``code`` artifact (``wandblite.run_artifacts``)."""
        from wandblite.run_artifacts import log_code_run

        fns = {k: v for k, v in (("include_fn", include_fn), ("exclude_fn", exclude_fn)) if v is not None}
        return log_code_run(self, root, name, **fns)

    def log_model(self, path: Any, name: str | None = None, aliases: list[str] | None = None) -> None:
        """Log ``path`` as a ``model`` artifact (``wandblite.run_artifacts``)."""
        from wandblite.run_artifacts import log_model_run

        log_model_run(self, path, name=name, aliases=aliases)

    def use_model(self, name: str) -> str:
        """Download the model artifact ``name`` and return its path (``wandblite.run_artifacts``)."""
        from wandblite.run_artifacts import use_model_run

        return use_model_run(self, name)

    def link_model(self, path: Any, registered_model_name: str, name: str | None = None,
                   aliases: list[str] | None = None) -> Any:
        """Log the model and, offline, the registered model's stand-in artifact (``wandblite.run_artifacts``)."""
        from wandblite.run_artifacts import link_model_run

        return link_model_run(self, path, registered_model_name, name=name, aliases=aliases)


def _same(a: Any, b: Any) -> bool:
    """Config equality where NaN equals NaN (a resumed run re-sets its config; NaN != NaN)."""
    if a == b:
        return True
    if isinstance(a, float) and isinstance(b, float):
        return a != a and b != b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return False


def _has_big_int(data: dict[str, Any]) -> bool:
    return any(type(v) is int and v > 0x7FFFFFFFFFFFFFFF for v in data.values())


def _error_info(exc_type: Any, exc: Any, tb: Any) -> dict[str, Any]:
    return {
        "type": getattr(exc_type, "__name__", str(exc_type)),
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc_type, exc, tb)),
    }


def _job_context() -> dict[str, Any]:
    try:
        from wandblite.system import job_context

        return job_context()
    except Exception:  # noqa: BLE001 - context is best effort
        return {"host": socket.gethostname(), "pid": os.getpid(), "argv": list(sys.argv)}


# ---------------------------------------------------------------------------- process hooks

_active: list[Run] = []
_hooks_installed = False
_prev_excepthook: Any = None
_prev_sigterm: Any = None


def _on_finish(run: Run) -> None:
    if run in _active:
        _active.remove(run)
    if current_run() is run:
        set_active_run(None)


def _excepthook(exc_type: Any, exc: Any, tb: Any) -> None:
    for run in list(_active):
        try:
            run.finish(exit_code=1, _error=_error_info(exc_type, exc, tb))
        except Exception:  # noqa: BLE001
            pass
    (_prev_excepthook or sys.__excepthook__)(exc_type, exc, tb)


def _sigterm(signum: int, frame: Any) -> None:
    """Record the exit (state failed, signal SIGTERM, where the program was), then die as before."""
    stack = "".join(traceback.format_stack(frame)) if frame is not None else ""
    err = {"type": "SIGTERM", "message": "terminated by SIGTERM", "traceback": stack}
    for run in list(_active):
        try:
            run.finish(exit_code=128 + signum, _error=err, _signal=signal.Signals(signum).name)
        except Exception:  # noqa: BLE001
            pass
    prev = _prev_sigterm
    if callable(prev):
        prev(signum, frame)
        return
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _atexit() -> None:
    for run in list(_active):
        try:
            run.finish()
        except Exception:  # noqa: BLE001
            pass


def _install_hooks() -> None:
    global _hooks_installed, _prev_excepthook, _prev_sigterm
    if _hooks_installed:
        return
    _hooks_installed = True
    _prev_excepthook = sys.excepthook
    sys.excepthook = _excepthook
    atexit.register(_atexit)
    if threading.current_thread() is threading.main_thread():
        try:
            prev = signal.getsignal(signal.SIGTERM)
            if prev in (signal.SIG_DFL, None) or callable(prev):
                _prev_sigterm = prev if callable(prev) else None
                signal.signal(signal.SIGTERM, _sigterm)
            # A file-size limit must make writes fail (and warn), not kill training.
            if signal.getsignal(signal.SIGXFSZ) == signal.SIG_DFL:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        except (ValueError, OSError, AttributeError):
            pass


# ---------------------------------------------------------------------------- init


def _resume_mode(resume: Any) -> str | None:
    if resume is None or resume is False:
        env = _env("WANDBLITE_RESUME", "WANDB_RESUME")
        if env is None:
            return None
        resume = env
    if resume is True:
        return "allow"
    r = str(resume).lower()
    if r in ("allow", "auto"):
        return "allow"
    if r in ("must", "never"):
        return r
    raise Error(f"resume must be one of 'allow', 'must', 'never', 'auto', True or False, not {resume!r}")


def init(
    project: str | None = None,
    entity: str | None = None,
    config: Any = None,
    name: str | None = None,
    id: str | None = None,  # noqa: A002 - wandb's keyword
    dir: str | os.PathLike[str] | None = None,  # noqa: A002
    tags: Any = None,
    notes: str | None = None,
    group: str | None = None,
    job_type: str | None = None,
    mode: str | None = None,
    resume: Any = None,
    reinit: Any = None,
    config_exclude_keys: Any = None,
    config_include_keys: Any = None,
    allow_val_change: bool | None = None,
    settings: Any = None,
    **kwargs: Any,
) -> Any:
    """Start a run (wandb's ``init``). Returns the ``Run``; also sets ``wandblite.run``.

    The run directory is ``<root>/<id>`` with root = ``dir``, else ``$WANDBLITE_DIR``, else
    ``$WANDB_DIR``, else ``./runs``. Every ``WANDBLITE_*`` setting falls back to wandb's ``WANDB_*``.
    """
    mode = mode or _env("WANDBLITE_MODE", "WANDB_MODE") or "offline"
    if mode == "disabled":
        return _start_disabled(config_dict(config, config_include_keys, config_exclude_keys))
    _check_mode(mode, kwargs)
    current = current_run()
    if current is not None and not current.finished:
        if reinit in (None, False, "return_previous") and os.getpid() == current.owner_pid:
            # wandb returns the active run when init is called again without reinit.
            return current
        current.finish()
    root = Path(dir or _env("WANDBLITE_DIR", "WANDB_DIR") or "runs")
    writer = None
    given_id = id or _env("WANDBLITE_RUN_ID", "WANDB_RUN_ID")
    if shared_requested(mode, settings):
        writer = writer_setup(settings)
        given_id = given_id or shared_run_id(root, _new_run_id)
    run_id = validate_run_id(given_id or _new_run_id())
    tag_list = list(tags) if tags else [t for t in (_env("WANDBLITE_TAGS", "WANDB_TAGS") or "").split(",") if t]
    io = _io_settings(settings)
    try:
        run = Run(
            root=root,
            run_id=run_id,
            project=project or _env("WANDBLITE_PROJECT", "WANDB_PROJECT") or "",
            entity=entity or _env("WANDBLITE_ENTITY", "WANDB_ENTITY"),
            name=name or _env("WANDBLITE_NAME", "WANDB_NAME"),
            group=group or _env("WANDBLITE_RUN_GROUP", "WANDB_RUN_GROUP"),
            job_type=job_type or _env("WANDBLITE_JOB_TYPE", "WANDB_JOB_TYPE"),
            tags=tag_list,
            notes=notes or _env("WANDBLITE_NOTES", "WANDB_NOTES"),
            resume=_resume_mode(resume),
            fsync_interval=io.fsync_interval,
            heartbeat=io.heartbeat,
            config=config_dict(config, config_include_keys, config_exclude_keys),
            allow_val_change=bool(allow_val_change),
            console=io.console,
            stats_interval=io.stats_interval,
            quiet=io.quiet,
            writer=writer,
        )
    except OSError as exc:
        # A logging failure never kills training: no run directory (permissions, read-only or full
        # file system) gives one clear warning and a run that records nothing.
        termwarn(
            f"cannot create run {run_id} under {root}: {exc.strerror or exc}; this run records nothing "
            "and training goes on (set dir= or $WANDBLITE_DIR to a writable directory)"
        )
        return _start_disabled(config_dict(config, config_include_keys, config_exclude_keys))
    _active.append(run)
    _install_hooks()
    set_active_run(run)
    _init_extras(run, kwargs, settings)
    return run


def _init_extras(run: Run, kwargs: dict[str, Any], settings: Any) -> None:
    """init's keywords (or settings) wandb scripts pass that act once the run exists:
    sync_tensorboard, save_code, monitor_gym."""
    def given(name: str) -> Any:
        if isinstance(settings, Mapping):
            return kwargs.get(name) or settings.get(name)
        return kwargs.get(name) or getattr(settings, name, None)

    if given("sync_tensorboard"):
        from wandblite.tensorboard import sync_from_init  # TensorBoard events into history, as wandb

        sync_from_init(run, settings)
    if given("save_code"):
        from wandblite.run_artifacts import save_program  # the script kept as files/code/<path>, as wandb

        try:
            save_program(run)
        except OSError as exc:  # a logging failure never kills training
            termwarn(f"save_code=True: the program could not be kept with the run: {exc}", repeat=False)
    if given("monitor_gym"):
        termwarn("monitor_gym=True is not offered by wandblite: gym's videos stay where the recorder writes "
                 "them; log them with wandblite.Video", repeat=False)


def _start_disabled(config: dict[str, Any]) -> Any:
    """A ``DisabledRun`` with ``config``, made the active run."""
    from wandblite.disabled import DisabledRun

    run_d = DisabledRun(config=config)
    # A DisabledRun answers every member of the surface by absorbing the call (its __getattr__).
    set_active_run(cast(RunSurface, run_d))
    return run_d


def _check_mode(mode: str, kwargs: dict[str, Any]) -> None:
    """Refuse an unknown ``mode``; say once that online modes log offline first, and that
    ``anonymous`` has no effect."""
    if mode not in ("offline", "online", "dryrun", "run", "shared"):
        raise Error(f"invalid mode {mode!r}: use 'offline', 'online' or 'disabled'")
    if mode in ("online", "run"):
        termwarn("wandblite always logs offline first; upload the run later with `wandblite sync`", repeat=False)
    if "anonymous" in kwargs and kwargs["anonymous"] is not None:
        termwarn("The anonymous setting has no effect and will be removed in a future version.", repeat=False)


class _IOSettings(NamedTuple):
    """How a run writes in the background: fsync and heartbeat periods, console capture, sampling."""

    fsync_interval: float
    heartbeat: float
    console: str
    stats_interval: float
    quiet: bool  # no init/finish banner: settings.quiet or .silent, $WANDBLITE_QUIET/$WANDB_QUIET


def _io_settings(settings: Any) -> _IOSettings:
    """The environment's ``WANDBLITE_*``/``WANDB_*`` values, overridden by ``settings``' (wandb.Settings)."""
    fsync_interval = _env_float(("WANDBLITE_FSYNC_INTERVAL",), 2.0)
    heartbeat = _env_float(("WANDBLITE_HEARTBEAT",), 15.0)
    console = _env("WANDBLITE_CONSOLE", "WANDB_CONSOLE") or "wrap"
    stats_interval = _env_float(("WANDBLITE_STATS_INTERVAL",), 15.0)
    if _env("WANDBLITE_DISABLE_STATS", "WANDB_DISABLE_STATS") in ("1", "true", "True"):
        stats_interval = 0.0
    quiet = (_env("WANDBLITE_QUIET", "WANDB_QUIET") or "").lower() in ("1", "true")
    if isinstance(settings, Mapping):  # wandb also takes settings as a dict
        settings = SimpleNamespace(**settings)
    if settings is not None:
        quiet = quiet or bool(getattr(settings, "quiet", None) or getattr(settings, "silent", None))
        fsync_interval = getattr(settings, "fsync_interval", None) or fsync_interval
        heartbeat = getattr(settings, "heartbeat_interval", None) or heartbeat
        console = getattr(settings, "console", None) or console
        interval = getattr(settings, "x_stats_sampling_interval", None) or getattr(settings, "_stats_sampling_interval", None)
        stats_interval = float(interval) if interval else stats_interval
        if getattr(settings, "disable_stats", None) or getattr(settings, "x_disable_stats", None):
            stats_interval = 0.0
    if console in ("auto", "on"):
        console = "wrap"
    if console not in ("wrap", "redirect", "off"):
        raise Error(f"settings.console must be 'wrap', 'redirect' or 'off', not {console!r}")
    return _IOSettings(fsync_interval, heartbeat, console, stats_interval, quiet)
