"""Which run and which ticket a person means. A run is named by its id, or by ``latest`` (or
nothing): the newest run. A ticket is named by its id or by a prefix that only it has."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runner.errors import InputError
from runner.records import (PHASE_COPY, Asked, Attempt, RunResult, TicketOutcome, attempt_of,
                            load_result)
from runner.text import quoted
from runner.views.status import runs

LATEST = "latest"


def pick_run(state_dir: Path, run_id: str | None) -> RunResult:
    if run_id in (None, LATEST):
        found = runs(state_dir)
        if not found:
            raise InputError(f"no runs under {state_dir}; `runner run PHASE.yaml` makes one")
        return found[-1]
    if not (state_dir / run_id / "run.json").is_file():
        known = [r.run_id for r in runs(state_dir)]
        raise InputError(f"no run {quoted(run_id)} under {state_dir}; runs there: "
                         + (", ".join(known[-5:]) if known else "none")
                         + " (or `latest`)")
    return load_result(state_dir / run_id)


def ticket_ids(result: RunResult) -> list[str]:
    """The run's tickets in the phase's order (as its record keeps it; the phase as it ran,
    for a run recorded before it did), then any other it recorded."""
    ids = list(result.tickets)
    if not ids:
        from runner.phase import load_phase     # the schema's cost, only for such a run

        try:
            ids = [t.id for t in load_phase(result.run_dir / PHASE_COPY).tickets]
        except (OSError, InputError):
            ids = []
    return ids + [t for t in result.outcomes if t not in ids]


def asked_of(result: RunResult) -> dict[str, Asked]:
    """What each ticket was asked, as the run's record keeps it (the phase as it ran, for a
    run recorded before it did; {} if that cannot be read either)."""
    if result.asked:
        return result.asked
    from runner.phase import load_phase     # the schema's cost, only for such a run

    try:
        return {t.id: Asked.of(t) for t in load_phase(result.run_dir / PHASE_COPY).tickets}
    except (OSError, InputError):
        return {}


def pick_ticket(result: RunResult, name: str) -> str:
    """The ticket ``name`` means in ``result``: its id, or the one id that starts so."""
    ids = ticket_ids(result)
    if name in ids:
        return name
    matches = [t for t in ids if t.startswith(name)]
    if len(matches) == 1:
        return matches[0]
    shown = ", ".join((matches or ids)[:10]) + (" …" if len(matches or ids) > 10 else "")
    if matches:
        raise InputError(f"TICKET {quoted(name)} could be any of {shown} in run "
                         f"{result.run_id}; give more of its id")
    raise InputError(f"run {result.run_id} has no ticket {quoted(name)}; its tickets: "
                     f"{shown or 'none'}")


@dataclass(frozen=True)
class Picked:
    result: RunResult
    ticket: str

    @property
    def outcome(self) -> TicketOutcome:
        """Its final outcome; an error when it has none yet (still running, or never run)."""
        found = self.result.outcomes.get(self.ticket)
        if found is None:
            raise InputError(f"{self.ticket} of run {self.result.run_id} has not ended yet "
                             "(or never started); `runner logs` follows it, `runner status` "
                             "shows where the run is")
        return found

    def attempts(self) -> list[Attempt]:
        """Every run of the ticket, in order (one, when it never ran again)."""
        outcome = self.outcome
        return list(outcome.attempts) or [attempt_of(outcome, 0)]

    def attempt(self, number: int | None) -> Attempt:
        """Attempt ``number`` (1 is the first run; None: the last)."""
        attempts = self.attempts()
        if number is None:
            return attempts[-1]
        if not 1 <= number <= len(attempts):
            raise InputError(f"--attempt {number}: {self.ticket} ran {len(attempts)} "
                             f"time{'s' if len(attempts) > 1 else ''} (1 is its first run)")
        return attempts[number - 1]


def pick(state_dir: Path, run_id: str | None, ticket: str) -> Picked:
    result = pick_run(state_dir, run_id)
    return Picked(result, pick_ticket(result, ticket))
