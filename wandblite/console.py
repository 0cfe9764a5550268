"""Console capture: record what the process writes to stdout and stderr; the terminal sees it unchanged.

``ConsoleCapture(sink, mode, cap_bytes)`` hands every captured piece of text to ``sink(ts, stream,
text)`` -- the core's function that appends one console record to the run file -- where ``ts`` is
``time.time()`` when the text is recorded (inside the write call in wrap mode; when the reader
thread receives it in redirect mode), ``stream`` is ``"stdout"`` or ``"stderr"`` and ``text`` is a
``str``. The sink is called with the capture's lock held, from whichever thread wrote (wrap), from
a reader thread (redirect) or from the flusher thread (partial lines); it must therefore not wait on a lock whose holder may print --
the core must not write to stdout/stderr (``print``, ``warnings``) while holding the lock its sink
takes, or the two could deadlock.

What it promises
----------------
- **Terminal unchanged.** Every byte written still reaches the original stream or file descriptor,
  in the same order. ``"wrap"`` keeps Python's own buffering of the original stream (a proxy object
  only passes calls through); ``"redirect"`` turns on line buffering of ``sys.stdout`` for the
  duration so Python-level lines reach fd 1 (and so the capture) as they are printed.
- **Records.** A record normally ends at a line boundary: complete lines are emitted in one record
  per write call (wrap) or per pipe read (redirect). A partial line (no newline yet) is held in
  memory and emitted when its line completes, when it grows past 64 KiB, at ``stop()``, and -- so
  a crash does not lose the last thing printed -- as a *provisional* record once it has been held
  0.5 s (a flusher thread looks every 0.25 s: a partial line is in the run file 0.5-0.75 s after
  it was written). A line that keeps changing without a newline (a progress bar) is recorded again
  only after twice the previous wait, up to 8 s: 0.5, 1, 2, 4, 8, 8... s, about 450 records for an
  hour-long bar, however often it redraws.
- **Joining.** A record that does not end with a newline leaves its stream's line *open*; the next
  record of that stream continues the line: its text is appended, or, if it starts with ``"\\r"``,
  it replaces the open line (the line was overwritten since, e.g. a bar moved on). No record holds
  a ``"\\r"`` anywhere else, and old files never start a record with one, so the rule reads them
  as before. Concatenating a stream's records gives the text a terminal would show (the ``"\\r"``
  moves the cursor back), and ``join_records`` gives each line once, whole: what ``replay``'s
  ``output()`` and ``console_tail``, ``wandblite logs`` and ``show`` present. The payload of a
  CONSOLE record is unchanged (``[ts, stream, text]``).
- **Crash safety.** Complete lines are handed to the sink synchronously, *before* the same text is
  passed on to the terminal, so anything a terminal or log file shows as a complete line has already
  been given to the sink (which writes through to the kernel). A SIGKILL loses only: a partial line
  (or the latest state of a redrawn one) written in the last 0.75 s (1 s for Python-level text in
  ``"redirect"`` mode, which reaches the fd at the flusher's next tick), or in the last wait of a
  bar redrawn for a while (up to about 8.5 s); in ``"redirect"`` mode, also bytes still sitting in
  the pipe that the reader thread had not yet read (at most one pipe buffer, 64 KiB on Linux, and
  normally nothing: the reader is woken by every write). In redirect mode the flusher also flushes
  ``sys.stdout``/``sys.stderr`` every tick, so a ``print(..., end="")`` reaches the capture too.
- **Carriage returns** (tqdm bars): a line holding ``\\r`` overwrites is recorded once, as the text
  after its last ``\\r`` (a ``\\r`` right before the newline, as in ``\\r\\n``, is ignored), when the
  line completes or is flushed. The held partial line is trimmed at every ``\\r`` so memory stays
  O(1), and a bar updated 10,000 times yields one record per completed line plus the provisional
  records above. This is the "final state" only approximately: ``"abcdef\\rxy\\n"`` shows ``xydef``
  on a terminal and is recorded as ``xy`` (tqdm pads its updates, so for it the two agree). ANSI
  escape sequences (colours, tqdm's cursor-up ``\\x1b[A`` for nested bars) are recorded as they
  are, not interpreted.
- **Cap.** After ``cap_bytes`` of recorded UTF-8 text (both streams together) one last record ends
  with ``[wandblite: console output truncated after N bytes; further output is not recorded]`` and
  nothing more is recorded; the terminal still gets everything.
- **Errors never reach the user's print.** A sink exception (``OSError`` on a full disk, or any
  other) is caught; the first one is reported once on the real stderr and capture goes on.
- **Order.** Records of one stream are in the order written. Across the two streams, wrap mode
  keeps the order of the write calls; redirect mode has one pipe and reader per fd, so a stdout
  line and a stderr line written a moment apart may be recorded in either order (timestamps are
  taken when recorded and never go backwards from one record to the next).
- **Threads.** Any number of threads may write; one lock per capture serialises the bookkeeping, so
  a record never holds half of one write and half of another. A write made while that same thread is
  already inside the capture (a signal handler that prints, or the sink itself printing a warning)
  passes through to the terminal and is not recorded, instead of deadlocking.
- **Fork.** In a child made by ``os.fork()`` the capture never calls the sink (the parent owns the
  run file): writes just pass through. In ``"redirect"`` mode the child's fds 1/2 are still the
  parent's pipes (or ptys), so the parent records what the child writes, like any subprocess's
  output. The flusher thread does not exist in the child; ``os.fork()`` waits for it to finish a
  stream flush it is in the middle of, so the child never inherits a stream's lock held.

Modes: ``"wrap"`` (default) replaces ``sys.stdout``/``sys.stderr`` with proxies -- cheap, but sees
only Python-level writes (not ``sys.stdout.buffer.write`` nor native code writing to fd 1).
``"redirect"`` captures at the file-descriptor level (C extensions, CUDA/NCCL, subprocesses
inheriting the fds). While it runs, an fd that was a terminal becomes a pseudo-terminal (so
``isatty()`` stays true and tqdm, colour detection and ``os.get_terminal_size`` behave as on the
terminal): it gets the terminal's attributes and window size, with output post-processing (OPOST,
``"\\n"`` -> ``"\\r\\n"``) off so the records hold exactly the bytes written; the real terminal
still does its own. A resize of the terminal is copied to the pty within 0.5 s of the next output
(no SIGWINCH handler is installed). Full-screen programs that change fd 1's terminal modes change
the pty's, not the terminal's. An fd that was not a terminal (a log file, a pipe: the batch-job
case) becomes a pipe. ``"off"`` does nothing.

Cost: in wrap mode about 2 us per ``print()`` on top of the print itself and the sink
(``tests/console/bench_console.py``): one lock round trip per write call and one sink call per
completed line. The flusher thread wakes 4 times a second and takes the lock once per wake.

Imports: stdlib and ``wandblite._fsio`` only (layer 3 of STYLE.md; the core owns the sink and the run file).
"""

