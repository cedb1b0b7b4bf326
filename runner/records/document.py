"""The machine-readable result of a run (`--json`): a pydantic model, so CI tools and tests
can validate what they read."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pydantic import BaseModel, field_validator

from runner.host import ticket_ref
from runner.records.record import RunResult, per_tier
from runner.text import valid_unicode


def _unicode(value: Any) -> Any:
    """Strings as JSON can carry them: bytes a worker chose that are not UTF-8 (file names
    git gave us as surrogates) become U+FFFD; the exact bytes stay in git."""
    if isinstance(value, str):
        return valid_unicode(value)
    if isinstance(value, list | tuple):
        return [_unicode(v) for v in value]
    return value


class _Document(BaseModel):
    @field_validator("*", mode="before")
    @classmethod
    def _valid_unicode(cls, value: Any) -> Any:
        return _unicode(value)


class AttemptDocument(_Document):
    number: int                   # 0 the first run, n the n-th rerun
    start: str | None             # the commit it started from
    result: str                   # integrated | conflicted | failed | changed nothing | stopped
    reason: str
    tip: str | None
    ref: str | None               # where its commits are kept
    conflicts_with: list[str]
    files: list[str]
    seconds: float


class TicketDocument(_Document):
    id: str
    status: str
    reason: str
    commits: int
    ref: str | None               # refs/runner/<run>/<id> when it holds commits
    start: str | None             # the commit its last attempt started from
    conflict: bool                # it conflicted with integrated work (in any attempt)
    conflicts_with: list[str]
    conflict_files: list[str]
    attempts: list[AttemptDocument]
    seconds: float                # all its attempts' time
    tier: str
    model: str
    tokens: int
    cost_usd: float
    fix_loops: int
    retries: int
    turns: int
    reruns: int
    reviews: list[str]
    fetched: FetchedDocument      # through the dependency cache


class FetchedDocument(_Document):
    cache_requests: int           # served from the cache
    cache_bytes: int
    upstream_requests: int        # the cache fetched upstream for it
    upstream_bytes: int
    failed: int                   # could not be served (refused, upstream unreachable)


class TierDocument(_Document):
    models: list[str]
    tickets: int
    integrated: int
    fix_loops: int
    tokens: int
    cost_usd: float


class RunDocument(_Document):
    run_id: str
    phase: str
    state: str
    exit_code: int
    base: str
    target: str
    target_sha: str | None
    run_dir: str
    seconds: float
    checks_passed: bool | None
    checks_reason: str
    preflight: str
    refused: str              # why no ticket started (the image, the self-test); "" if any did
    culprit: str | None
    landed: str
    tickets: list[TicketDocument]
    tiers: dict[str, TierDocument]


def run_document(result: RunResult) -> RunDocument:
    return RunDocument(
        run_id=result.run_id, phase=result.phase, state=result.state,
        exit_code=result.exit_code, base=result.base_sha, target=result.target,
        target_sha=result.target_sha, run_dir=str(result.run_dir),
        seconds=round(result.ended - result.started, 3), checks_passed=result.checks_passed,
        checks_reason=result.checks_reason, preflight=result.preflight,
        refused=result.refused, culprit=result.culprit, landed=result.landed,
        tickets=[TicketDocument(
            id=o.ticket, status=str(o.status), reason=o.reason, commits=o.commits,
            ref=ticket_ref(result.run_id, o.ticket) if o.committed else None,
            start=o.start, conflict=o.conflict, conflicts_with=list(o.conflicts_with),
            conflict_files=list(o.conflict_files),
            attempts=[AttemptDocument(
                number=a.number, start=a.start, result=a.result, reason=a.reason, tip=a.tip,
                ref=a.ref, conflicts_with=list(a.conflicts_with), files=list(a.files),
                seconds=round(a.seconds, 3)) for a in o.attempts],
            seconds=round(o.seconds, 3), tier=o.tier, model=o.model,
            tokens=o.tokens, cost_usd=round(o.cost, 6), fix_loops=o.fix_loops,
            retries=o.retries, turns=o.turns, reruns=o.reruns, reviews=list(o.reviews),
            fetched=FetchedDocument(**asdict(o.fetched)))
            for o in result.outcomes.values()],
        tiers={tier: TierDocument(**asdict(row)) for tier, row in per_tier(result).items()})
