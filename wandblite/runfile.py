"""The run directory on disk: the writer (append, fsync policy, lock, fork guard) and the event reader.

Layer 3: imports ``format``, ``events``, ``errors``, ``vocab``, ``_fsio`` and the standard library.

A run directory holds (the names are ``wandblite.vocab``'s)::

    <root>/<run id>/
        .lock               flock()ed by the one live writer; holds "pid host" for error messages
        events-000.wlr      the run file of attempt 0 (the first process)
        events-001.wlr      the run file of attempt 1 (a resume after a requeue), ...
        files/              ``run.dir``: the user's own files
        media/              media blobs (``wandblite.media``)

A shared run (several processes writing one run: the ranks of a distributed job) gives each writer
its own stream and lock, named by its label: ``events-<label>-000.wlr``, ``events-<label>-001.wlr``,
... and ``.lock-<label>``. Writers never share a file. ``segments``, ``read_events``, ``RunLock`` and
``probe_writer`` take the stream's ``label`` (None, the default, is the single-writer stream above);
``writer_streams`` lists them all. How the streams become one run is ``wandblite.merge``.

Each attempt writes its own segment, so a resumed run never touches bytes an earlier process
wrote: a torn tail stays the normal end of that segment, and readers go on with the next one.

Durability promises of ``RunFileWriter``:

* ``append`` hands the whole framed record to the kernel in one ``os.write`` on an ``O_APPEND``
  descriptor; there is no user-space buffer, so once it returns a SIGKILL of the process cannot
  lose the record.
* ``fsync`` is called at ``close`` and, by the run's ticker thread, at most every
  ``fsync_interval`` seconds while records are being written; a power loss loses at most that much.
* A failed write (disk full, quota, file size limit, I/O error) is undone with ``ftruncate`` to the
  last whole record, so the file never holds a torn record in its middle; ``append`` returns False
  and reports the cause once through ``on_error``; later appends are tried again.
* In a forked child (a DataLoader worker) every writer is disabled and its descriptors closed, so a
  child can never write into or corrupt the parent's file nor keep its lock.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import socket
import threading
import weakref
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from wandblite import events as ev
from wandblite._fsio import write_all
from wandblite.errors import Error, RunLockedError
from wandblite.format import (
    _FRAME,
    FILE_HEADER_SIZE,
    FRAME_HEADER_SIZE,
    MAX_RECORD_SIZE,
    RECORD_MAGIC,
    Damage,
    RecordReader,
    file_header,
)
from wandblite.vocab import (
    FILES_DIR,
    parse_segment,
    writer_lock_name,
    writer_segment_name,
)

__all__ = [
    "PROJECT_NAME_PATTERN",
    "RUN_ID_PATTERN",
    "Event",
    "RunFileWriter",
    "RunLock",
    "find_runs",
    "has_segments",
    "probe_writer",
    "read_events",
    "resolve_run_dir",
    "segment_path",
    "segments",
    "validate_project_name",
    "validate_run_id",
    "writer_streams",
]

_FRAME_PACK = _FRAME.pack
_crc32 = zlib.crc32
assert RECORD_MAGIC == 0xD7 and FRAME_HEADER_SIZE == 10  # append() inlines both
#: A run id, as a regular expression valid in Python and JavaScript alike (the HTTP API's contract
#: publishes it): 1-128 letters, digits, ``_ . -``, not starting with ``.`` or ``-``, no ``..``.
RUN_ID_PATTERN = r"^(?!.*\.\.)[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$"
_RUN_ID_RE = re.compile(RUN_ID_PATTERN)


def validate_run_id(run_id: str) -> str:
    """Run ids name directories: allow letters, digits, ``_ . -`` only (no separators, no ``..``)."""
    if not isinstance(run_id, str) or not _RUN_ID_RE.fullmatch(run_id) or ".." in run_id:
        raise Error(
            f"invalid run id {run_id!r}: use 1-128 letters, digits, '_', '.' or '-', "
            "not starting with '.' or '-'"
        )
    return run_id


# W&B's rule for project names: no / \\ # ? % :, no control characters. Names are never paths.
#: The project name rule as a regular expression valid in Python and JavaScript alike.
PROJECT_NAME_PATTERN = r"^[^/\\#?%:\x00-\x1f\x7f.\-][^/\\#?%:\x00-\x1f\x7f]{0,127}$"
_PROJECT_RE = re.compile(PROJECT_NAME_PATTERN)


def validate_project_name(project: str) -> str:
    """1-128 printable characters without ``/ \\ # ? % :``, not starting with ``.`` or ``-``."""
    if not isinstance(project, str) or not _PROJECT_RE.fullmatch(project):
        raise Error(
            f"invalid project name {project!r}: use 1-128 printable characters without / \\ # ? % :, "
            "not starting with '.' or '-'"
        )
    return project