from __future__ import annotations

import atexit
import codecs
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

from wandblite._fsio import write_all

__all__ = ["MODES", "TRUNCATION_MARKER", "ConsoleCapture", "ConsoleSink", "join_records"]

ConsoleSink = Callable[[float, str, str], None]
MODES = ("wrap", "redirect", "off")
TRUNCATION_MARKER = "[wandblite: console output truncated after {n} bytes; further output is not recorded]"

# A partial line longer than this is emitted anyway, so a program that never prints a newline
# (or prints a huge one) cannot make the capture hold unbounded memory.
_MAX_PENDING_CHARS = 64 * 1024
# A partial line held this long (seconds) is recorded anyway, as a provisional record, so that the
# last thing printed before a SIGKILL is in the run file. The flusher looks every _PARTIAL_TICK_S,
# so a partial line is recorded between _PARTIAL_DELAY_S and _PARTIAL_DELAY_S + _PARTIAL_TICK_S
# after it was written. Each further provisional record of the same line waits twice as long as
# the one before, up to _PARTIAL_MAX_DELAY_S (a progress bar costs one record per 8 s, not one per
# update).
_PARTIAL_DELAY_S = 0.5
_PARTIAL_TICK_S = 0.25
_PARTIAL_MAX_DELAY_S = 8.0
# Biggest single read from a redirect pipe: one Linux pipe buffer.
_READ_SIZE = 64 * 1024
# How long stop() waits for a redirect reader to drain its pipe. Only a background process that
# still holds the pipe open (it inherited fd 1) keeps a reader alive longer; it is then left to
# pass output through, unrecorded, until that process closes the pipe.
_JOIN_TIMEOUT_S = 2.0

