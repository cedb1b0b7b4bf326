"""`runner stats`: across every run of a repo, per tier and model, the numbers the seed team
gathered by hand to decide which model fits which tier."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from runner.records import TicketStatus
from runner.views.status import runs
from runner.views.tables import Grid


def stats_table(state_dir: Path) -> Grid:
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for result in runs(state_dir):
        for outcome in result.outcomes.values():
            if outcome.status != TicketStatus.SKIPPED:
                groups[(outcome.tier or "-", outcome.model or "-")].append(outcome)
    table = Grid(f"tickets of all runs in {state_dir}",
                 ("tier", "model", "tickets", "success", "fix-loop rate", "mean tokens",
                  "mean cost"))
    for (tier, model), outcomes in sorted(groups.items()):
        n = len(outcomes)
        table.add(tier, model, str(n),
                      f"{sum(o.status == TicketStatus.INTEGRATED for o in outcomes) / n:.0%}",
                      f"{sum(o.fix_loops > 0 for o in outcomes) / n:.0%}",
                      f"{sum(o.tokens for o in outcomes) / n:,.0f}",
                      f"${sum(o.cost for o in outcomes) / n:.4f}")
    return table
