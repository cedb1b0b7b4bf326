"""Sinks that show a run to a person: a rich live table on a TTY, plain lines elsewhere.

This is the only module that imports rich.live; the core only emits events.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from runner.records import (Event, ImageOutput, Notice, RunFinished, RunStarted, TicketChanged,
                            TicketOutput, TicketStatus, TicketUsage)
from runner.text import one_line

STATUS_STYLE = {TicketStatus.INTEGRATED: "green",
                TicketStatus.FAILED: "red", TicketStatus.SKIPPED: "yellow",
                TicketStatus.RUNNING: "cyan", TicketStatus.QUEUED: "dim"}


class PlainSink:
    """Greppable lines with timestamps: for CI logs and pipes (no control sequences)."""

    def __init__(self, stream: TextIO, *, show_output: bool = True) -> None:
        self.stream, self.show_output = stream, show_output
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        line = describe(event, show_output=self.show_output)
        if line is not None:
            stamp = time.strftime("%H:%M:%S", time.localtime(event.at))
            with self._lock:
                self.stream.write(f"{stamp} {line}\n")
                self.stream.flush()


def describe(event: Event, *, show_output: bool = True) -> str | None:
    """The event as one line of a log: whatever a worker put in it cannot make two."""
    line = _describe(event, show_output=show_output)
    return None if line is None else one_line(line)


def _describe(event: Event, *, show_output: bool) -> str | None:
    match event:
        case RunStarted():
            return (f"run {event.run_id}: phase {event.phase}, base {event.base_ref} = "
                    f"{event.base_sha[:12]}, target {event.target}, {len(event.tickets)} tickets")
        case Notice():
            return f"{'warning: ' if event.level == 'warning' else ''}{event.message}"
        case TicketChanged():
            detail = f": {event.detail}" if event.detail else ""
            return f"{event.ticket} {event.status}{detail}"
        case TicketOutput() if show_output:
            return f"{event.ticket} | {event.line}"
        case ImageOutput():     # always: a build is minutes long, and shown to say so
            return f"{event.image} | {event.line}"
        case RunFinished():
            return f"run {event.run_id} finished (exit {event.exit_code})"
    return None


@dataclass
class _Row:
    status: TicketStatus = TicketStatus.QUEUED
    since: float | None = None     # when its current attempt started
    spent: float = 0.0             # its earlier attempts' time (reruns)
    last: str = ""
    tokens: int = 0
    cost: float = 0.0

    def elapsed(self, now: float) -> float:
        return self.spent + (max(0.0, now - self.since) if self.since else 0.0)

    def stop(self, at: float) -> None:
        """An attempt ended: its time counts, waiting for a rerun does not."""
        if self.since is not None:
            self.spent += max(0.0, at - self.since)
            self.since = None


@dataclass
class LiveSink:
    """A rich live table: ticket, state, elapsed, last output line."""

    console: Console
    rows: dict[str, _Row] = field(default_factory=dict)
    _live: Live | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> LiveSink:
        # transient: the live table goes when the run ends; the summary takes its place.
        self._live = Live(get_renderable=self._table, console=self.console,
                          refresh_per_second=4, transient=True)
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live:
            self._live.__exit__(None, None, None)

    def emit(self, event: Event) -> None:
        with self._lock:
            match event:
                case RunStarted():
                    self.rows = {t: _Row() for t in event.tickets}
                    self.console.print(describe(event), markup=False, soft_wrap=True)
                case Notice():
                    self.console.print(describe(event), markup=False, soft_wrap=True,
                                       style="yellow" if event.level == "warning" else None)
                case TicketChanged():
                    row = self.rows.setdefault(event.ticket, _Row())
                    if event.status == TicketStatus.PROVISIONING:
                        row.since = event.at
                    elif event.status.finished or (event.status == TicketStatus.QUEUED
                                                   and row.status != TicketStatus.QUEUED):
                        row.stop(event.at)
                    row.status = event.status
                    if event.detail:
                        row.last = one_line(event.detail)
                case TicketOutput():
                    self.rows.setdefault(event.ticket, _Row()).last = one_line(event.line)
                case ImageOutput():
                    self.console.print(describe(event), markup=False, soft_wrap=True,
                                       style="dim")
                case TicketUsage():
                    row = self.rows.setdefault(event.ticket, _Row())
                    row.tokens, row.cost = event.tokens, event.cost

    def _table(self) -> Table:
        # Short of the full width: the "^C" a terminal echoes after the table's last line
        # must not wrap it, or every later redraw (and the clearing at the end) is a line off.
        table = Table(expand=True, width=max(40, self.console.width - 3))
        with self._lock:
            spending = any(row.tokens for row in self.rows.values())   # else: no LLM
            names = ["ticket", "state", "elapsed", *(["tokens", "cost"] if spending else []),
                     "last output"]
            for name in names:
                table.add_column(name, no_wrap=True, overflow="ellipsis",
                                 ratio=3 if name == "last output" else None)
            for ticket, row in self.rows.items():
                spent = [f"{row.tokens:,}", f"${row.cost:.4f}"] if spending else []
                table.add_row(ticket, Text(str(row.status), STATUS_STYLE.get(row.status, "")),
                              f"{row.elapsed(time.time()):5.1f}s", *spent, Text(row.last))
        return table
