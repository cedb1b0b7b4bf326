"""Drive the tickets of a phase: dependencies first, at most ``concurrency`` at once, never
two tickets whose `paths` overlap at the same time.

Workers run in threads; integration happens on the scheduling thread, one ticket at a time,
as soon as each finishes (those that finished together in one pass, published once). A
ticket without dependencies starts from base; one with dependencies starts from the
integrated head at the moment it starts, which holds the integrated work of all its
dependencies. A ticket whose commits conflict is run again from the integrated head (the
sequential fallback), one rerun at a time, up to its max_reruns.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from functools import lru_cache

from runner.phase import Phase, Ticket
from runner.records import (SUCCEEDED, EventSink, TicketChanged, TicketOutcome, TicketStatus,
                            conflict_reason, with_attempts)


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


@dataclass(frozen=True)
class Planned:
    ticket: str
    waits_for: tuple[str, ...]    # every reason it is not in the wave before its own


class ReadyQueue:
    """Which waiting tickets may start, kept up to date as tickets finish, so that each step
    costs what changed rather than a look at every ticket (a phase may hold thousands).

    A ticket is *ready* when every dependency has succeeded; ready tickets come out in phase
    order. One that overlaps a running ticket's paths is *parked* under it until it ends."""

    def __init__(self, tickets: Sequence[Ticket], succeeded: Callable[[str], bool]) -> None:
        self.order = {t.id: i for i, t in enumerate(tickets)}
        self.waiting = {t.id: t for t in tickets}
        self.unmet = {t.id: sum(not succeeded(d) for d in t.depends_on) for t in tickets}
        self.dependents: dict[str, list[str]] = {}
        for ticket in tickets:
            for dep in ticket.depends_on:
                self.dependents.setdefault(dep, []).append(ticket.id)
        self._heap = [(self.order[t.id], t.id) for t in tickets if not self.unmet[t.id]]
        heapq.heapify(self._heap)
        self._parked: dict[str, list[str]] = {}

    def __bool__(self) -> bool:
        return bool(self.waiting)

    def take(self, holder: Callable[[Ticket], str | None]) -> Ticket | None:
        """The first ready ticket, in phase order, for which ``holder`` names no running
        ticket it overlaps; one it names parks the ticket until that one ends."""
        while self._heap:
            _, ticket_id = heapq.heappop(self._heap)
            ticket = self.waiting.get(ticket_id)
            if ticket is None:
                continue                       # skipped meanwhile
            if (held_by := holder(ticket)) is not None:
                self._parked.setdefault(held_by, []).append(ticket_id)
                continue
            del self.waiting[ticket_id]
            return ticket
        return None

    def ended(self, ticket_id: str) -> None:
        """A running ticket ended (for now): what it held back may start again."""
        for parked in self._parked.pop(ticket_id, ()):
            heapq.heappush(self._heap, (self.order[parked], parked))

    def succeeded(self, ticket_id: str) -> None:
        for dependent in self.dependents.get(ticket_id, ()):
            self.unmet[dependent] -= 1
            if not self.unmet[dependent] and dependent in self.waiting:
                heapq.heappush(self._heap, (self.order[dependent], dependent))

    def drop(self, ticket_id: str) -> Ticket | None:
        return self.waiting.pop(ticket_id, None)

    def waiting_on(self, ticket_id: str) -> list[str]:
        """The waiting tickets that depend on ``ticket_id``, in phase order."""
        return sorted((d for d in self.dependents.get(ticket_id, ()) if d in self.waiting),
                      key=self.order.__getitem__)


def _overlapping(ticket: Ticket, running: Sequence[Ticket], allow_overlap: bool) -> list[str]:
    if allow_overlap or not ticket.paths:
        return []
    return [r.id for r in running if paths_overlap(ticket.paths, r.paths)]


def plan_waves(phase: Phase, *, concurrency: int, allow_overlap: bool) -> list[list[Planned]]:
    """The order a run would take if every ticket took the same time and succeeded: each
    wave takes, in phase order, the tickets whose dependencies are in earlier waves and whose
    paths overlap nobody in it. Why a ticket waited is judged against the wave just before
    its own (what held it back last, not what stopped it long ago)."""
    wave_of: dict[str, int] = {}
    queue = ReadyQueue(phase.tickets, succeeded=lambda _: False)
    waves: list[list[Ticket]] = []
    while queue:
        wave = _next_wave(queue, concurrency, allow_overlap)
        for ticket in wave:            # parked under a member: it may go in the next wave
            queue.ended(ticket.id)
        for ticket in wave:
            wave_of[ticket.id] = len(waves)
            queue.succeeded(ticket.id)
        waves.append(wave)
    planned = []
    for number, wave in enumerate(waves):
        before = waves[number - 1] if number else []
        planned.append([Planned(t.id, _waited(t, number, before, wave_of, allow_overlap))
                        for t in wave])
    return planned