# The pid of this process, refreshed in a forked child by an at-fork hook, so the per-write fork
# check is a global read rather than a getpid() system call.
_current_pid = os.getpid()


_get_ident = threading.get_ident


def _after_fork_in_child() -> None:
    global _current_pid
    _current_pid = os.getpid()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _collapse_line(line: str) -> str:
    """The text after the last carriage return of one line (no newline in ``line``)."""
    body = line.rstrip("\r")
    cut = body.rfind("\r")
    return body[cut + 1 :] if cut >= 0 else body


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "replace"))


class _LineBuffer:
    """The partial line of one stream: text written since its last newline, not yet recorded.

    ``open`` is true while part of the current line is already recorded (a provisional record, or
    one cut at ``_MAX_PENDING_CHARS``): the next record of the stream continues that line, and starts
    with ``"\\r"`` if the text since then overwrote it. ``lines`` counts recorded pieces, so the
    flusher can tell a partial line that sat still from one that completed and was replaced.
    """

    __slots__ = ("lines", "name", "open", "partials", "parts", "seen_lines", "seen_since", "size")

    def __init__(self, name: str) -> None:
        self.name = name
        self.parts: list[str] = []
        self.size = 0
        self.open = False
        self.lines = 0
        self.partials = 0  # provisional records of the current line so far (their spacing doubles)
        # The flusher's bookkeeping: ``lines`` when it first saw the current partial, and when.
        self.seen_lines = -1
        self.seen_since = 0.0

    def push(self, text: str) -> str:
        """Add ``text``; return what is ready to record now (complete lines), maybe ``""``."""
        newline = text.rfind("\n")
        if newline < 0:
            self.parts.append(text)
            self.size += len(text)
            if "\r" in text:
                self._trim_overwritten()
            if self.size > _MAX_PENDING_CHARS:
                return self.take()
            return ""
        ready = text[: newline + 1]
        rest = text[newline + 1 :]
        if self.parts:
            ready = "".join(self.parts) + ready
            self.parts.clear()
            self.size = 0
        if "\r" in ready:
            ready = self._collapse_lines(ready)
        self.open = False
        self.partials = 0
        self.lines += 1
        if rest:
            self.parts.append(rest)
            self.size = len(rest)
            if "\r" in rest:
                self._trim_overwritten()
        return ready

    def _collapse_lines(self, text: str) -> str:
        """Collapse every line of ``text`` (which ends with a newline) to its final state."""
        lines = text.split("\n")
        out = [_collapse_line(line) if "\r" in line else line for line in lines]
        if self.open and "\r" in lines[0].rstrip("\r"):
            out[0] = "\r" + out[0]  # the recorded start of this line was overwritten
        return "\n".join(out)

    def _trim_overwritten(self) -> None:
        # Drop what a later carriage return has overwritten, keeping that "\r" (it says the line
        # was overwritten) and trailing "\r"s: they may be the first half of a "\r\n" and must not
        # erase the text before them.
        held = "".join(self.parts)
        cut = held.rstrip("\r").rfind("\r")
        if cut > 0:
            held = held[cut:]
        self.parts = [held] if held else []
        self.size = len(held)

    def take(self, final: bool = False) -> str:
        """The held partial line, collapsed, as the next record of an open line; forget it.

        Trailing carriage returns stay held (unless ``final``): the next write decides whether they
        end the line (``"\\r\\n"``) or start an overwrite of it.
        """
        if not self.parts:
            return ""
        held = "".join(self.parts)
        body = held.rstrip("\r")
        keep = "\r" if len(body) < len(held) and not final else ""
        self.parts = [keep] if keep else []
        self.size = len(keep)
        if not body:
            return ""
        cut = body.rfind("\r")
        text = body[cut + 1 :] if cut >= 0 else body
        if cut >= 0 and self.open:
            text = "\r" + text
        self.open = True
        self.lines += 1
        return text


