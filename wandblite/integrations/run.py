"""``python -m wandblite.integrations.run [-m module | script.py] [args...]``: run a script with the opt-in.

Layer 4. Stdlib only. The script runs as ``__main__`` in this process after
``wandblite.integrations.as_wandb()``, so a framework inside it that does ``import wandb`` (Hugging
Face Transformers' ``report_to="wandb"``, Lightning's ``WandbLogger``) logs into wandblite run files.
``WANDBLITE_AS_WANDB=1`` is set for child processes; they opt in when they import wandblite.
Exit status: the script's own; 2 for a usage error.
"""

from __future__ import annotations

import os
import runpy
import sys

from wandblite.integrations import as_wandb

USAGE = "usage: python -m wandblite.integrations.run [-m module | script.py] [args...]"


def main(argv: list[str] | None = None) -> int:
    """Opt in, then run the script or module given in ``argv`` as ``__main__``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        sys.stderr.write(USAGE + "\n")
        return 2 if not args else 0
    os.environ["WANDBLITE_AS_WANDB"] = "1"
    as_wandb()
    if args[0] == "-m":
        if len(args) < 2:
            sys.stderr.write(USAGE + "\n")
            return 2
        sys.argv = [args[1], *args[2:]]
        runpy.run_module(args[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = args
        sys.path.insert(0, os.path.dirname(os.path.abspath(args[0])))
        runpy.run_path(args[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