def first_wave(phase: Phase, *, concurrency: int, allow_overlap: bool) -> list[Ticket]:
    """The tickets a run starts first (from base), as schedule() picks them."""
    return _next_wave(ReadyQueue(phase.tickets, succeeded=lambda _: False), concurrency,
                      allow_overlap)


def _next_wave(queue: ReadyQueue, concurrency: int, allow_overlap: bool) -> list[Ticket]:
    wave: list[Ticket] = []

    def holder(ticket: Ticket) -> str | None:
        return next(iter(_overlapping(ticket, wave, allow_overlap)), None)

    while len(wave) < concurrency and (ticket := queue.take(holder)):
        wave.append(ticket)
    return wave


def _waited(ticket: Ticket, number: int, before: list[Ticket], wave_of: dict[str, int],
            allow_overlap: bool) -> tuple[str, ...]:
    if not number:
        return ()
    why = [f"{d} (dependency)" for d in ticket.depends_on if wave_of[d] == number - 1]
    why += [f"{r} (overlap)" for r in _overlapping(ticket, before, allow_overlap)]
    return tuple(why or ["a free worker (concurrency)"])


def schedule(phase: Phase, *, concurrency: int, run_one: RunOne, integrate: Integrate,
             start_point: Callable[[Ticket, int], str], sink: EventSink,
             allow_overlap: bool = False, stop: Callable[[], None] = lambda: None,
             hard_stop: Callable[[], None] = lambda: None,
             blocked: Callable[[], str | None] = lambda: None,
             done: Mapping[str, TicketOutcome] | None = None,
             on_result: Callable[[TicketOutcome], None] = lambda o: None,
             rerun_conflicts: bool = True,
             publish: Callable[[], None] = lambda: None,
             prepare: Callable[[Ticket], None] = lambda t: None,
             ) -> dict[str, TicketOutcome]:
    """Run every ticket not already ``done``; return each one's final outcome, in phase
    order, reporting each to ``on_result`` as it becomes final.

    When ``blocked`` gives a reason (the phase budget is spent), no new ticket starts: the
    ones still waiting are skipped with that reason. On an interrupt, ``stop`` ends what the
    workers run (they then collect their work and return); a second interrupt while they do
    calls ``hard_stop``. Either way the interrupt goes on up. Without ``rerun_conflicts``
    (a sequential run, where every ticket starts from the integrated head) a conflict fails
    its ticket at once. ``publish`` is called after each pass of integrations, before their
    outcomes are final (so a recorded outcome is always in what was published).
    ``prepare`` is told of a ticket that will be ready once a ticket just started succeeds
    (its last unmet dependency), at most ``concurrency`` of them at a time: what it needs
    may be made meanwhile.
    """
    results: dict[str, TicketOutcome] = dict(done or {})
    reruns: list[tuple[Ticket, int]] = []          # conflicted tickets, with their attempt
    running: dict[Future[TicketOutcome], tuple[Ticket, int]] = {}
    earlier: dict[str, list[TicketOutcome]] = {}   # a rerun ticket's earlier attempts
    prepared: set[str] = set()                     # told to prepare, not started yet

    def succeeded(ticket_id: str) -> bool:
        return ticket_id in results and results[ticket_id].status in SUCCEEDED

    queue = ReadyQueue([t for t in phase.tickets if t.id not in results], succeeded)

    def final(outcome: TicketOutcome) -> None:
        """A ticket's outcome is final: recorded, then told (here only, once); those that
        depend on it become ready, or are skipped when it did not succeed (and theirs in
        turn: a worklist, since a chain may be thousands long)."""
        todo = [outcome]
        while todo:
            outcome = todo.pop()
            results[outcome.ticket] = outcome
            prepared.discard(outcome.ticket)
            on_result(outcome)
            sink.emit(TicketChanged(outcome.ticket, outcome.status, outcome.reason))
            if outcome.status in SUCCEEDED:
                queue.succeeded(outcome.ticket)
                continue
            todo += reversed(dependents_skipped(outcome))

    def dependents_skipped(outcome: TicketOutcome) -> list[TicketOutcome]:
        """The waiting dependents of a ticket that did not succeed, taken out, skipped; of
        one that waits for a resume, skipped until then (interrupted: a resume runs them)."""
        why = (f"dependency {outcome.ticket} waits for a resume" if outcome.interrupted
               else f"dependency {outcome.ticket} did not succeed")
        return [TicketOutcome(dependent, TicketStatus.SKIPPED, why,
                              interrupted=outcome.interrupted)
                for dependent in queue.waiting_on(outcome.ticket) if queue.drop(dependent)]

    def skip(ticket_id: str, reason: str) -> None:
        final(TicketOutcome(ticket_id, TicketStatus.SKIPPED, reason))

    def skip_blocked() -> None:
        stopped = blocked()
        if not stopped:
            return
        for ticket in [t for t in phase.tickets if t.id in queue.waiting]:
            if queue.drop(ticket.id):
                skip(ticket.id, stopped)
        for ticket, _ in reruns:
            skip(ticket.id, stopped)
        reruns.clear()

    def start(pool: ThreadPoolExecutor, ticket: Ticket, attempt: int) -> None:
        running[pool.submit(run_one, ticket, start_point(ticket, attempt), attempt)] = (
            ticket, attempt)
        prepared.discard(ticket.id)
        for dependent in queue.waiting_on(ticket.id):
            if len(prepared) >= concurrency:
                break
            if queue.unmet[dependent] == 1 and dependent not in prepared:
                prepared.add(dependent)
                prepare(queue.waiting[dependent])

    def start_ready(pool: ThreadPoolExecutor) -> None:
        active = [t for t, _ in running.values()]
        # Reruns go first and one at a time: each starts from everything integrated so far.
        if reruns and not any(a for _, a in running.values()) and len(running) < concurrency:
            ticket, attempt = reruns[0]    # its dependencies succeeded before its first run
            if not _overlapping(ticket, active, allow_overlap):
                reruns.pop(0)
                start(pool, ticket, attempt)
                active.append(ticket)

        def holder(ticket: Ticket) -> str | None:
            return next(iter(_overlapping(ticket, active, allow_overlap)), None)

        while len(running) < concurrency and (ticket := queue.take(holder)):
            start(pool, ticket, 0)
            active.append(ticket)

    def settle(ticket: Ticket, attempt: int, outcome: TicketOutcome) -> None:
        conflicted = conflict_reason(outcome.conflicts_with, outcome.conflict_files)
        reruns_left = attempt < (phase.reruns_for(ticket) if rerun_conflicts else 0)
        why = (conflicted if outcome.conflict and reruns_left else
               "its container was stopped" if outcome.infra and attempt < ticket.retries
               and not outcome.interrupted else None)   # waiting for a resume: not rerun
        if why:
            sink.emit(TicketChanged(ticket.id, TicketStatus.QUEUED,
                                    f"{why}; rerun {attempt + 1} queued"))
            earlier.setdefault(ticket.id, []).append(outcome)
            reruns.append((ticket, attempt + 1))
            return
        final(with_attempts(earlier.pop(ticket.id, []), replace(outcome, reruns=attempt)))

    # Resumed: what depends on a ticket that finished without succeeding is skipped now.
    for outcome in [o for o in results.values() if o.status not in SUCCEEDED]:
        for skipped in dependents_skipped(outcome):
            final(skipped)
    pending = [t for t in phase.tickets if t.id in queue.waiting]
    for ticket in pending:
        sink.emit(TicketChanged(ticket.id, TicketStatus.QUEUED))
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="worker") as pool:
        try:
            while queue or running or reruns:
                skip_blocked()
                start_ready(pool)
                if not running:
                    if queue or reruns:   # nothing runs, yet something waits: a bug
                        raise RuntimeError("the scheduler has tickets waiting on nothing")
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                # Every ticket that finished meanwhile is integrated in one pass, in phase
                # order, and the result published once, before any of them is final.
                batch = sorted(((*running.pop(f), f.result()) for f in done),
                               key=lambda item: queue.order[item[0].id])
                for ticket, _, _ in batch:
                    queue.ended(ticket.id)
                batch = [(ticket, attempt, integrate(outcome)
                          if outcome.status == TicketStatus.COLLECTING else outcome)
                         for ticket, attempt, outcome in batch]
                publish()
                for ticket, attempt, outcome in batch:
                    settle(ticket, attempt, outcome)
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