class _Recorder:
    """What both streams share: the sink, the lock, the byte count toward the cap, warnings."""

    def __init__(self, sink: ConsoleSink, cap_bytes: int, warn: Callable[[str], None]) -> None:
        self.sink = sink
        self.cap_bytes = cap_bytes
        self.warn = warn
        self.recorded_bytes = 0
        self.truncated = False
        self.recording = True  # started, not stopped, not truncated: the one flag the hot path reads
        self.owner_pid = _current_pid
        self.lock = threading.Lock()
        # Ident of the thread inside the critical section, so that thread re-entering (signal
        # handler, sink printing) is recognised and passed through instead of deadlocking.
        self._holder: int | None = None
        self._warned = False

    def feed(self, buf: _LineBuffer, text: str) -> None:
        if not self.recording or _current_pid != self.owner_pid:
            return
        me = _get_ident()
        if self._holder == me:
            return
        with self.lock:
            self._holder = me
            try:
                # The common case, the text half of a print(): hold it, no stamp, no record.
                if "\n" not in text and "\r" not in text and buf.size + len(text) <= _MAX_PENDING_CHARS:
                    buf.parts.append(text)
                    buf.size += len(text)
                    return
                # Stamped under the lock, so records reach the sink in time order across threads.
                ts = time.time()
                ready = buf.push(text)
                if ready:
                    self._emit(ts, buf.name, ready)
            finally:
                self._holder = None

    def flush(self, bufs: list[_LineBuffer]) -> None:
        """Record the held partial lines (at stop)."""
        if _current_pid != self.owner_pid:
            return
        me = threading.get_ident()
        if self._holder == me:
            return
        with self.lock:
            ts = time.time()
            self._holder = me
            try:
                for buf in bufs:
                    held = buf.take(final=True)
                    if held and self.recording:
                        self._emit(ts, buf.name, held)
            finally:
                self._holder = None

    def flush_stale(self, bufs: list[_LineBuffer], now: float) -> None:
        """Record a partial line that has waited its turn (called by the flusher thread).

        A partial line is first seen by one tick and recorded by a later one once it has been held
        for ``_PARTIAL_DELAY_S``; further provisional records of the same line (a progress bar
        that keeps moving without a newline) wait twice as long each time, up to
        ``_PARTIAL_MAX_DELAY_S``.
        """
        if not self.recording or _current_pid != self.owner_pid:
            return
        me = _get_ident()
        if self._holder == me:
            return
        with self.lock:
            self._holder = me
            try:
                for buf in bufs:
                    if not buf.parts:
                        continue
                    if buf.seen_lines != buf.lines:
                        buf.seen_lines, buf.seen_since = buf.lines, now
                        continue
                    delay = min(_PARTIAL_DELAY_S * (1 << min(buf.partials, 16)), _PARTIAL_MAX_DELAY_S)
                    if now - buf.seen_since < delay:
                        continue
                    text = buf.take()
                    if text and self.recording:
                        buf.partials += 1
                        self._emit(time.time(), buf.name, text)
            finally:
                self._holder = None

    def _emit(self, ts: float, stream: str, text: str) -> None:
        size = _utf8_len(text)
        if self.recorded_bytes + size <= self.cap_bytes:
            if self._call_sink(ts, stream, text):
                self.recorded_bytes += size
            return
        # This record crosses the cap: keep what fits, end it with the marker, record no more.
        room = max(0, self.cap_bytes - self.recorded_bytes)
        head = text.encode("utf-8", "replace")[:room].decode("utf-8", "ignore")
        self.recorded_bytes += _utf8_len(head)
        marker = TRUNCATION_MARKER.format(n=self.recorded_bytes) + "\n"
        if head and not head.endswith("\n"):
            marker = "\n" + marker
        self.truncated = True
        self.recording = False
        self._call_sink(ts, stream, head + marker)

    def _call_sink(self, ts: float, stream: str, text: str) -> bool:
        try:
            self.sink(ts, stream, text)
            return True
        except Exception as exc:  # noqa: BLE001 - a logging failure must never break printing
            if not self._warned:
                self._warned = True
                self.warn(
                    f"wandblite: console capture could not record output ({type(exc).__name__}: {exc}); "
                    "the program goes on and the terminal still shows everything, but console records "
                    "may be missing from the run file. This warning is shown once.\n"
                )
            return False