def segment_path(run_dir: str | os.PathLike[str], attempt: int, label: str | None = None) -> Path:
    """The segment of attempt ``attempt`` of stream ``label`` (None: the single-writer stream)."""
    return Path(run_dir) / writer_segment_name(label, attempt)


def writer_streams(run_dir: str | os.PathLike[str]) -> dict[str | None, list[Path]]:
    """Every stream of the run: label (None for the single-writer stream) -> its segments in
    attempt order. Labels come in sorted order, the single-writer stream first."""
    found: dict[str | None, list[tuple[int, Path]]] = {}
    try:
        names = os.listdir(run_dir)
    except OSError:
        return {}
    for name in names:
        parsed = parse_segment(name)
        if parsed is not None:
            found.setdefault(parsed[0], []).append((parsed[1], Path(run_dir) / name))
    order = sorted(found, key=lambda lab: (lab is not None, lab or ""))
    return {lab: [p for _, p in sorted(found[lab])] for lab in order}


def segments(run_dir: str | os.PathLike[str], label: str | None = None) -> list[Path]:
    """The segment files of stream ``label`` (None: the single-writer stream) in attempt order."""
    return writer_streams(run_dir).get(label, [])


def has_segments(run_dir: str | os.PathLike[str]) -> bool:
    """Whether the directory holds a segment of any stream: it is a run directory."""
    try:
        return any(parse_segment(name) is not None for name in os.listdir(run_dir))
    except OSError:
        return False


def resolve_run_dir(path: str | os.PathLike[str]) -> Path:
    """Accept a run directory, one of its segment files, or its ``files/`` folder (``run.dir``)."""
    p = Path(path)
    if p.is_file() and parse_segment(p.name) is not None:
        return p.parent
    if p.is_dir():
        if has_segments(p):
            return p
        if p.name == FILES_DIR and has_segments(p.parent):
            return p.parent
    raise FileNotFoundError(f"{path}: not a wandblite run directory (no events-NNN.wlr file in it)")


def find_runs(root: str | os.PathLike[str]) -> list[Path]:
    """Every run directory at or below ``root`` (sorted by path)."""
    root = Path(root)
    if root.is_file():
        return [resolve_run_dir(root)]
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        if any(parse_segment(f) is not None for f in filenames):
            found.append(Path(dirpath))
            dirnames[:] = []  # a run directory holds no runs
            continue
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
    found.sort()
    return found


class Event(NamedTuple):
    segment: int  # attempt number of the segment file
    offset: int  # byte offset of the record in that segment
    kind: int
    data: Any  # the decoded payload


