"""A run's record: RunResult in memory; on disk run.json, written whole (atomically) when
the run starts, stops or finishes, and beside it outcomes.jsonl, one line appended per
ticket outcome since: a ticket costs one line, not a rewrite of every ticket before it.
Read back (the two together) by status, report, clean and resume."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from runner.errors import EnvironmentProblem, InputError, SelfTestFailed
from runner.records.events import TicketStatus
from runner.records.journal import write_atomic
from runner.records.outcome import SUCCEEDED, Attempt, Fetched, TicketOutcome

PHASE_COPY = "phase.yaml"          # the phase file as the run started, for resume
PHASE_CHECKS = "_checks"   # the phase gate's pseudo-ticket, its log logs/_checks.log (ids starting
                           # with _ are ours)
OUTCOME_LOG = "outcomes.jsonl"     # outcomes since run.json was last written whole


SELFTEST_SPAN, CHECKS_SPAN, GAP_SPAN = "self-test", "phase checks", "not running"
ASKED_LIMIT = 2000     # characters of a ticket's prompt or script the record keeps


@dataclass(frozen=True)
class Asked:
    """What a ticket was asked, kept in the run's record: `show` and `report` read it there,
    with no phase file to load (its schema's cost)."""

    title: str = ""
    agent: str = ""
    asked: str = ""                  # its prompt, or its script (the start of it)
    depends_on: tuple[str, ...] = ()

    @classmethod
    def of(cls, ticket: AskedTicket) -> Asked:
        asked = ticket.prompt if ticket.prompt is not None else ticket.run or ""
        return cls(title=ticket.title or "", agent=str(ticket.agent),
                   asked=asked[:ASKED_LIMIT], depends_on=tuple(ticket.depends_on))


class AskedTicket(Protocol):
    """What Asked takes of a phase's ticket (runner.phase.Ticket)."""

    title: str
    agent: str
    prompt: str | None
    run: str | None
    depends_on: list[str]


@dataclass
class RunResult:
    run_id: str
    phase: str
    base_sha: str
    target: str
    run_dir: Path
    outcomes: dict[str, TicketOutcome]
    started: float
    ended: float = 0.0
    target_sha: str | None = None
    checks_passed: bool | None = None    # None: the phase has no checks
    checks_reason: str = ""
    preflight: str = "skipped"           # the isolation self-test's outcome
    culprit: str | None = None           # the ticket from which the phase checks fail
    landed: str = ""                     # with --land: what happened to base
    state: str = "running"               # running | interrupted | finished | refused
    refused: str = ""                    # why the self-test refused it (no ticket started)
    options: dict[str, object] = field(default_factory=dict)
    integrated: list[list[str]] = field(default_factory=list)   # [ticket, head after], in order
    # What the run did besides its tickets, for its timeline: [what, start, end] in epoch
    # seconds, what being SELFTEST_SPAN, CHECKS_SPAN or GAP_SPAN (no runner drove it).
    spans: list[list] = field(default_factory=list)
    tickets: list[str] = field(default_factory=list)   # the phase's, in its order
    asked: dict[str, Asked] = field(default_factory=dict)   # by ticket ({}: recorded before)

    @property
    def exit_code(self) -> int:
        if self.state == "refused":
            return SelfTestFailed.exit_code
        if self.state == "interrupted":     # not ended on its merits: a resume finishes it
            return EnvironmentProblem.exit_code
        ok = all(o.status in SUCCEEDED for o in self.outcomes.values())
        landing = not self.landed.startswith("not landed")   # --land was asked for
        return 0 if ok and self.checks_passed is not False and landing else 1


@dataclass
class TierTotals:
    """A tier's tickets and what its models did for them."""

    models: list[str]
    tickets: int = 0
    integrated: int = 0
    fix_loops: int = 0
    tokens: int = 0
    cost_usd: float = 0.0


def per_tier(result: RunResult) -> dict[str, TierTotals]:
    """Model performance per tier ("-": tickets that never ran, so have no tier)."""
    rows: dict[str, TierTotals] = {}
    for o in result.outcomes.values():
        row = rows.setdefault(o.tier or "-", TierTotals(models=[]))
        if o.model and o.model not in row.models:
            row.models = sorted([*row.models, o.model])
        row.tickets += 1
        row.integrated += o.status == TicketStatus.INTEGRATED
        row.fix_loops += o.fix_loops
        row.tokens += o.tokens
        row.cost_usd = round(row.cost_usd + o.cost, 6)
    return rows


def write_state(result: RunResult) -> None:
    """Atomically record the whole run (run.json), folding in the outcomes appended since:
    a crash never leaves half a file, and resume knows what finished."""
    data = asdict(result) | {"run_dir": str(result.run_dir), "exit_code": result.exit_code}
    write_atomic(result.run_dir / "run.json", json.dumps(data, indent=2, default=str))
    (result.run_dir / OUTCOME_LOG).unlink(missing_ok=True)   # all of it is in run.json now


def record_outcome(result: RunResult, outcome: TicketOutcome, *, steps_from: int) -> None:
    """Add one ticket's outcome to the record, with the integration steps from
    ``steps_from`` on (those it added): one line appended, so a crash at any point leaves
    every earlier line whole (and at worst a torn last one, which a read skips)."""
    line = json.dumps({"outcome": asdict(outcome), "steps_from": steps_from,
                       "steps": result.integrated[steps_from:]}, default=str)
    with open(result.run_dir / OUTCOME_LOG, "a") as log:
        log.write(line + "\n")


def load_result(root: Path) -> RunResult:
    """A run's record, as run.json holds it."""
    try:
        data = json.loads((root / "run.json").read_text())
    except FileNotFoundError as e:
        raise InputError(f"no run at {root}; `runner status` lists the runs") from e
    fields = {f.name for f in dataclasses.fields(RunResult)}
    data = {k: v for k, v in data.items() if k in fields}
    data["run_dir"] = root          # where it is now, even if the repo moved since
    _replay(root / OUTCOME_LOG, data)
    data["asked"] = {t: Asked(**{k: v for k, v in a.items() if k in _ASKED} |
                              {"depends_on": tuple(a.get("depends_on") or ())})
                     for t, a in (data.get("asked") or {}).items()}
    known = {f.name for f in dataclasses.fields(TicketOutcome)}
    data["outcomes"] = {t: TicketOutcome(**{k: v for k, v in o.items() if k in known}
                                         | {"status": TicketStatus(o["status"]),
                                            "reviews": tuple(o.get("reviews", ())),
                                            "conflicts_with": tuple(o.get("conflicts_with", ())),
                                            "conflict_files": tuple(o.get("conflict_files", ())),
                                            "attempts": tuple(_attempt(a) for a in
                                                              o.get("attempts", ())),
                                            "fetched": Fetched(**o.get("fetched") or {})})
                        for t, o in data["outcomes"].items()}
    return RunResult(**data)


_ASKED = {f.name for f in dataclasses.fields(Asked)}


def _attempt(data: dict[str, object]) -> Attempt:
    known = {f.name for f in dataclasses.fields(Attempt)}
    fields = {k: v for k, v in data.items() if k in known}
    for name in ("conflicts_with", "files"):
        fields[name] = tuple(fields.get(name) or ())   # type: ignore[arg-type]
    return Attempt(**fields)   # type: ignore[arg-type]


def _replay(log: Path, data: dict) -> None:
    """The outcomes appended since run.json was written, over it, in order."""
    try:
        lines = log.read_text().splitlines()
    except FileNotFoundError:
        return
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:          # the torn last line of a runner killed mid-write
            break
        data["outcomes"][entry["outcome"]["ticket"]] = entry["outcome"]
        data["integrated"] = data.get("integrated", [])[:entry["steps_from"]] + entry["steps"]
