"""Bounds on what a worker's output costs the lead: its log file, and what reaches the sinks.

A worker chooses how much it prints. Its log keeps the head and the tail of that, saying how
much was cut between them; the sinks (a terminal, a CI log, the tests' collector) get lines
cut to a width, at a bounded rate, and are told how many lines they were not shown.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Protocol

HEAD = 1 << 20        # bytes of a log kept from its start
TAIL = 1 << 20        # bytes kept from its end (the file holds at most twice this after it)
SINK_WIDTH = 1_000    # characters of a line shown by a sink
SINK_RATE = 50.0      # lines a second a ticket may show in the sinks, on average
SINK_BURST = 500      # lines it may show at once


class LogWriter(Protocol):
    """Where a ticket's commands and output are written (a CappedLog)."""

    def write(self, text: str) -> int: ...

    def flush(self) -> None: ...


class CappedLog:
    """A log file opened for appending that never grows past its head, a cut mark and twice
    ``tail`` bytes: past that, what lies between the head and the last ``tail`` bytes is cut,
    on disk, as it goes (so a killed runner leaves a readable, bounded log too). What the
    file held before it was opened (an earlier attempt's log) counts as head."""

    def __init__(self, path: Path, *, head: int = HEAD, tail: int = TAIL) -> None:
        self.path = path
        self._file = path.open("a+b")
        self._size = self._file.seek(0, os.SEEK_END)
        self._keep = max(head, self._size)
        self._tail = tail
        self._mark = 0          # bytes of the cut mark at _keep (0: nothing cut yet)
        self.cut = 0            # bytes cut so far

    def write(self, text: str) -> int:
        data = text.encode("utf-8", "replace")
        self._file.write(data)
        self._size += len(data)
        if self._size > self._keep + self._mark + 2 * self._tail:
            self._compact()
        return len(text)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> CappedLog:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def _compact(self) -> None:
        """Keep the head and the last ``tail`` bytes (from a line start); say what went."""
        self._file.seek(self._size - self._tail)
        kept = self._file.read(self._tail)
        start = kept.find(b"\n") + 1
        kept = kept[start:] if 0 < start < len(kept) else kept
        self.cut += self._size - self._keep - self._mark - len(kept)
        mark = (f"\n[runner: {self.cut:,} bytes of this log cut here; its first "
                f"{self._keep:,} bytes and its end are kept]\n").encode()
        self._file.truncate(self._keep)       # appending: the next write lands at _keep
        self._file.write(mark + kept)
        self._mark, self._size = len(mark), self._keep + len(mark) + len(kept)


class LockedLog:
    """A LogWriter that several threads write to (a worker's output, its gateway's notes):
    each write lands whole."""

    def __init__(self, log: LogWriter) -> None:
        self._log, self._lock = log, threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            return self._log.write(text)

    def flush(self) -> None:
        with self._lock:
            self._log.flush()


class SinkValve:
    """What of a ticket's output lines reaches ``emit``: each cut to ``width`` characters, at
    most ``rate`` lines a second in bursts of ``burst`` (a token bucket); lines held back are
    counted and said once lines pass again, or at ``close``."""

    def __init__(self, emit: Callable[[str], None], *, width: int = SINK_WIDTH,
                 rate: float = SINK_RATE, burst: int = SINK_BURST,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._emit, self._width, self._rate, self._burst = emit, width, rate, burst
        self._clock = clock
        self._tokens, self._last = float(burst), clock()
        self.held = 0           # lines held back since the last one shown

    def __call__(self, line: str) -> None:
        now = self._clock()
        self._tokens = min(float(self._burst), self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens < 1:
            self.held += 1
            return
        self._tokens -= 1
        self._say_held()
        self._emit(line if len(line) <= self._width
                   else f"{line[:self._width]} [… {len(line) - self._width:,} characters]")

    def close(self) -> None:
        self._say_held()

    def _say_held(self) -> None:
        if self.held:
            self._emit(f"[runner: {self.held:,} lines not shown here (too many, too fast); "
                       "the ticket's log has them]")
            self.held = 0
