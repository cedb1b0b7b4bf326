"""Drive the tickets of a phase: dependencies first, at most ``concurrency`` at once.

Workers run in threads; integration happens on the scheduling thread, one ticket at a time,
as soon as each finishes. A ticket without dependencies starts from base; one with
dependencies starts from the integrated head at the moment it starts, which holds the
integrated work of all its dependencies (and of whatever else was integrated by then).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace

from runner.events import EventSink, TicketChanged, TicketStatus
from runner.phase import Phase, Ticket
from runner.worker import TicketOutcome

SUCCEEDED = (TicketStatus.INTEGRATED, TicketStatus.NO_CHANGES)

RunOne = Callable[[Ticket, str], TicketOutcome]
Integrate = Callable[[TicketOutcome], TicketOutcome]


def schedule(phase: Phase, *, concurrency: int, run_one: RunOne, integrate: Integrate,
             start_point: Callable[[Ticket], str], sink: EventSink,
             stop: Callable[[], None] = lambda: None,
             blocked: Callable[[], str | None] = lambda: None) -> dict[str, TicketOutcome]:
    """Run every ticket; return each one's final outcome, in phase order.

    When ``blocked`` gives a reason (the phase budget is spent), no new ticket starts: the
    ones still waiting are skipped with that reason.

    On an interrupt, ``stop`` ends the running workers (their threads then return) before
    the interrupt goes on up.
    """
    pending = list(phase.tickets)
    results: dict[str, TicketOutcome] = {}
    running: dict[Future[TicketOutcome], Ticket] = {}

    def succeeded(ticket_id: str) -> bool:
        return ticket_id in results and results[ticket_id].status in SUCCEEDED

    def skip_blocked() -> None:
        stopped = blocked()
        for ticket in list(pending):
            failed = [d for d in ticket.depends_on if d in results and not succeeded(d)]
            if failed or stopped:
                pending.remove(ticket)
                reason = stopped or f"dependency {', '.join(failed)} did not succeed"
                results[ticket.id] = TicketOutcome(ticket.id, TicketStatus.SKIPPED, reason)
                sink.emit(TicketChanged(ticket.id, TicketStatus.SKIPPED, reason))

    def start_ready(pool: ThreadPoolExecutor) -> None:
        for ticket in list(pending):
            if len(running) >= concurrency:
                return
            if all(succeeded(d) for d in ticket.depends_on):
                pending.remove(ticket)
                running[pool.submit(run_one, ticket, start_point(ticket))] = ticket

    for ticket in pending:
        sink.emit(TicketChanged(ticket.id, TicketStatus.QUEUED))
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="worker") as pool:
        try:
            while pending or running:
                skip_blocked()
                start_ready(pool)
                if not running:
                    continue  # only skips happened this round; look again
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    outcome = future.result()
                    if outcome.status == TicketStatus.COLLECTING:
                        outcome = integrate(outcome)
                    results[running.pop(future).id] = outcome
        except BaseException:
            # A worker may be creating its container right now: sweep until all have ended.
            stop()
            while not wait(running, timeout=1).not_done == set():
                stop()
            raise
    return {t.id: results[t.id] for t in phase.tickets}


def finished(outcome: TicketOutcome, status: TicketStatus, reason: str = "") -> TicketOutcome:
    return replace(outcome, status=status, reason=reason)
