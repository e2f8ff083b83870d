"""The ``twi`` command line.

Sub-commands register themselves in :data:`COMMANDS` (name -> (help, add_arguments, run)), so each module owns its own
command and this file stays a thin dispatcher.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

__all__ = ["main", "COMMANDS"]

AddArgs = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]


def _commands() -> dict[str, tuple[str, AddArgs, Run]]:
    """The sub-commands, imported lazily so ``twi --help`` stays fast."""
    cmds: dict[str, tuple[str, AddArgs, Run]] = {}
    try:
        from twi_core import reproduce
    except ImportError:  # pragma: no cover - reproduce not built yet
        reproduce = None
    if reproduce is not None:
        cmds.update(reproduce.CLI_COMMANDS)
    return cmds


COMMANDS = _commands


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``twi`` console script."""
    from twi_core import __version__

    parser = argparse.ArgumentParser(prog="twi", description="Traveling Waves Integrate Spatial Information Through Time")
    parser.add_argument("--version", action="version", version=f"twi_core {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    runners: dict[str, Run] = {}
    for name, (help_text, add_args, run) in _commands().items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
        runners[name] = run
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:
        if not stop.code:  # --help and --version end the program as argparse means them to
            raise
        return int(stop.code)  # argparse's errors (a bad choice, a missing argument): the exit code, no traceback
    if args.command is None:
        parser.print_help()
        return 2
    return int(runners[args.command](args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