def read_events(
    run_dir: str | os.PathLike[str],
    start: tuple[int, int] | None = None,
    reporter: Callable[[int, Damage], None] | None = None,
    positions: dict[int, int] | None = None,
    kinds: frozenset[int] | None = None,
    label: str | None = None,
) -> Iterator[Event]:
    """Stream the decoded events of every segment of stream ``label`` (None: the single-writer
    stream) in order, from ``start=(segment, offset)``.

    Damage goes to ``reporter(segment, damage)``; a record that verifies but does not decode is
    reported as damage too. Each segment's resume offset (just past its last good record) is
    stored in ``positions[segment]`` when the caller passes a dict. ``kinds`` filters by kind.
    """
    decode = ev.decode
    for path in segments(run_dir, label):
        parsed = parse_segment(path.name)
        seg = parsed[1] if parsed is not None else 0  # segments() lists only names that parse
        if start is not None and seg < start[0]:
            continue
        off = start[1] if start is not None and seg == start[0] else None

        def report(d: Damage, _seg: int = seg) -> None:
            if reporter is not None:
                reporter(_seg, d)

        reader = RecordReader(path, start=off, reporter=report, kinds=kinds, decode_kind=ev.LOG_SCALARS)
        for offset, kind, payload in reader:
            if type(payload) is list:  # decoded by the C reader
                yield Event(seg, offset, kind, payload)
                continue
            try:
                data = decode(payload)
            except Exception as exc:  # noqa: BLE001 - any undecodable payload is damage
                report(Damage(offset, len(payload) + 10, f"undecodable payload: {exc}"))
                continue
            yield Event(seg, offset, kind, data)
        if reader.tail is not None:
            report(reader.tail)
        if positions is not None:
            positions[seg] = reader.end_offset


# --------------------------------------------------------------------------- locking


