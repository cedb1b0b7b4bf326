"""`runner logs -f`: a worker's log as it grows, from another terminal, until its ticket
ends. The log is the one runner writes (worker lines behind "| "); each piece is made
printable before it is shown."""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable
from pathlib import Path

from runner.host import is_driven
from runner.records import load_result
from runner.text import printable

POLL = 0.2          # seconds between looks
_PIECE = 1 << 20    # bytes read at once


LOCK_EVERY = 2.0    # seconds between asks of the run's lock: a resume may be claiming it


def ticket_ended(run_dir: Path, ticket: str) -> Callable[[], bool]:
    """Whether ``ticket`` has its final outcome, or its run is no longer driven."""
    asked = [0.0]

    def ended() -> bool:
        if ticket in load_result(run_dir).outcomes:
            return True
        if time.monotonic() - asked[0] < LOCK_EVERY:
            return False
        asked[0] = time.monotonic()
        return not is_driven(run_dir)
    return ended


def follow(log: Path, ended: Callable[[], bool], write: Callable[[str], None],
           poll: float = POLL) -> None:
    """Write what ``log`` holds and what is added to it, until ``ended()``; what was written
    before it ended is shown too."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    offset = 0
    while True:
        done = ended()       # asked first: all written before the end is read below
        try:
            with log.open("rb") as f:
                if f.seek(0, 2) < offset:     # started again (a resumed run): from the top
                    offset = 0
                f.seek(offset)
                while piece := f.read(_PIECE):
                    offset += len(piece)
                    write(printable(decoder.decode(piece)))
        except FileNotFoundError:
            pass             # the ticket has not started yet
        if done:
            write(printable(decoder.decode(b"", final=True)))
            return
        time.sleep(poll)
