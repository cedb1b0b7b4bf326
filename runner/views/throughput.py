"""How parallel a run was: wall time, ticket time, the critical path through depends_on."""

from __future__ import annotations

from collections.abc import Mapping
from graphlib import TopologicalSorter

from runner.records import Asked, RunResult


def critical_path(result: RunResult, asked: Mapping[str, Asked]) -> float:
    """The longest chain of ticket times through depends_on (in dependency order, without
    recursion: a chain of a thousand tickets would overflow Python's)."""
    deps = {t: [d for d in a.depends_on if d in result.outcomes] for t, a in asked.items()
            if t in result.outcomes}
    longest: dict[str, float] = {}
    for ticket in TopologicalSorter(deps).static_order():
        longest[ticket] = result.outcomes[ticket].seconds + max(
            (longest[d] for d in deps[ticket]), default=0.0)
    return max(longest.values(), default=0.0)


def throughput(result: RunResult, asked: Mapping[str, Asked]) -> dict[str, float]:
    wall = max(0.0, result.ended - result.started)
    total = sum(o.seconds for o in result.outcomes.values())
    path = critical_path(result, asked)
    return {"wall_seconds": round(wall, 2), "ticket_seconds": round(total, 2),
            "critical_path_seconds": round(path, 2),
            "speedup": round(total / wall, 2) if wall else 0.0,
            "parallel_efficiency": round(path / wall, 2) if wall else 0.0}