class _StreamProxy:
    """Stands in for ``sys.stdout``/``sys.stderr`` in wrap mode.

    Every call goes to the original stream; ``write`` also records the text first. It is a plain
    object, not an ``io.TextIOBase`` subclass, so nothing of the base class shadows the delegation
    (``isatty``, ``fileno``, ``encoding``... are the original's).
    """

    def __init__(self, original: TextIO, buf: _LineBuffer, recorder: _Recorder) -> None:
        self._wl_original = original
        self._wl_buf = buf
        self._wl_feed = recorder.feed
        self._wl_live = True

    def write(self, text: str) -> int:
        if self._wl_live and type(text) is str:
            try:
                self._wl_feed(self._wl_buf, text)
            except Exception:  # noqa: BLE001, S110 - capture must never break the user's print
                pass
        return self._wl_original.write(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._wl_original.flush()

    def fileno(self) -> int:
        return self._wl_original.fileno()

    def isatty(self) -> bool:
        return self._wl_original.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wl_original, name)

    def __repr__(self) -> str:
        return f"<wandblite console proxy of {self._wl_original!r}>"


class _Flusher:
    """One thread per capture that records partial lines left waiting (``_Recorder.flush_stale``).

    In redirect mode it also flushes Python's ``sys.stdout``/``sys.stderr`` each tick, so that a
    ``print(..., end="")`` (which line buffering keeps in Python's buffer) reaches the fd, and so
    the capture, too. That flush holds ``_FORK_GUARD``, which ``os.fork()`` takes first, so a child
    is never forked while this thread holds a stream's buffer lock (the child would deadlock on its
    first print).
    """

    def __init__(self, recorder: _Recorder, bufs: list[_LineBuffer], flush_streams: bool) -> None:
        self.recorder = recorder
        self.bufs = bufs
        self.flush_streams = flush_streams
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="wandblite-console-flush", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.wait(_PARTIAL_TICK_S):
            if self.flush_streams:
                with _FORK_GUARD:
                    _flush_python_streams()
            try:
                self.recorder.flush_stale(self.bufs, time.monotonic())
            except Exception:  # noqa: BLE001, S110 - the sink reports its own errors; keep ticking
                pass

    def stop(self) -> None:
        self.stopping.set()
        # Bounded: stop() may run in a signal handler that interrupted a thread holding the lock
        # the sink takes, while this thread waits for it inside the sink; the tick then ends later
        # (and the core's sink drops records that arrive after the run finished).
        if self.thread is not threading.current_thread():
            self.thread.join(_JOIN_TIMEOUT_S)


_FORK_GUARD = threading.Lock()
os.register_at_fork(
    before=_FORK_GUARD.acquire, after_in_parent=_FORK_GUARD.release, after_in_child=_FORK_GUARD.release
)


