"""Low-level file-descriptor I/O shared by the writers: ``write_all``.

Layer 0: standard library only. The run file writer (``runfile``), the media pack writer
(``media``) and console capture (``console``) hand bytes to the kernel through this one loop.

Promises:

* ``write_all(fd, data)`` returns only when every byte of ``data`` was accepted by the kernel: a
  partial write is continued from the first byte not written, never restarted.
* A write interrupted by a signal is retried (``InterruptedError``; since PEP 475 ``os.write``
  already retries EINTR itself unless a signal handler raises, so this is belt and braces).
* Every other ``OSError`` (ENOSPC, EBADF, EFBIG, ...) propagates to the caller, with the bytes
  written before it left where they are: the caller decides whether to cut them off or go on.
"""

from __future__ import annotations

import os

__all__ = ["write_all"]


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write all of ``data`` to ``fd``, continuing after partial writes; ``OSError`` propagates."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except InterruptedError:
            continue
        view = view[n:]
