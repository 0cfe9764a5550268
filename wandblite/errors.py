"""The one exception tree of wandblite.

::

    Exception
     └── Error                      wandb.Error: lifecycle misuse (log before init, bad define_metric)
          ├── UsageError            a finished run was used (wandb.errors.UsageError)
          ├── ConfigError           a config key was changed without allow_val_change
          ├── ResumeError           init(resume=...) could not be honoured
          ├── RunLockedError        another live process writes this run
          ├── FormatError           a file is not a wandblite run file (bad header / version)
          └── DataError             bad data passed to log/config/summary; also a ValueError
                                    *and* a TypeError, because wandb 0.18 raised ValueError and
                                    wandb 0.31 raises TypeError for the same mistakes

Messages follow wandb's texts where wandb has one (../shared/spec/log-semantics.md) and otherwise
say what went wrong, where (key, path, byte offset) and what to do next.

Layer 0: imports nothing but the standard library.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataError",
    "Error",
    "FormatError",
    "ResumeError",
    "RunLockedError",
    "UsageError",
]


class Error(Exception):
    """Base class of every wandblite error (``wandb.Error``)."""


class UsageError(Error):
    """The API was used in a way that cannot work, e.g. logging to a finished run."""


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