class _FdPump:
    """Redirect mode for one fd: a pipe (or a pseudo-terminal, if the fd was a terminal) in its
    place and a thread copying what arrives to the original."""

    def __init__(self, fd: int, buf: _LineBuffer, recorder: _Recorder) -> None:
        self.fd = fd
        self.buf = buf
        self.recorder = recorder
        self.recording = True
        self.saved = os.dup(fd)  # the original (terminal, log file); non-inheritable per PEP 446
        self.tty = False
        try:
            if os.isatty(self.saved):
                try:
                    read_end, write_end = _open_pty(self.saved)
                    self.tty = True
                except OSError:
                    pass  # no ptys here (some containers): a pipe, and isatty() is false meanwhile
            if not self.tty:
                read_end, write_end = os.pipe()
        except OSError:
            os.close(self.saved)
            raise
        try:
            os.dup2(write_end, fd)  # fd stays inheritable, so subprocesses write into the pipe
        except OSError:
            os.close(read_end)
            os.close(self.saved)
            raise
        finally:
            os.close(write_end)
        self.read_end = read_end
        self.thread = threading.Thread(target=self._run, name=f"wandblite-console-fd{fd}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        terminal_ok = True
        winsize_checked = time.monotonic()
        while True:
            try:
                data = os.read(self.read_end, _READ_SIZE)
            except OSError:
                break  # a pty's master reads EIO once every slave fd is closed
            if not data:
                break  # every writer closed the pipe: stop() restored the fd
            if self.recording:
                # Record before passing on: what the terminal shows is already in the run file.
                text = decoder.decode(data)
                if text:
                    self.recorder.feed(self.buf, text)
            if terminal_ok:
                terminal_ok = _write_all(self.saved, data)
            if self.tty and time.monotonic() - winsize_checked > _WINSIZE_CHECK_S:
                # The user resized the terminal: let the next ioctl(TIOCGWINSZ) on fd 1 see it.
                winsize_checked = time.monotonic()
                _copy_winsize(self.saved, self.read_end)
        tail = decoder.decode(b"", final=True)
        if tail and self.recording:
            self.recorder.feed(self.buf, tail)
        # This thread owns both fds: if stop() gave up waiting, they are still in use until here.
        os.close(self.read_end)
        os.close(self.saved)

    def restore(self) -> None:
        """Put the original back on the fd; closes this process's write end of the pipe."""
        os.dup2(self.saved, self.fd)


# How often (at most) a pty pump copies the real terminal's window size onto its pty.
_WINSIZE_CHECK_S = 0.5


def _open_pty(terminal: int) -> tuple[int, int]:
    """A pseudo-terminal standing in for ``terminal``: ``(master, slave)``.

    The slave gets the terminal's attributes and window size, with output post-processing (OPOST:
    ``"\\n"`` -> ``"\\r\\n"``, tab expansion) turned off, so the master reads exactly the bytes the
    program wrote; the real terminal does its own post-processing when they are passed on.
    """
    import termios  # Unix only, and only needed here

    master, slave = os.openpty()
    try:
        try:
            attrs = termios.tcgetattr(terminal)
        except termios.error:
            attrs = termios.tcgetattr(slave)
        attrs[1] &= ~termios.OPOST
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        _copy_winsize(terminal, master)
    except (OSError, termios.error) as exc:
        os.close(master)
        os.close(slave)
        raise OSError(f"cannot set up a pseudo-terminal: {exc}") from exc
    return master, slave


def _copy_winsize(src: int, dst: int) -> None:
    import fcntl
    import termios

    try:
        size = fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8)
        if fcntl.ioctl(dst, termios.TIOCGWINSZ, b"\0" * 8) != size:
            fcntl.ioctl(dst, termios.TIOCSWINSZ, size)
    except OSError:
        pass  # not a terminal after all, or it went away: the size is a nicety


def _write_all(fd: int, data: bytes) -> bool:
    """Write all of ``data``; False if the fd is gone (keep draining the pipe, stop forwarding)."""
    try:
        write_all(fd, data)
    except OSError:
        return False
    return True


