"""Gates the lead applies to a collected ticket before integrating it.

Each failure names the offending files (the first few, and how many more) and the commits
that touched them; the ticket's ref stays for inspection. The changed files are streamed
from git, never held in a list or put on a command line: a ticket may change any number.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from runner.host import HostRepo
from runner.phase import Phase, Ticket, matches
from runner.records import NOTHING_CHANGED

SHOWN = 10             # offending files named in a reason
MAX_COMMITS = 1_000    # commits of one ticket the lead integrates (each is picked on its own)


def outside_paths(changed: Iterable[str], paths: list[str]) -> list[str]:
    """Changed files that the ticket's ``paths`` do not allow (none when paths is empty)."""
    if not paths:
        return []
    return [f for f in changed if not matches(f, paths)]


@dataclass
class _Offenders:
    what: str
    first: list[str] = field(default_factory=list)
    count: int = 0

    def add(self, path: str) -> None:
        self.count += 1
        if len(self.first) < SHOWN:
            self.first.append(path)

    def named(self) -> str:
        more = self.count - len(self.first)
        return ", ".join(self.first) + (f" and {more:,} more" if more else "")


def gate_ticket(host: HostRepo, phase: Phase, ticket: Ticket, *, base: str, start: str,
                tip: str, commits: int | None = None) -> str | None:
    """Why the ticket's commits (start..tip) may not be integrated, or None. ``commits`` is
    how many start..tip holds, when the caller has just counted them in the host repo."""
    made = host.count_commits(start, tip) if commits is None else commits
    if made > MAX_COMMITS:
        return (f"it made {made:,} commits; at most {MAX_COMMITS:,} are integrated, one by "
                "one: squash them")
    for ancestor, what in ((base, "base"), (start, "the commit it started from")):
        if not host.is_ancestor(ancestor, tip):
            return (f"its history does not descend from {what} {ancestor[:12]} (rewritten or "
                    f"dropped commits: {host.commits(start, tip)})")
    outside, protected = _Offenders("outside its paths"), _Offenders("protected")
    large = _Offenders(f"larger than {phase.max_file_size}")
    changed = 0
    for change, size in host.changes_with_sizes(start, tip):
        changed += 1
        if ticket.paths and not matches(change.path, ticket.paths):
            outside.add(change.path)
        if matches(change.path, phase.protected):
            protected.add(change.path)
        if size is not None and size > phase.max_file_bytes:
            large.add(change.path)
    if not changed:
        return NOTHING_CHANGED
    for found in (outside, protected, large):
        if found.count:
            touching = host.commits_touching(start, tip, set(found.first))
            return (f"changed files {found.what}: {found.named()} "
                    f"(commits {', '.join(touching)})")
    return None
