"""A run as a person or a CI job sees it: driven with the right sink (a live table on a
terminal, plain lines elsewhere), then its summary or its JSON document, and its JUnit
report. An interrupt leaves knowing which run it stopped."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from runner.records import Event, FanOut, RunStarted
from runner.views.tables import show

if TYPE_CHECKING:
    from runner.records import EventSink, RunResult


class RunInterrupted(KeyboardInterrupt):
    """An interrupt that knows which run it stopped, so the last line can say how to go
    on with it."""

    def __init__(self, run_id: str | None) -> None:
        super().__init__()
        self.run_id = run_id


class _RunIdTap:
    """A sink that remembers the id of the run it sees start."""

    run_id: str | None = None

    def emit(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.run_id = event.run_id


def show_run(drive: Callable[[EventSink], RunResult], as_json: bool, junit: Path | None) -> int:
    """Drive a run with the right sink, then print its summary or its JSON document, and
    write its JUnit report."""
    from runner.records import run_document
    from runner.views.progress import LiveSink, PlainSink

    console = Console(highlight=False)
    tap = _RunIdTap()
    try:
        if as_json or not console.is_terminal:
            result = drive(FanOut(tap, PlainSink(sys.stderr if as_json else sys.stdout)))
        else:
            with LiveSink(console) as live:
                result = drive(FanOut(tap, live))
    except KeyboardInterrupt as e:
        raise RunInterrupted(tap.run_id) from e
    if junit:
        from runner.views.report import as_junit

        junit.write_text(as_junit(result))
    if as_json:
        print(run_document(result).model_dump_json(indent=2))
    elif result.outcomes:
        from runner.views.summary import closing_lines, tickets_grid

        show(console, tickets_grid(result, f"run {result.run_id} — phase {result.phase}"))
        for line in closing_lines(result):
            console.print(line, markup=False, soft_wrap=True)
    if result.refused:
        Console(stderr=True, highlight=False).print(
            f"runner: error: {result.refused}", markup=False, style="red", soft_wrap=True)
    return result.exit_code
