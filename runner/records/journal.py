"""Every state change of every ticket, appended as it happens (tickets.jsonl), so a look at
a run — even one whose runner was killed — shows where each ticket was."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from runner.records.events import Event, EventSink, TicketChanged

TICKET_JOURNAL = "tickets.jsonl"


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` whole: a reader (or a crash) never sees half a file. The temporary
    name is per thread, so concurrent writers never share one."""
    tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Journal:
    """An EventSink in front of another: records each ticket state change, then passes
    events on. One line appended per change: what a run of thousands of tickets writes grows
    with its changes, never with their square."""

    def __init__(self, path: Path, inner: EventSink) -> None:
        self.path, self.inner = path, inner
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        if isinstance(event, TicketChanged):
            line = json.dumps({"ticket": event.ticket, "status": str(event.status),
                               "detail": event.detail, "at": event.at})
            with self._lock, open(self.path, "a") as journal:
                journal.write(line + "\n")
        self.inner.emit(event)


def ticket_states(path: Path) -> dict[str, dict[str, object]]:
    """Each ticket's latest state in a journal (a torn last line, a killed runner's, is
    skipped)."""
    states: dict[str, dict[str, object]] = {}
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return states
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        states[entry.pop("ticket")] = entry
    return states
