"""The `runner` command: parse its arguments, run the verb, map RunnerError to exit codes.
The parser is parser.py; the verbs are run_verbs.py (a run and its records), ticket_verbs.py
(one ticket) and setup_verbs.py (around runs)."""

from __future__ import annotations

import argparse
import os
import sys
import signal
from collections.abc import Sequence

from rich.console import Console

from runner.cli.parser import parser
from runner.errors import InputError, RunnerError
from runner.host import forbid_inspection, in_container
from runner.text import one_line

EXIT_INTERRUPTED = 130


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt   # SIGTERM is handled like Ctrl-C: stop, collect, resumable


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    if in_container():
        forbid_inspection()
    err = Console(stderr=True, highlight=False)
    try:
        _check_ids(args)
        return int(args.func(args))
    except RunnerError as e:
        err.print(f"runner: error: {one_line(str(e))}", markup=False, style="red", soft_wrap=True)
        return e.exit_code
    except BrokenPipeError:      # `runner diff T1 | head`: the reader had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt as e:
        run_id = getattr(e, "run_id", None)
        err.print("runner: interrupted; " + (
            f"what the workers committed is kept in refs, and `runner resume {run_id}` "
            "finishes the run" if run_id else "no run had started"), markup=False,
            soft_wrap=True)
        return EXIT_INTERRUPTED


def _check_ids(args: argparse.Namespace) -> None:
    """RUN_ID and TICKET of whichever command, checked before a path is made of them."""
    from runner.phase import checked_run_id, checked_ticket_id

    if (names := getattr(args, "names", None)) is not None:
        if len(names) > 2:
            raise InputError(f"runner {args.command} takes [RUN_ID] TICKET, not "
                             f"{len(names)} names")
        args.run_id, args.ticket = (None, *names) if len(names) == 1 else names

    if getattr(args, "run_id", None) is not None:
        checked_run_id(args.run_id)
    if getattr(args, "ticket", None) is not None:
        checked_ticket_id(args.ticket)
