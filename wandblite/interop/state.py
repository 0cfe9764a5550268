"""What was sent to an interop target, per run: the memory behind exactly-once re-runs.

Layer 5. Stdlib and ``wandblite.vocab`` (the home directory); ``wandblite.replay`` for the segment
sizes of ``run_digest``.

One JSON file per target under ``$WANDBLITE_HOME/interop/`` (``~/.wandblite/interop/``), named
``<kind>-<sha256(target identity)[:16]>.json``; the identity is e.g. the MLflow tracking URI plus
the experiment, or the W&B base URL plus entity/project. The file maps a key
``"<absolute run dir>#<run id>"`` to a record::

    {"run_id", "remote_id", "rows": history rows sent, "console": console chunks sent,
     "media": media files sent, "state": the run's state when last synced,
     "digest": sizes of the run's segment files then, "done": true once a final state was sent}

plus, for a shared run sent to W&B, ``"last_step"`` (the last step sent), ``"pending_steps"``
(steps held back) and ``"system"`` (writer label -> system samples sent).

Promises:

* ``SyncState.update`` rewrites the file atomically (a temporary file in the same directory,
  fsync, rename), under an ``flock`` on ``<file>.lock`` taken for the read-modify-write, so two
  concurrent syncs to the same target never lose each other's records and a crash leaves either
  the old or the new file, never a torn one.
* A record is written only after the target accepted what it describes (the caller updates the
  state after each acknowledged batch), so a crash between sending and recording re-sends at most
  one batch; the targets below make that re-send harmless or skip it.
* An unreadable state file is treated as empty (everything is sent again) and reported once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wandblite.vocab import home_dir

__all__ = ["SyncState", "interop_home", "run_digest", "run_key"]


def interop_home() -> Path:
    """``$WANDBLITE_HOME/interop`` (``~/.wandblite/interop``)."""
    return home_dir() / "interop"


def run_key(run_dir: str | os.PathLike[str], run_id: str) -> str:
    return f"{Path(run_dir).resolve()}#{run_id}"


def run_digest(run_dir: str | os.PathLike[str]) -> dict[str, int]:
    """Segment file name -> size: changes whenever the run's writer appends anything."""
    from wandblite.replay import segment_sizes

    return segment_sizes(run_dir)


class SyncState:
    """The state file of one target (``kind`` names the tracker, ``identity`` the destination)."""

    def __init__(self, kind: str, identity: str, home: str | os.PathLike[str] | None = None) -> None:
        self.kind = kind
        self.identity = identity
        digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]
        self.dir = Path(home) if home is not None else interop_home()
        self.path = self.dir / f"{kind}-{digest}.json"
        self.warnings: list[str] = []

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return {"kind": self.kind, "target": self.identity, "runs": {}}
        except (OSError, ValueError) as exc:
            self.warnings.append(f"state file {self.path} is unreadable ({exc}); sending everything again")
            return {"kind": self.kind, "target": self.identity, "runs": {}}
        if not isinstance(data, dict) or not isinstance(data.get("runs"), dict):
            return {"kind": self.kind, "target": self.identity, "runs": {}}
        return data

    def get(self, key: str) -> dict[str, Any]:
        """The record of ``key`` (a copy; empty if the run was never synced here)."""
        return dict(self._read()["runs"].get(key) or {})

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(str(self.path) + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def update(self, key: str, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into ``key``'s record and write the file atomically; returns the record."""
        with self._locked():
            data = self._read()
            rec = dict(data["runs"].get(key) or {})
            rec.update(fields)
            data["runs"][key] = rec
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=self.dir)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(data, f, indent=1, sort_keys=True, default=str)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        return rec

    def forget(self, key: str) -> None:
        """Drop ``key``'s record (the next sync sends the run from the start)."""
        with self._locked():
            data = self._read()
            if data["runs"].pop(key, None) is not None:
                tmp = self.path.with_name(f".tmp-{os.getpid()}-{self.path.name}")
                tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str), "utf-8")
                os.replace(tmp, self.path)
