"""The one exception tree of wandblite: every error the library raises derives from ``Error``.

::

    Exception
     └── Error                        wandblite.errors: wandb.Error; lifecycle misuse (log before
          │                           init, bad define_metric) and the root of every branch below
          ├── UsageError              errors: a finished run was used (wandb.errors.UsageError)
          │    └── UnsupportedError   errors: wandb.errors.UnsupportedError, a feature not offered
          ├── CommError               errors: wandb.errors.CommError (talking to a server failed);
          │    │                      wandblite itself never needs a server while training
          │    └── AuthenticationError  errors: wandb.errors.AuthenticationError
          ├── WandbCoreNotAvailableError  errors: wandb's name, kept so `except` clauses import
          ├── ConfigError             errors: a config key was changed without allow_val_change
          ├── ResumeError             errors: init(resume=...) could not be honoured
          ├── RunLockedError          errors: another live process writes this run
          ├── FormatError             errors: a file is not a wandblite run file (bad header / version)
          ├── DataError               errors: bad data passed to log/config/summary; also a ValueError
          │                           *and* a TypeError, because wandb 0.18 raised ValueError and
          │                           wandb 0.31 raises TypeError for the same mistakes
          ├── MediaCorruptionError    wandblite.media: stored media bytes fail their sha256 or frame check
          ├── MediaNotFoundError      wandblite.media: no stored bytes for a media reference; also a
          │                           FileNotFoundError
          ├── ArtifactNotFoundError   wandblite.artifacts: use_artifact found no such name and alias
          ├── SyncError               wandblite.sync.transport: `wandblite sync` could not upload a run
          │    ├── GapError           the store's position is not where the batch starts (409);
          │    │                      carries the position, the run is read again from it
          │    ├── RejectedError      the store refused a request for good (any other 4xx); the run
          │    │                      is reported, not retried
          │    └── UnavailableError   unreachable, timed out or 5xx after every retry
          ├── InteropError            wandblite.interop.common: W&B or MLflow refused or is
          │                           unreachable; the message says what to do
          ├── ApiError                wandblite.server.errors: the server's one error, with an HTTP
          │                           status and a stable code; leaves the server as
          │                           {"error": {"code", "message"}}
          └── ApiRequestError         wandblite.api: a read through wandblite.Api failed (the
                                      server's status and code; status 0 when unreachable)

The classes of this module are defined here; each branch below them lives beside the code that
raises it (named on its line above) and derives from ``Error``, so ``except wandblite.Error`` catches
every one of them. ``tests/core/test_error_tree.py`` imports every module and checks both that every
public exception class derives from ``Error`` and that this drawing names it.

Messages follow wandb's texts where wandb has one (docs/semantics.md) and otherwise say what went
wrong, where (key, path, byte offset) and what to do next.

Layer 0: imports nothing but the standard library.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "CommError",
    "ConfigError",
    "DataError",
    "Error",
    "FormatError",
    "ResumeError",
    "RunLockedError",
    "UnsupportedError",
    "UsageError",
    "WandbCoreNotAvailableError",
]


class Error(Exception):
    """Base class of every wandblite error (``wandb.Error``)."""


class UsageError(Error):
    """The API was used in a way that cannot work, e.g. logging to a finished run."""


class UnsupportedError(UsageError):
    """A feature that is not supported (``wandb.errors.UnsupportedError``)."""


class CommError(Error):
    """Talking to a server failed (``wandb.errors.CommError``): ``CommError(msg, exc=None)``, with
    ``.message`` and ``.exc`` (the underlying exception) as in wandb."""

    def __init__(self, msg: str, exc: BaseException | None = None) -> None:
        super().__init__(msg)
        self.message = msg
        self.exc = exc


class AuthenticationError(CommError):
    """A server refused the credentials (``wandb.errors.AuthenticationError``)."""


class WandbCoreNotAvailableError(Error):
    """wandb's name for a missing ``wandb-core`` binary; wandblite has none, so it never raises it."""


class ConfigError(Error):
    """A config value was changed without ``allow_val_change=True``."""


class ResumeError(Error):
    """``init(resume=...)`` could not be honoured (missing run for "must", existing run for "never")."""


class RunLockedError(Error):
    """Another live process holds the run's write lock."""


class FormatError(Error):
    """A file is not a wandblite run file, or its format version is newer than this reader."""


class DataError(Error, ValueError, TypeError):
    """Bad data given to ``log``, ``config`` or ``summary``. Nothing of that call was written."""
