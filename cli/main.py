"""The ``wandblite`` command: a thin click layer over the library.

Subcommands are loaded lazily (``LazyGroup``), so ``wandblite --help`` imports no subcommand's
dependencies. Usage errors exit 2 (click's own), other failures exit 1 with one clear line on
stderr; diagnostics go to stderr so that stdout stays machine-readable (``--json``).
"""

from __future__ import annotations

import importlib
from typing import Any

import click

_COMMANDS = {
    "ls": ("wandblite_cli.runs", "ls", "List the runs below a directory: state, steps, last write."),
    "show": ("wandblite_cli.runs", "show", "Show a run: state, config, summary, last rows."),
    "verify": ("wandblite_cli.runs", "verify", "Check a run's files; exit 1 if damaged."),
    "export": ("wandblite_cli.runs", "export", "Export a run's history as CSV or JSON lines."),
    "logs": ("wandblite_cli.runs", "logs", "Print a run's captured console output."),
    "server": ("wandblite_cli.server", "server", "Serve a store over HTTP; manage its API keys."),
    "sync": ("wandblite_cli.sync", "sync", "Upload runs to a server or the local store, exactly once."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _COMMANDS:
            module, attr, _help = _COMMANDS[cmd_name]
            cmd = getattr(importlib.import_module(module), attr)
            assert isinstance(cmd, click.Command)
            return cmd
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _COMMANDS[name][2]) for name in sorted(_COMMANDS)]
        for name in super().list_commands(ctx):
            if name not in _COMMANDS:
                cmd = super().get_command(ctx, name)
                rows.append((name, cmd.get_short_help_str() if cmd else ""))
        rows.sort()
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.version_option(package_name="wandblite")
def cli() -> None:
    """wandblite: crash-safe offline experiment logging with the W&B API.

    Runs are directories under ./runs (or $WANDBLITE_DIR); every command here works on the files
    alone, on any machine.
    """


def main(argv: Any = None) -> None:
    cli.main(args=argv, prog_name="wandblite")
