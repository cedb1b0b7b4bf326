"""`runner status`: the runs of a repo, or one run's tickets, from their run.json."""

from __future__ import annotations

import time
from pathlib import Path

from rich.table import Table
from rich.text import Text

from runner.errors import InputError
from runner.events import TicketStatus
from runner.progress import STATUS_STYLE
from runner.run import RunResult, load_result
from runner.runlock import is_driven


def run_state(result: RunResult) -> str:
    """running, finished or interrupted; a run whose runner is gone was interrupted."""
    if is_driven(result.run_dir):       # whatever the record says: resume is claiming it
        return "running"
    return "interrupted" if result.state == "running" else result.state


def runs(state_dir: Path) -> list[RunResult]:
    if not state_dir.is_dir():
        return []
    found = [load_result(p) for p in sorted(state_dir.iterdir()) if (p / "run.json").is_file()]
    return sorted(found, key=lambda r: r.started)


def list_runs(state_dir: Path) -> Table:
    table = Table(title=f"runs in {state_dir}")
    for name in ("run", "phase", "started", "state", "integrated", "cost", "exit"):
        table.add_column(name)
    for result in runs(state_dir):
        integrated = sum(o.status == TicketStatus.INTEGRATED for o in result.outcomes.values())
        state = run_state(result)
        table.add_row(result.run_id, result.phase,
                      time.strftime("%Y-%m-%d %H:%M", time.localtime(result.started)), state,
                      f"{integrated}/{len(result.outcomes)}",
                      f"${sum(o.cost for o in result.outcomes.values()):.4f}",
                      str(result.exit_code) if state == "finished" else "-")
    return table


def run_table(run_dir: Path) -> Table:
    if not (run_dir / "run.json").is_file():
        raise InputError(f"no run {run_dir.name!r} in {run_dir.parent}; `runner status` lists "
                         "the runs")
    result = load_result(run_dir)
    table = Table(title=f"run {result.run_id} — phase {result.phase} — {run_state(result)}")
    for name in ("ticket", "state", "tier", "model", "tokens", "cost", "time", "fix loops",
                 "reruns", "why"):
        table.add_column(name)
    for o in result.outcomes.values():
        seconds = f"{o.ended - o.started:.1f}s" if o.started else "-"
        table.add_row(o.ticket, Text(str(o.status), STATUS_STYLE.get(o.status, "")), o.tier,
                      o.model or "-", f"{o.tokens:,}", f"${o.cost:.4f}", seconds,
                      str(o.fix_loops), str(o.reruns), Text(o.reason))
    return table
