"""Gates the lead applies to a collected ticket before integrating it.

Each failure names the offending files and the commits that touched them; the ticket's ref
stays for inspection.
"""

from __future__ import annotations

from collections.abc import Iterable

from runner.gitops import HostRepo
from runner.globs import matches
from runner.phase import Phase, Ticket


def outside_paths(changed: Iterable[str], paths: list[str]) -> list[str]:
    """Changed files that the ticket's ``paths`` do not allow (none when paths is empty)."""
    if not paths:
        return []
    return [f for f in changed if not matches(f, paths)]


def gate_ticket(host: HostRepo, phase: Phase, ticket: Ticket, *, base: str, start: str,
                tip: str) -> str | None:
    """Why the ticket's commits (start..tip) may not be integrated, or None."""
    for ancestor, what in ((base, "base"), (start, "the commit it started from")):
        if not host.is_ancestor(ancestor, tip):
            return (f"its history does not descend from {what} {ancestor[:12]} (rewritten or "
                    f"dropped commits: {', '.join(host.commits(start, tip)) or 'none'})")
    changed = host.changed_files(start, tip)
    if not changed:
        return "it changed nothing"
    problems = [("outside its paths", outside_paths(changed, ticket.paths)),
                ("protected", [f for f in changed if matches(f, phase.protected)]),
                (f"larger than {phase.max_file_size}",
                 [f for f, size in host.sizes(tip, changed).items()
                  if size > phase.max_file_bytes])]
    for what, files in problems:
        if files:
            return (f"changed files {what}: {', '.join(files[:10])}"
                    + (f" and {len(files) - 10} more" if len(files) > 10 else "")
                    + f" (commits {', '.join(host.commits(start, tip, files[:10]))})")
    return None
