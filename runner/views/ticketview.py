"""One ticket's story on one screen (`runner show`): what it was asked, what ran, what its
checks and gates said, each attempt (conflicts, reruns), what it cost, where its work is.

Everything a worker chose (output, reasons quoting it, file names) is made printable here;
the lines are plain text for any sink."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from runner.records import Asked, Attempt, Fetched, RunResult, TicketOutcome, TicketStatus
from runner.text import one_line

CHECK_TAIL = 8       # lines of a check's output shown


@dataclass(frozen=True)
class CheckRun:
    command: str
    verdict: str           # "passed", "exited with 1", "timed out", ...; "" if it never ended
    tail: tuple[str, ...]  # its last lines of output
    cut: int = 0           # lines before those


def check_runs(log: Path) -> list[CheckRun]:
    """Each check as the ticket's log tells it: runner's own lines (`$ [check] …`, `[check]
    …: …`) around the worker's (each begins "| ", so none can pass for runner's)."""
    runs: list[CheckRun] = []
    command, output = None, []
    try:
        # "\n" only: a worker's "\r" (or any other break splitlines knows) stays inside its
        # "| " line, so no line it prints can pass for runner's own.
        lines = log.read_bytes().decode("utf-8", "replace").split("\n")   # no newline
        # translation either: read_text would make each "\r" a line break
    except FileNotFoundError:
        return runs
    for line in lines:
        if line.startswith("$ [check] "):
            command, output = line.removeprefix("$ [check] "), []
        elif command is not None and line.startswith("| "):
            output.append(line.removeprefix("| "))
        elif command is not None and line.startswith("[check] "):
            verdict = line.removeprefix("[check] ").removesuffix(f": {command}")
            runs.append(_check(command, verdict, output))
            command = None
    if command is not None:
        runs.append(_check(command, "", output))
    return runs


def _check(command: str, verdict: str, output: list[str]) -> CheckRun:
    return CheckRun(command, verdict, tuple(output[-CHECK_TAIL:]),
                    max(0, len(output) - CHECK_TAIL))


def ticket_story(result: RunResult, ticket: Asked | None, outcome: TicketOutcome) -> Iterator[str]:
    """The lines of `runner show` for ``outcome`` (``ticket``: what it was asked, when the
    run's record has it)."""
    title = f" — {one_line(ticket.title)}" if ticket and ticket.title else ""
    yield f"{outcome.ticket}{title}"
    yield f"  status   {outcome.status}" + (f": {one_line(outcome.reason)}"
                                             if outcome.reason else "")
    if ticket is not None:
        yield f"  agent    {ticket.agent}" + (f", model {outcome.model} ({outcome.tier} tier)"
                                              if outcome.model else "")
        if ticket.asked:
            yield f"  asked    {one_line(ticket.asked)[:300]}"
        if ticket.depends_on:
            yield f"  after    {', '.join(ticket.depends_on)}"
    if outcome.status == TicketStatus.INTEGRATED:     # integration follows every gate
        yield "  gates    passed"
    if outcome.start:
        yield f"  start    {outcome.start[:12]}"
    yield (f"  commits  {outcome.commits}" + (f", tip {outcome.tip[:12]}" if outcome.tip else ""))
    if outcome.tokens or outcome.cost:
        yield f"  spent    {outcome.tokens:,} tokens, ${outcome.cost:.4f}"
    if outcome.fetched.any:
        yield f"  fetched  {fetched_line(outcome.fetched)}"
    if outcome.fix_loops or outcome.turns:
        yield f"  worked   {outcome.turns} turns, {outcome.fix_loops} fix loops"
    for number, verdict in enumerate(outcome.reviews, 1):
        yield f"  review {number}  {one_line(verdict)}"
    checks = check_runs(result.run_dir / "logs" / f"{outcome.ticket}.log")
    if checks:
        yield "  checks"
        for check in checks:
            yield f"    {one_line(check.verdict or 'did not end')}: {one_line(check.command)}"
            if check.tail and check.verdict != "passed":
                if check.cut:
                    yield f"      [… {check.cut} lines before]"
                yield from (f"      | {one_line(line)}" for line in check.tail)
    attempts = list(outcome.attempts)
    if len(attempts) > 1:
        yield "  attempts"
        yield from (f"    {line}" for line in _attempt_lines(attempts))
    yield "  refs"
    if outcome.ref:
        yield f"    {outcome.ref}"
    yield from (f"    {a.ref}  (attempt {a.number + 1})" for a in attempts[:-1] if a.ref)
    if not outcome.ref and not any(a.ref for a in attempts):
        yield "    none: it committed nothing"


def _attempt_lines(attempts: list[Attempt]) -> Iterator[str]:
    for attempt in attempts:
        when = time.strftime("%H:%M:%S", time.localtime(attempt.started)) if attempt.started \
            else "-"
        start = attempt.start[:12] if attempt.start else "-"
        line = (f"{attempt.number + 1}. {when} from {start}, {attempt.seconds:.1f}s: "
                f"{attempt.result}")
        if attempt.result == "conflicted":
            whom = ", ".join(attempt.conflicts_with) or "the integrated work"
            line += f" with {whom}" + (f" in {', '.join(one_line(f) for f in attempt.files[:10])}"
                                       if attempt.files else "")
        elif attempt.reason and attempt.result != "integrated":
            line += f" ({one_line(attempt.reason)})"
        yield line


def fetched_line(fetched: Fetched) -> str:
    """What a ticket's tools got through the dependency cache, in a line."""
    line = (f"{fetched.cache_requests} from the cache ({size(fetched.cache_bytes)}), "
            f"{fetched.upstream_requests} from upstream ({size(fetched.upstream_bytes)})")
    return line + (f", {fetched.failed} not served" if fetched.failed else "")


def size(count: float) -> str:
    """A byte count as a person reads it: 512 B, 11.2 KB, 3.4 MB."""
    unit = "B"
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            break
        count /= 1024
    return f"{int(count)} B" if unit == "B" else f"{count:.1f} {unit}"
