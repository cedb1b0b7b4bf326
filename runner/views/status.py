"""`runner status`: the runs of a repo, or one run's tickets, from their run.json."""

from __future__ import annotations

import time
from pathlib import Path

from runner.errors import InputError
from runner.host import is_driven
from runner.records import RunResult, TicketStatus, load_result
from runner.views.summary import tickets_grid
from runner.views.tables import Grid


def run_state(result: RunResult) -> str:
    """running, finished, refused or interrupted; a run whose runner is gone was
    interrupted."""
    if is_driven(result.run_dir):       # whatever the record says: resume is claiming it
        return "running"
    return "interrupted" if result.state == "running" else result.state


def runs(state_dir: Path) -> list[RunResult]:
    if not state_dir.is_dir():
        return []
    found = []
    for run_dir in sorted(state_dir.iterdir()):
        if (run_dir / "run.json").is_file():
            try:
                found.append(load_result(run_dir))
            except (ValueError, TypeError, KeyError, OSError):   # a record no run wrote whole
                continue
    return sorted(found, key=lambda r: r.started)


def list_runs(state_dir: Path) -> Grid:
    grid = Grid(f"runs in {state_dir}",
                ("run", "phase", "started", "state", "integrated", "cost", "exit"),
                optional=frozenset({"cost"}))
    for result in runs(state_dir):
        integrated = sum(o.status == TicketStatus.INTEGRATED for o in result.outcomes.values())
        state = run_state(result)
        grid.add(result.run_id, result.phase,
                 time.strftime("%Y-%m-%d %H:%M", time.localtime(result.started)), state,
                 f"{integrated}/{len(result.outcomes)}",
                 f"${sum(o.cost for o in result.outcomes.values()):.4f}",
                 str(result.exit_code) if state in ("finished", "refused") else "-")
    return grid


def run_table(run_dir: Path) -> Grid:
    if not (run_dir / "run.json").is_file():
        raise InputError(f"no run {run_dir.name!r} in {run_dir.parent}; `runner status` lists "
                         "the runs")
    result = load_result(run_dir)
    state = run_state(result)
    if state == "refused":
        state = f"refused: {result.refused}"
    return tickets_grid(result, f"run {result.run_id} — phase {result.phase} — {state}")
