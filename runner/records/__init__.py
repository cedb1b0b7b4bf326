"""What a run records: events, outcomes, the run record and journal, the ledger, transcripts,
capped logs, the --json document."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.faces import lazy_names


# What other packages import from here, by the module that holds it: each loaded when
# first asked for (runner/faces.py).
_EXPORTS = {
    "runner.records.document": ("run_document",),
    "runner.records.events": ("Event", "EventCollector", "EventSink", "FanOut", "ImageOutput",
                              "Notice", "RunFinished", "RunStarted", "TicketChanged",
                              "TicketOutput", "TicketStatus", "TicketUsage"),
    "runner.records.journal": ("TICKET_JOURNAL", "Journal"),
    "runner.records.ledger": ("Ledger", "Price", "Usage", "default_prices"),
    "runner.records.logcap": ("CappedLog", "LockedLog", "LogWriter", "SinkValve"),
    "runner.records.outcome": ("NOTHING_CHANGED", "SUCCEEDED", "Attempt", "CheckResult", "Fetched",
                               "TicketOutcome", "attempt_of", "conflict_reason", "with_attempts"),
    "runner.records.record": ("CHECKS_SPAN", "GAP_SPAN", "PHASE_CHECKS", "PHASE_COPY",
                              "SELFTEST_SPAN", "Asked",
                              "RunResult",
                              "TierTotals", "load_result", "per_tier", "record_outcome",
                              "write_state"),
    "runner.records.transcript": ("Transcript", "render"),
}
__getattr__ = lazy_names(__name__, globals(), _EXPORTS)

if TYPE_CHECKING:
    from runner.records.document import run_document
    from runner.records.events import (Event, EventCollector, EventSink, FanOut, ImageOutput,
                                       Notice, RunFinished, RunStarted, TicketChanged, TicketOutput,
                                       TicketStatus, TicketUsage)
    from runner.records.journal import TICKET_JOURNAL, Journal
    from runner.records.ledger import Ledger, Price, Usage, default_prices
    from runner.records.logcap import CappedLog, LockedLog, LogWriter, SinkValve
    from runner.records.outcome import (NOTHING_CHANGED, SUCCEEDED, Attempt, CheckResult, Fetched,
                                        TicketOutcome, attempt_of, conflict_reason, with_attempts)
    from runner.records.record import (CHECKS_SPAN, GAP_SPAN, PHASE_CHECKS, PHASE_COPY,
                                       SELFTEST_SPAN, Asked,
                                       RunResult,
                                       TierTotals, load_result, per_tier, record_outcome,
                                       write_state)
    from runner.records.transcript import Transcript, render
