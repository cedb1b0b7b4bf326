"""What a run tells a person about its tickets: the summary at its end and `runner status
RUN`, one row per ticket, from the same record."""

from __future__ import annotations

from runner.records import RunResult, per_tier
from runner.text import one_line
from runner.views.progress import STATUS_STYLE
from runner.views.tables import Cell, Grid

COLUMNS = ("ticket", "result", "tier", "model", "commits", "tokens", "cost", "fix loops",
           "reruns", "time", "why")
# Left out when they say nothing for the run (a script-only phase has no model, no tokens).
OPTIONAL = frozenset({"tier", "model", "tokens", "cost", "fix loops", "reruns"})


def tickets_grid(result: RunResult, title: str) -> Grid:
    grid = Grid(title, COLUMNS, optional=OPTIONAL)
    for o in result.outcomes.values():
        why = o.reason
        if result.culprit == o.ticket:
            why = "; ".join(filter(None, [why, "the phase checks fail from this ticket on"]))
        grid.add(o.ticket, Cell(str(o.status), STATUS_STYLE.get(o.status, "")),
                 o.tier if o.model else "-",      # a tier picks a model: none, no tier
                 o.model or "-", str(o.commits), f"{o.tokens:,}", f"${o.cost:.4f}",
                 str(o.fix_loops), str(o.reruns), f"{o.seconds:.1f}s" if o.started else "-",
                 why)
    return grid


def closing_lines(result: RunResult) -> list[str]:
    """What follows the table: spend per tier, the phase checks, landing, where things are."""
    lines = []
    spent = [f"{tier} {row.tokens:,} tokens ${row.cost_usd:.4f}"
             for tier, row in per_tier(result).items() if row.tokens]
    if spent:
        lines.append("per tier: " + "; ".join(spent))
    if result.checks_passed is not None:
        lines.append("phase checks: " + ("passed" if result.checks_passed else
                                         f"FAILED: {one_line(result.checks_reason)}"))
    if result.landed:
        lines.append(result.landed)
    where = f"{result.target} at {result.target_sha[:12]}" if result.target_sha else "not moved"
    lines.append(f"target: {where}   raw commits: refs/runner/{result.run_id}/<ticket>   "
                 f"logs: {result.run_dir / 'logs'}   ({result.ended - result.started:.1f}s)")
    return lines
