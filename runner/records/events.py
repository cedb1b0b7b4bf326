"""What happens during a run, as frozen events; sinks decide how to show them.

The core never prints: it emits events. The rich live view, the plain-line log and the
tests' collector are three sinks behind one protocol.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class TicketStatus(StrEnum):
    QUEUED = "queued"
    PROVISIONING = "provisioning"
    RUNNING = "running"
    COLLECTING = "collecting"
    INTEGRATING = "integrating"
    INTEGRATED = "integrated"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def finished(self) -> bool:
        return self in (TicketStatus.INTEGRATED, TicketStatus.FAILED, TicketStatus.SKIPPED)


@dataclass(frozen=True)
class Event:
    at: float = field(default_factory=time.time, kw_only=True)


@dataclass(frozen=True)
class RunStarted(Event):
    run_id: str
    phase: str
    base_ref: str
    base_sha: str
    target: str
    run_dir: str
    tickets: tuple[str, ...]


@dataclass(frozen=True)
class Notice(Event):
    message: str
    level: str = "info"  # info | warning


@dataclass(frozen=True)
class TicketChanged(Event):
    ticket: str
    status: TicketStatus
    detail: str = ""


@dataclass(frozen=True)
class TicketOutput(Event):
    ticket: str
    line: str


@dataclass(frozen=True)
class ImageOutput(Event):
    """A line an image build prints (docker build's steps and RUN output, debootstrap's
    progress), as it comes: a build takes minutes and must not look stuck."""

    image: str
    line: str


@dataclass(frozen=True)
class TicketUsage(Event):
    """Tokens and cost of a ticket so far (after each API call)."""

    ticket: str
    tokens: int
    cost: float


@dataclass(frozen=True)
class RunFinished(Event):
    run_id: str
    exit_code: int


class EventSink(Protocol):
    def emit(self, event: Event) -> None: ...


class EventCollector:
    """A sink that keeps every event; thread-safe. Used by tests and by the run summary."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def of_type(self, kind: type[Event]) -> list[Event]:
        with self._lock:
            return [e for e in self.events if isinstance(e, kind)]


class FanOut:
    """Send every event to several sinks."""

    def __init__(self, *sinks: EventSink) -> None:
        self.sinks = sinks

    def emit(self, event: Event) -> None:
        for sink in self.sinks:
            sink.emit(event)
