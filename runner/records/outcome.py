"""A ticket's outcome, and each attempt of it: what the lead records, reports and resumes
from. Plain data and the rules that tell a ticket's story; no Docker, no git."""

from __future__ import annotations

from dataclasses import astuple, dataclass, replace

from runner.host import kept_beside
from runner.records.events import TicketStatus

NOTHING_CHANGED = "it changed nothing"
SUCCEEDED = (TicketStatus.INTEGRATED,)


@dataclass(frozen=True)
class CheckResult:
    """A ticket's checks, run: the first failure is the result."""

    ok: bool
    reason: str = ""              # which check failed, and how
    output: str = ""              # what it printed (for a fix loop)


@dataclass(frozen=True)
class Fetched:
    """What a ticket's tools fetched through the dependency cache: requests and bytes it
    was served from the cache, and that the cache fetched upstream for it."""

    cache_requests: int = 0
    cache_bytes: int = 0
    upstream_requests: int = 0
    upstream_bytes: int = 0
    failed: int = 0               # requests it could not be served (refused, unreachable)

    def __add__(self, other: Fetched) -> Fetched:
        return Fetched(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))

    @property
    def any(self) -> bool:
        return any(astuple(self))


@dataclass(frozen=True)
class Attempt:
    """One run of a ticket: the first (0), or a rerun after a conflict or a stop from
    outside. A ticket's outcome keeps all of them, so its story is never lost."""

    number: int
    start: str | None
    started: float
    ended: float
    result: str                   # integrated | conflicted | failed | changed nothing | stopped
    reason: str = ""
    tip: str | None = None
    ref: str | None = None        # where its commits are kept
    conflicts_with: tuple[str, ...] = ()
    files: tuple[str, ...] = ()   # the files it conflicted in

    @property
    def seconds(self) -> float:
        return max(0.0, self.ended - self.started) if self.started else 0.0


@dataclass(frozen=True)
class TicketOutcome:
    ticket: str
    status: TicketStatus
    reason: str = ""
    start: str | None = None
    tip: str | None = None
    ref: str | None = None        # where this attempt's commits are kept (None: it made none)
    commits: int = 0
    started: float = 0.0
    ended: float = 0.0
    tier: str = ""
    model: str = ""
    tokens: int = 0
    cost: float = 0.0
    fix_loops: int = 0
    retries: int = 0
    turns: int = 0
    conflict: bool = False        # integration conflicted (in any attempt)
    conflicts_with: tuple[str, ...] = ()   # the integrated tickets it conflicted with
    conflict_files: tuple[str, ...] = ()   # and in which files
    reruns: int = 0
    reviews: tuple[str, ...] = ()  # the review gate's verdicts, in order
    infra: bool = False           # its container was stopped from outside (docker kill)
    interrupted: bool = False     # the run was interrupted while it worked (resume redoes it)
    attempts: tuple[Attempt, ...] = ()     # every run of it, in order (when it ran at all)
    fetched: Fetched = Fetched()  # through the dependency cache, all attempts together

    @property
    def seconds(self) -> float:
        """The ticket's time: all its attempts', not the waits between them."""
        if self.attempts:
            return sum(a.seconds for a in self.attempts)
        return max(0.0, self.ended - self.started) if self.started else 0.0

    @property
    def committed(self) -> bool:
        """Whether its ref holds commits: some attempt of it committed something."""
        return bool(self.tip) or any(a.tip for a in self.attempts)


def attempt_of(outcome: TicketOutcome, number: int) -> Attempt:
    if outcome.status == TicketStatus.INTEGRATED:
        result = "integrated"
    elif outcome.conflict:
        result = "conflicted"
    elif outcome.infra:
        result = "stopped"
    elif outcome.reason == NOTHING_CHANGED:
        result = "changed nothing"
    else:
        result = "failed"
    return Attempt(number=number, start=outcome.start, started=outcome.started,
                   ended=outcome.ended, result=result, reason=outcome.reason, tip=outcome.tip,
                   ref=outcome.ref, conflicts_with=outcome.conflicts_with,
                   files=outcome.conflict_files)


def with_attempts(earlier: list[TicketOutcome], last: TicketOutcome) -> TicketOutcome:
    """The final outcome of a ticket that ran ``len(earlier) + 1`` times: every attempt
    recorded, where each one's commits are kept, time summed, and a reason that tells the
    whole story when it took more than one run."""
    attempts = [attempt_of(o, n) for n, o in enumerate([*earlier, last])]
    for n, attempt in enumerate(attempts[:-1]):
        if attempt.ref:          # rerun n+1 moved its commits aside when it started
            attempts[n] = replace(attempt, ref=kept_beside(attempt.ref, str(n + 1)))
    first = earlier[0] if earlier else last
    reason = last.reason if not earlier else _story(last, attempts)
    return replace(last, reason=reason, attempts=tuple(attempts), started=first.started,
                   conflict=any(a.result == "conflicted" for a in attempts),
                   conflicts_with=tuple(dict.fromkeys(t for a in attempts
                                                      for t in a.conflicts_with)),
                   conflict_files=tuple(dict.fromkeys(f for a in attempts for f in a.files)))


def _story(last: TicketOutcome, attempts: list[Attempt]) -> str:
    said = []
    for attempt in attempts[:-1]:
        said.append(conflict_reason(attempt.conflicts_with, attempt.files)
                    if attempt.result == "conflicted" else
                    "its container was stopped from outside" if attempt.result == "stopped"
                    else attempt.reason)
    final = attempts[-1]
    start = f" from {final.start[:12]}" if final.start else ""
    said.append(f"rerun {final.number}{start}: "
                + ("integrated" if final.result == "integrated" else final.reason))
    kept = [a for a in attempts[:-1] if a.ref]
    if final.result != "integrated" and kept:
        said[-1] += (f", so {last.ticket}'s change is not on the target (attempt "
                     f"{kept[-1].number + 1} kept at {kept[-1].ref})")
    return "; ".join(said)


def conflict_reason(tickets: tuple[str, ...], files: tuple[str, ...],
                    count: int | None = None) -> str:
    """``files``: the first of them (``count``: how many there are, when more)."""
    more = max(count or 0, len(files)) - min(len(files), 10)
    shown = ", ".join(files[:10]) + (f" and {more:,} more" if more else "")
    whom = f"with {', '.join(tickets)} " if tickets else "with the integrated work "
    return f"conflicted {whom}in {shown}" if files else f"conflicted {whom}".rstrip()
