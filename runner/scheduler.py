"""Drive the tickets of a phase: dependencies first, at most ``concurrency`` at once, never
two tickets whose `paths` overlap at the same time.

Workers run in threads; integration happens on the scheduling thread, one ticket at a time,
as soon as each finishes. A ticket without dependencies starts from base; one with
dependencies starts from the integrated head at the moment it starts, which holds the
integrated work of all its dependencies. A ticket whose commits conflict is run again from
the integrated head (the sequential fallback), one rerun at a time, up to its max_reruns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from functools import lru_cache

from runner.events import EventSink, TicketChanged, TicketStatus
from runner.phase import Phase, Ticket
from runner.outcome import SUCCEEDED, TicketOutcome, conflict_reason, with_attempts


RunOne = Callable[[Ticket, str, int], TicketOutcome]     # ticket, start commit, attempt
Integrate = Callable[[TicketOutcome], TicketOutcome]


@lru_cache(maxsize=65536)   # asked again for each pair of tickets, in every wave
def _literal_prefix(pattern: str) -> tuple[str, ...]:
    parts = pattern.removeprefix("./").strip("/").split("/")
    prefix: list[str] = []
    for part in parts:
        if any(c in part for c in "*?["):
            break
        prefix.append(part)
    return tuple(prefix)


def paths_overlap(a: list[str], b: list[str]) -> bool:
    """Whether two tickets' `paths` may name a common file (conservatively). Tickets that
    declare no paths are not kept apart: a conflict between them is settled by a rerun."""
    if not a or not b:
        return False
    for p in a:
        for q in b:
            x, y = _literal_prefix(p), _literal_prefix(q)
            n = min(len(x), len(y))
            if x[:n] == y[:n]:
                return True
    return False


def blockers(ticket: Ticket, *, finished: set[str], running: list[Ticket],
             allow_overlap: bool) -> list[str]:
    """Why ``ticket`` cannot start now (empty: it can)."""
    why = [f"{d} (dependency)" for d in ticket.depends_on if d not in finished]
    if not allow_overlap:
        why += [f"{r.id} (overlap)" for r in running if paths_overlap(ticket.paths, r.paths)]
    return why


@dataclass(frozen=True)
class Planned:
    ticket: str
    waits_for: tuple[str, ...]    # every reason it is not in the wave before its own


def plan_waves(phase: Phase, *, concurrency: int, allow_overlap: bool) -> list[list[Planned]]:
    """The order a run would take if every ticket took the same time and succeeded."""
    pending, finished, waves = list(phase.tickets), set(), []
    waiting: dict[str, tuple[str, ...]] = {}
    while pending:
        wave: list[Ticket] = []
        for ticket in list(pending):
            if len(wave) < concurrency and not blockers(ticket, finished=finished, running=wave,
                                                        allow_overlap=allow_overlap):
                wave.append(ticket)
                pending.remove(ticket)
        # Why the rest could not join, judged against the whole wave (a ticket looked at early
        # may overlap one that joined after it); overwritten each wave, so a ticket shows what
        # held it back in the wave just before its own, not what stopped it long ago.
        for ticket in pending:
            why = blockers(ticket, finished=finished, running=wave, allow_overlap=allow_overlap)
            waiting[ticket.id] = tuple(why or ["a free worker (concurrency)"])
        waves.append([Planned(t.id, waiting.get(t.id, ())) for t in wave])
        finished |= {t.id for t in wave}
    return waves


def schedule(phase: Phase, *, concurrency: int, run_one: RunOne, integrate: Integrate,
             start_point: Callable[[Ticket, int], str], sink: EventSink,
             allow_overlap: bool = False, stop: Callable[[], None] = lambda: None,
             hard_stop: Callable[[], None] = lambda: None,
             blocked: Callable[[], str | None] = lambda: None,
             done: Mapping[str, TicketOutcome] | None = None,
             on_result: Callable[[TicketOutcome], None] = lambda o: None,
             rerun_conflicts: bool = True,
             ) -> dict[str, TicketOutcome]:
    """Run every ticket not already ``done``; return each one's final outcome, in phase
    order, reporting each to ``on_result`` as it becomes final.

    When ``blocked`` gives a reason (the phase budget is spent), no new ticket starts: the
    ones still waiting are skipped with that reason. On an interrupt, ``stop`` ends what the
    workers run (they then collect their work and return); a second interrupt while they do
    calls ``hard_stop``. Either way the interrupt goes on up. Without ``rerun_conflicts``
    (a sequential run, where every ticket starts from the integrated head) a conflict fails
    its ticket at once.
    """
    results: dict[str, TicketOutcome] = dict(done or {})
    pending = [t for t in phase.tickets if t.id not in results]
    reruns: list[tuple[Ticket, int]] = []          # conflicted tickets, with their attempt
    running: dict[Future[TicketOutcome], tuple[Ticket, int]] = {}
    earlier: dict[str, list[TicketOutcome]] = {}   # a rerun ticket's earlier attempts

    def succeeded(ticket_id: str) -> bool:
        return ticket_id in results and results[ticket_id].status in SUCCEEDED

    def final(outcome: TicketOutcome) -> None:
        """A ticket's outcome is final: recorded, then told (here only, once)."""
        results[outcome.ticket] = outcome
        on_result(outcome)
        sink.emit(TicketChanged(outcome.ticket, outcome.status, outcome.reason))

    def skip(ticket: Ticket, reason: str) -> None:
        final(TicketOutcome(ticket.id, TicketStatus.SKIPPED, reason))

    def skip_blocked() -> None:
        stopped = blocked()
        for ticket in list(pending):
            failed = [d for d in ticket.depends_on if d in results and not succeeded(d)]
            if failed or stopped:
                pending.remove(ticket)
                skip(ticket, stopped or f"dependency {', '.join(failed)} did not succeed")
        if stopped:
            for ticket, _ in reruns:
                skip(ticket, stopped)
            reruns.clear()

    def start(pool: ThreadPoolExecutor, ticket: Ticket, attempt: int) -> None:
        running[pool.submit(run_one, ticket, start_point(ticket, attempt), attempt)] = (
            ticket, attempt)

    def start_ready(pool: ThreadPoolExecutor) -> None:
        active = [t for t, _ in running.values()]
        # Reruns go first and one at a time: each starts from everything integrated so far.
        if reruns and not any(a for _, a in running.values()) and len(running) < concurrency:
            ticket, attempt = reruns[0]
            if not blockers(ticket, finished=set(results), running=active,
                            allow_overlap=allow_overlap):
                reruns.pop(0)
                start(pool, ticket, attempt)
                active.append(ticket)
        for ticket in list(pending):
            if len(running) >= concurrency:
                return
            finished = {t for t in results if succeeded(t)}
            if not blockers(ticket, finished=finished, running=active,
                            allow_overlap=allow_overlap):
                pending.remove(ticket)
                start(pool, ticket, 0)
                active.append(ticket)

    def settle(ticket: Ticket, attempt: int, outcome: TicketOutcome) -> None:
        if outcome.status == TicketStatus.COLLECTING:
            outcome = integrate(outcome)
        conflicted = conflict_reason(outcome.conflicts_with, outcome.conflict_files)
        reruns_left = attempt < (phase.reruns_for(ticket) if rerun_conflicts else 0)
        why = (conflicted if outcome.conflict and reruns_left else
               "its container was stopped" if outcome.infra and attempt < ticket.retries
               else None)
        if why:
            sink.emit(TicketChanged(ticket.id, TicketStatus.QUEUED,
                                    f"{why}; rerun {attempt + 1} queued"))
            earlier.setdefault(ticket.id, []).append(outcome)
            reruns.append((ticket, attempt + 1))
            return
        final(with_attempts(earlier.pop(ticket.id, []), replace(outcome, reruns=attempt)))

    for ticket in pending:
        sink.emit(TicketChanged(ticket.id, TicketStatus.QUEUED))
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="worker") as pool:
        try:
            while pending or running or reruns:
                skip_blocked()
                start_ready(pool)
                if not running:
                    continue  # only skips happened this round; look again
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    ticket, attempt = running.pop(future)
                    settle(ticket, attempt, future.result())
        except BaseException:
            # Workers collect what they did and return; one may have been starting its
            # command just then, so stop again if some are still busy after a while.
            try:
                stop()
                while wait(running, timeout=10).not_done:
                    stop()
                for future in running:
                    if future.exception() is None:   # collected, never integrated: redo
                        outcome = future.result()
                        final(replace(outcome, interrupted=True)
                              if outcome.status == TicketStatus.COLLECTING else outcome)
            except BaseException:
                hard_stop()
                while wait(running, timeout=1).not_done:
                    hard_stop()
                raise
            raise
    return {t.id: results[t.id] for t in phase.tickets}



def finished(outcome: TicketOutcome, status: TicketStatus, reason: str = "",
             conflict: bool = False) -> TicketOutcome:
    return replace(outcome, status=status, reason=reason, conflict=conflict)