class ConsoleCapture:
    """Capture stdout and stderr into ``sink`` while the terminal keeps seeing them unchanged.

    ``start()`` and ``stop()`` are idempotent; ``stop()`` records held partial lines and restores
    ``sys.stdout``/``sys.stderr`` or fds 1/2 exactly. A started capture also stops itself at
    interpreter exit (before the core's own atexit hook, if the core registered it first), so that
    redirected output is not stranded in a pipe; the core should still call ``stop()`` itself
    before writing its exit record.
    """

    def __init__(self, sink: ConsoleSink, mode: str = "wrap", cap_bytes: int = 64 * 1024 * 1024) -> None:
        if mode not in MODES:
            raise ValueError(f"console mode must be one of {', '.join(map(repr, MODES))}, not {mode!r}")
        if cap_bytes < 0:
            raise ValueError(f"cap_bytes must be >= 0, not {cap_bytes}")
        self.sink = sink
        self.mode = mode
        self.cap_bytes = cap_bytes
        self._started = False
        self._recorder: _Recorder | None = None
        self._bufs: list[_LineBuffer] = []
        # wrap mode
        self._originals: dict[str, TextIO | None] = {}
        self._proxies: dict[str, _StreamProxy] = {}
        # redirect mode
        self._pumps: list[_FdPump] = []
        self._line_buffering_before: bool | None = None
        self._warn_fd = 2
        self._flusher: _Flusher | None = None

    @property
    def started(self) -> bool:
        return self._started

    @property
    def recorded_bytes(self) -> int:
        """UTF-8 bytes handed to the sink so far (toward ``cap_bytes``)."""
        return self._recorder.recorded_bytes if self._recorder else 0

    @property
    def truncated(self) -> bool:
        return bool(self._recorder and self._recorder.truncated)

    def start(self) -> None:
        if self._started or self.mode == "off":
            return
        out, err = _LineBuffer("stdout"), _LineBuffer("stderr")
        self._bufs = [out, err]
        if self.mode == "wrap":
            self._recorder = _Recorder(self.sink, self.cap_bytes, self._warn_wrap)
            self._start_wrap(out, err)
        else:
            self._recorder = _Recorder(self.sink, self.cap_bytes, self._warn_fd_write)
            self._start_redirect(out, err)
        self._flusher = _Flusher(self._recorder, self._bufs, flush_streams=self.mode == "redirect")
        self._started = True
        atexit.register(self.stop)

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        atexit.unregister(self.stop)
        recorder = self._recorder
        assert recorder is not None
        if self._flusher is not None:
            if _current_pid == recorder.owner_pid:
                self._flusher.stop()
            self._flusher = None
        if _current_pid != recorder.owner_pid:
            # A forked child: the parent owns the run file and the pipes; just stop recording here.
            recorder.recording = False
            for proxy in self._proxies.values():
                proxy._wl_live = False
            return
        if self.mode == "wrap":
            self._stop_wrap()
        else:
            self._stop_redirect()
        recorder.flush(self._bufs)
        recorder.recording = False

    # -- wrap ---------------------------------------------------------------------------------

    def _start_wrap(self, out: _LineBuffer, err: _LineBuffer) -> None:
        assert self._recorder is not None
        self._originals = {"stdout": sys.stdout, "stderr": sys.stderr}
        self._proxies = {}
        if sys.stdout is not None:
            self._proxies["stdout"] = _StreamProxy(sys.stdout, out, self._recorder)
            sys.stdout = self._proxies["stdout"]  # type: ignore[assignment]
        if sys.stderr is not None:
            self._proxies["stderr"] = _StreamProxy(sys.stderr, err, self._recorder)
            sys.stderr = self._proxies["stderr"]  # type: ignore[assignment]

    def _stop_wrap(self) -> None:
        for name, proxy in self._proxies.items():
            proxy._wl_live = False
            # Put the original back only if our proxy is still in place; if something replaced it
            # meanwhile (and may hold a reference to us), leave that alone: a dead proxy passes through.
            if getattr(sys, name) is proxy:
                setattr(sys, name, self._originals[name])
        self._proxies = {}

    def _warn_wrap(self, message: str) -> None:
        stream = self._originals.get("stderr") or sys.__stderr__
        try:
            if stream is not None:
                stream.write(message)
                stream.flush()
        except Exception:  # noqa: BLE001, S110 - nowhere left to report to
            pass

    # -- redirect -----------------------------------------------------------------------------

    def _start_redirect(self, out: _LineBuffer, err: _LineBuffer) -> None:
        assert self._recorder is not None
        _flush_python_streams()
        # Python-level prints must reach fd 1 line by line, or they would sit in sys.stdout's
        # buffer (block-buffered when the original fd was not a terminal) unseen by the capture
        # and lost on a SIGKILL.
        stdout: Any = sys.stdout
        if stdout is not None and hasattr(stdout, "reconfigure") and hasattr(stdout, "line_buffering"):
            try:
                self._line_buffering_before = bool(stdout.line_buffering)
                if not self._line_buffering_before:
                    stdout.reconfigure(line_buffering=True)
            except Exception:  # noqa: BLE001 - a wrapped or exotic stream: flushing at stop still works
                self._line_buffering_before = None
        self._pumps = []
        for fd, buf in ((1, out), (2, err)):
            try:
                self._pumps.append(_FdPump(fd, buf, self._recorder))
            except OSError as exc:
                # E.g. the fd is closed (a daemon); that stream is simply not captured.
                self._warn_fd_write(
                    f"wandblite: cannot capture fd {fd} ({exc}); its output is not recorded.\n"
                )
        self._warn_fd = next((p.saved for p in self._pumps if p.fd == 2), 2)

    def _stop_redirect(self) -> None:
        _flush_python_streams()
        for pump in self._pumps:
            try:
                pump.restore()
            except OSError:
                pass
        for pump in self._pumps:
            pump.thread.join(_JOIN_TIMEOUT_S)
            if pump.thread.is_alive():
                pump.recording = False
        stdout: Any = sys.stdout
        if self._line_buffering_before is False and stdout is not None:
            try:
                stdout.reconfigure(line_buffering=False)
            except Exception:  # noqa: BLE001, S110 - leaving it line-buffered is harmless
                pass
        self._line_buffering_before = None
        self._pumps = []
        self._warn_fd = 2

    def _warn_fd_write(self, message: str) -> None:
        # Straight to the saved original stderr: writing to fd 2 would go round through our pipe.
        _write_all(self._warn_fd, message.encode("utf-8", "replace"))


