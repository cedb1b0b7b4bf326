"""The machine-readable result of a run (`--json`): a pydantic model, so CI tools and tests
can validate what they read."""

from __future__ import annotations

from pydantic import BaseModel

from runner.run import RunResult


class TicketDocument(BaseModel):
    id: str
    status: str
    reason: str
    commits: int
    ref: str | None
    seconds: float
    tier: str
    model: str
    tokens: int
    cost_usd: float
    fix_loops: int
    retries: int
    turns: int
    reruns: int
    reviews: list[str]


class TierDocument(BaseModel):
    tickets: int
    tokens: int
    cost_usd: float


class RunDocument(BaseModel):
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
    culprit: str | None
    landed: str
    tickets: list[TicketDocument]
    tiers: dict[str, TierDocument]


def tier_totals(result: RunResult) -> dict[str, tuple[int, int, float]]:
    totals: dict[str, tuple[int, int, float]] = {}
    for o in result.outcomes.values():
        n, tokens, cost = totals.get(o.tier, (0, 0, 0.0))
        totals[o.tier] = (n + 1, tokens + o.tokens, cost + o.cost)
    return totals


def run_document(result: RunResult) -> RunDocument:
    return RunDocument(
        run_id=result.run_id, phase=result.phase, state=result.state,
        exit_code=result.exit_code, base=result.base_sha, target=result.target,
        target_sha=result.target_sha, run_dir=str(result.run_dir),
        seconds=round(result.ended - result.started, 3), checks_passed=result.checks_passed,
        checks_reason=result.checks_reason, preflight=result.preflight,
        culprit=result.culprit, landed=result.landed,
        tickets=[TicketDocument(
            id=o.ticket, status=str(o.status), reason=o.reason, commits=o.commits,
            ref=f"refs/runner/{result.run_id}/{o.ticket}" if o.tip else None,
            seconds=round(max(0.0, o.ended - o.started), 3), tier=o.tier, model=o.model,
            tokens=o.tokens, cost_usd=round(o.cost, 6), fix_loops=o.fix_loops,
            retries=o.retries, turns=o.turns, reruns=o.reruns, reviews=list(o.reviews))
            for o in result.outcomes.values()],
        tiers={tier: TierDocument(tickets=n, tokens=tokens, cost_usd=round(cost, 6))
               for tier, (n, tokens, cost) in tier_totals(result).items()})