class RunLock:
    """The exclusive write lock of one run directory (``flock`` on ``<run_dir>/.lock``), or of one
    writer stream of a shared run (``<run_dir>/.lock-<label>``).

    flock locks belong to the open file description: they are released when the process dies
    (even by SIGKILL), and opening and closing the run's other files never drops them. On Linux
    NFS clients flock is carried over the NFS lock protocol, so it also holds across hosts where
    the cluster's NFS supports locking; heartbeats cover the rest.

    A clean release (``remove=True``, at ``finish``) unlinks ``.lock`` while still holding it, then
    unlocks. A writer that opened the old file just before the unlink may win its flock on a file no
    longer in the directory; so ``acquire`` checks, after its flock, that the path still names the
    file it locked, and starts again when it does not. A crash leaves ``.lock`` behind, unlocked:
    readers judge it by its flock (``probe_writer``), never by its presence.
    """

    def __init__(self, run_dir: str | os.PathLike[str], label: str | None = None) -> None:
        self.path = Path(run_dir) / writer_lock_name(label)
        self.label = label
        self.fd: int | None = None

    def acquire(self) -> None:
        while True:
            fd = self._lock_once()
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False  # removed by a clean finish between our open and our flock
            except OSError:
                same = True  # cannot tell: keep the lock we hold
            if same:
                break
            os.close(fd)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} host {socket.gethostname()}\n".encode(), 0)
        except OSError:
            pass  # the note is only for error messages
        self.fd = fd
        _register_fork_close(self)

    def _lock_once(self) -> int:
        """Open (creating) ``.lock`` and take its flock; ``RunLockedError`` if a live writer holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = ""
            try:
                holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
            except OSError:
                pass
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                who = f"writer {self.label!r} of run directory" if self.label is not None else "run directory"
                advice = ("give each process its own label (settings x_label)" if self.label is not None
                          else "wait for it to finish, or use another run id")
                raise RunLockedError(
                    f"{who} {self.path.parent} is being written by another live process"
                    f"{f' ({holder})' if holder else ''}; {advice}"
                ) from None
            raise
        return fd

    def release(self, remove: bool = False) -> None:
        """Unlock; ``remove`` (a clean finish) first unlinks ``.lock``, while it is still ours."""
        fd, self.fd = self.fd, None
        if fd is not None:
            try:
                if remove:
                    try:
                        self.path.unlink()
                    except OSError:
                        pass  # a .lock left behind is judged by its flock; nothing to fix
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def _close_in_child(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            try:
                os.close(fd)  # the parent keeps its lock: the description stays open there
            except OSError:
                pass


def probe_writer(run_dir: str | os.PathLike[str], label: str | None = None) -> bool | None:
    """Is a live process holding the lock of stream ``label`` (None: the run's ``.lock``)?
    True/False, or None when it cannot be told."""
    path = Path(run_dir) / writer_lock_name(label)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return True
        return None
    finally:
        os.close(fd)  # closing drops our probe lock
    return False


# --------------------------------------------------------------------------- fork guard

_AT_FORK: weakref.WeakSet[Any] = weakref.WeakSet()


def _register_fork_close(obj: Any) -> None:
    _AT_FORK.add(obj)


def _after_fork_in_child() -> None:
    for obj in list(_AT_FORK):
        try:
            obj._close_in_child()
        except Exception:  # noqa: BLE001 - never break a fork
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# --------------------------------------------------------------------------- writer


class RunFileWriter:
    """Appends framed records to one segment file. Not thread-safe: the Run serialises calls."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        on_error: Callable[[str, str], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.on_error = on_error
        self._reported: set[str] = set()
        self.forked = False
        self.dirty = False
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self.fd: int | None = fd
        self.size = 0
        head = file_header()
        try:
            write_all(fd, head)
        except OSError:
            os.close(fd)
            raise
        self.size = FILE_HEADER_SIZE
        _register_fork_close(self)

    def append(self, kind: int, payload: bytes, _pack: Any = _FRAME_PACK, _crc: Any = _crc32) -> bool:
        """Write one record; True when it reached the kernel whole, False when it was not written."""
        n = len(payload)
        if n > MAX_RECORD_SIZE and self.fd is not None:
            self._fail("too-large", f"a record of {n} bytes exceeds the {MAX_RECORD_SIZE} byte limit; it was not written")
            return False
        return self.append_framed(_pack(0xD7, kind, n, _crc(payload, kind)) + payload)  # format.frame, inlined

    def append_framed(self, data: bytes, _write: Any = os.write) -> bool:
        """Write one already framed record (``format.frame`` or ``format.frame_log``); as ``append``."""
        fd = self.fd
        if fd is None:
            self._fail("closed", "the run file is closed (finished run, or a forked child process)")
            return False
        try:
            done = _write(fd, data)
            if done != len(data):
                write_all(fd, memoryview(data)[done:])
        except OSError as exc:
            self._undo(fd)
            self._fail(
                f"errno-{exc.errno}",
                f"cannot write to {self.path}: {exc.strerror or exc} (errno {exc.errno}); "
                "this and later records are dropped until writing works again; training goes on",
            )
            return False
        self.size += len(data)
        self.dirty = True
        return True

    def _undo(self, fd: int) -> None:
        """Cut a partially written record off, so that no torn record sits mid-file."""
        try:
            os.ftruncate(fd, self.size)
        except OSError:
            pass

    def _fail(self, cause: str, message: str) -> None:
        if cause in self._reported:
            return
        self._reported.add(cause)
        if self.on_error is not None:
            self.on_error(cause, message)

    def fsync(self) -> None:
        fd = self.fd
        if fd is None or not self.dirty:
            return
        self.dirty = False
        try:
            os.fsync(fd)
        except OSError as exc:
            self._fail(f"fsync-{exc.errno}", f"fsync of {self.path} failed: {exc}")

    def close(self) -> None:
        self.fsync()
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)
            try:  # make the file's directory entry durable too
                dfd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
            except OSError:
                pass

    def _close_in_child(self) -> None:
        self.forked = True
        fd, self.fd = self.fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


class Ticker:
    """One daemon thread per run: fsync every ``fsync_interval`` s and a heartbeat every ``heartbeat`` s.

    ``beat`` is called with no arguments and must append a heartbeat record under the run's lock.
    """

    def __init__(self, fsync: Callable[[], None], beat: Callable[[], None], fsync_interval: float, heartbeat: float) -> None:
        self._fsync = fsync
        self._beat = beat
        self.fsync_interval = fsync_interval
        self.heartbeat = heartbeat
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="wandblite-ticker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        import time

        next_sync = time.monotonic() + self.fsync_interval
        next_beat = time.monotonic() + self.heartbeat
        while True:
            wait = max(0.0, min(next_sync, next_beat) - time.monotonic())
            if self._stop.wait(wait):
                return
            now = time.monotonic()
            try:
                if now >= next_beat:
                    next_beat = now + self.heartbeat
                    self._beat()
                if now >= next_sync:
                    next_sync = now + self.fsync_interval
                    self._fsync()
            except Exception:  # noqa: BLE001 - the ticker must never die or raise into training
                pass
