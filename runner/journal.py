"""Every state change of every ticket, written atomically as it happens (tickets.json), so a
look at a run — even one whose runner was killed — shows where each ticket was."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from runner.events import Event, EventSink, TicketChanged


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` whole: a reader (or a crash) never sees half a file. The temporary
    name is per thread, so concurrent writers never share one."""
    tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Journal:
    """An EventSink in front of another: records ticket states, then passes events on."""

    def __init__(self, path: Path, inner: EventSink) -> None:
        self.path, self.inner = path, inner
        self.states: dict[str, dict[str, object]] = {}
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        if isinstance(event, TicketChanged):
            with self._lock:
                self.states[event.ticket] = {"status": str(event.status),
                                             "detail": event.detail, "at": event.at}
                write_atomic(self.path, json.dumps(self.states, indent=1))
        self.inner.emit(event)
