"""Integrate collected tickets, one at a time, in a runner-owned clone.

Each ticket's commits (its start..tip) are cherry-picked onto the integrated head as soon as
the ticket finishes, so dependency order comes for free. Each picked commit keeps its author
and message, is committed by the host user and carries the run's trailers (see
worker/authorship.py). The integrated head is published to the host as
``refs/runner/<run>/integrated`` (dependents start from it) and, when asked, to the target
branch.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from runner.host import HostRepo, changes, git, git_records, init_linked_clone
from runner.text import last_line
from runner.worker import Identity, trailer_args, without_runner_trailers

BRANCH = "integration"
CONFLICTS_KEPT = 100     # conflicting files named in an outcome (the count says the rest)


@dataclass(frozen=True)
class Integration:
    ok: bool
    head: str
    reason: str = ""
    conflicts: tuple[str, ...] = ()     # the first CONFLICTS_KEPT files it conflicted in
    conflict_count: int = 0             # all of them


class Integrator:
    """Integrates onto ``base`` in a runner-owned clone. With ``history`` it reopens an
    interrupted run's integration at what that run last published."""

    def __init__(self, host: HostRepo, *, clone: Path, base: str, integrated_ref: str,
                 target: str | None, run_id: str, committer: Identity,
                 history: list[list[str]] | None = None) -> None:
        self.host, self.clone, self.base = host, clone, base
        self.integrated_ref, self.target = integrated_ref, target
        self.run_id, self.committer = run_id, committer
        resumed = history is not None
        self.head = (host.resolve(integrated_ref) or base) if resumed else base
        self.history: list[tuple[str, str]] = [(t, h) for t, h in history or []]
        if not (clone / ".git").is_dir():
            init_linked_clone(clone, host.objects, BRANCH, self.head)
        self._published: str | None = None
        if resumed:
            self._git("cherry-pick", "--abort", check=False)
            self._git("reset", "--quiet", "--hard", self.head)
            self._published = self.head
        else:
            self.publish()

    def integrate(self, *, start: str, tip: str, ticket: str,
                  publish: bool = True) -> Integration:
        """Cherry-pick start..tip onto the integrated head (the gates ran before), one
        commit at a time; empty and redundant commits are kept, as the worker made them.
        Without ``publish`` the new head waits for the next publish()."""
        try:
            for commit in self._git("rev-list", "--reverse", f"{start}..{tip}").stdout.split():
                picked = self._git("cherry-pick", "--no-commit", commit, check=False)
                if picked.returncode != 0:
                    return self._failed(picked)
                self._commit_as(commit, ticket)
        except Exception:
            self._git("reset", "--quiet", "--hard", self.head)   # the next ticket's start
            raise
        self.head = self._git("rev-parse", "HEAD").stdout.strip()
        self.history.append((ticket, self.head))
        if publish:
            self.publish()
        return Integration(ok=True, head=self.head)

    def touched(self, files: tuple[str, ...], *, since: str) -> list[str]:
        """The tickets integrated after ``since`` (a commit a ticket started from) that
        changed any of ``files``: whom a conflict in them was with."""
        wanted, tickets = set(files), []
        heads = [head for _, head in self.history]
        after = heads.index(since) + 1 if since in heads else 0
        previous = heads[after - 1] if after else self.base
        for ticket, head in self.history[after:]:
            # Streamed and intersected here: no argv, and no list, grows with its files.
            if any(change.path in wanted
                   for change in changes(self.clone, previous, head, isolated=True)):
                tickets.append(ticket)
            previous = head
        return tickets

    def _failed(self, picked: subprocess.CompletedProcess[str]) -> Integration:
        """Undo the ticket's picks; say what conflicted."""
        conflicts, count = [], 0
        for name in git_records(self.clone, "diff", "-z", "--name-only", "--diff-filter=U",
                                isolated=True):
            count += 1
            if len(conflicts) < CONFLICTS_KEPT:
                conflicts.append(name)
        self._git("cherry-pick", "--abort", check=False)
        self._git("reset", "--quiet", "--hard", self.head)
        more = f" and {count - len(conflicts):,} more" if count > len(conflicts) else ""
        reason = ("conflicts with the integrated work in " + ", ".join(conflicts[:10]) + more
                  if conflicts else "cherry-pick failed: " + last_line(picked.stderr))
        return Integration(ok=False, head=self.head, reason=reason, conflicts=tuple(conflicts),
                           conflict_count=count)

    def _commit_as(self, commit: str, ticket: str) -> None:
        """Commit the picked change with ``commit``'s author, date and message (without
        the trailers it claims), the run's trailers, and the host user as committer."""
        shown = self._git("show", "-s", "--date=raw", "--format=%an%x00%ae%x00%ad%x00%B",
                          commit).stdout
        name, email, date, message = shown.split("\0", 3)
        author = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
                  "GIT_AUTHOR_DATE": f"@{date}"}
        self._git("commit", "--quiet", "--no-verify", "--allow-empty", "--allow-empty-message",
                  "--cleanup=whitespace", "--file=-", *trailer_args(self.run_id, ticket),
                  env=author | self.committer.env("COMMITTER"),
                  input=without_runner_trailers(message))

    def _git(self, *args: str, check: bool = True, env: dict[str, str] | None = None,
             input: str | None = None) -> subprocess.CompletedProcess[str]:
        return git(self.clone, *args, check=check, isolated=True, env=env, input=input)

    def publish_target(self, target: str) -> None:
        self.host.fetch(self.clone, [f"+refs/heads/{BRANCH}:refs/heads/{target}"])

    def publish(self) -> None:
        """The integrated head into the host repo (and onto target), if it moved since."""
        if self.head == self._published:
            return
        refs = [f"+refs/heads/{BRANCH}:{self.integrated_ref}"]
        if self.target:
            refs.append(f"+refs/heads/{BRANCH}:refs/heads/{self.target}")
        self.host.fetch(self.clone, refs)      # one fetch for both
        self._published = self.head