def _flush_python_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # noqa: BLE001, S110 - a closed stream has nothing to flush
            pass


def join_records(records: Iterable[tuple[float, str, str]]) -> Iterator[tuple[float, str, str]]:
    """Console records ``(ts, stream, text)`` with each line whole: the read side of the records.

    A record that does not end with a newline leaves its stream's line open; the next record of the
    same stream continues it: appended to it, or replacing it if that record starts with ``"\\r"``.
    Here an open line is held back and comes out joined with its continuation, at the position and
    with the timestamp of the record that completes it, so a line recorded early (before a crash
    could lose it) and completed later appears once. Lines still open at the end come out last.
    Every text yielded ends with a newline, except those last ones. Old files (no record starts
    with ``"\\r"``) read the same as by concatenation.
    """
    held: dict[str, tuple[float, str]] = {}
    for ts, stream, text in records:
        if text.startswith("\r"):
            held.pop(stream, None)
            text = text[1:]
        else:
            before = held.pop(stream, None)
            if before is not None:
                text = before[1] + text
        if text.endswith("\n"):
            yield ts, stream, text
            continue
        newline = text.rfind("\n")
        if newline >= 0:
            yield ts, stream, text[: newline + 1]
            text = text[newline + 1 :]
        if text:
            held[stream] = (ts, text)
    yield from sorted(((ts, stream, text) for stream, (ts, text) in held.items()), key=lambda r: r[0])
