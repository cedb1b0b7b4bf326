"""`runner apply`: one ticket's commits replayed onto a branch of the person's checkout (a
ticket a gate refused that they overrule, say), as they would with `git cherry-pick`: their
git, their identity and hooks, in their worktree. A conflict leaves git's usual state."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from runner.errors import InputError
from runner.host import HostRepo, git, git_out
from runner.records import Attempt
from runner.text import one_line, quoted


@dataclass(frozen=True)
class Applied:
    branch: str
    commits: int
    conflicts: tuple[str, ...] = ()     # files git could not replay (the pick stopped)

    @property
    def ok(self) -> bool:
        return not self.conflicts


def apply_attempt(host: HostRepo, ticket: str, attempt: Attempt, onto: str | None) -> Applied:
    """Replay ``attempt``'s commits (its start to its tip) onto ``onto`` (made from HEAD
    when it does not exist; None: the branch checked out). Refuses a dirty worktree."""
    if not attempt.tip or not attempt.start:
        raise InputError(f"{ticket} has no commits to apply (it committed nothing)")
    top = _worktree(host)
    counted = git(top, "rev-list", "--count", f"{attempt.start}..{attempt.tip}", check=False)
    if counted.returncode != 0:
        raise InputError(f"{ticket}'s commits ({attempt.tip[:12]}) are not in {top}; run "
                         "runner apply in the repo the run was made in (or fetch its refs)")
    count = int(counted.stdout)
    dirty = git(top, "status", "--porcelain", "--untracked-files=no").stdout
    if dirty.strip():
        first = one_line(dirty.splitlines()[0][3:])
        raise InputError(f"{top} has uncommitted changes ({first} …); commit or stash them, "
                         "then apply")
    if onto is not None:
        _switch(top, onto)
    branch = git(top, "symbolic-ref", "--quiet", "--short", "HEAD", check=False).stdout.strip()
    if not branch:
        raise InputError(f"{top} has no branch checked out (a detached HEAD); give --onto "
                         "BRANCH")
    # The person's own git (their hooks and identity), not runner's isolated one: it is
    # their commit now. -x names where each commit came from.
    picked = subprocess.run(["git", "cherry-pick", "-x", f"{attempt.start}..{attempt.tip}"],
                            cwd=top, capture_output=True, text=True, errors="replace")
    if picked.returncode == 0:
        return Applied(branch, count)
    conflicts = tuple(git_out(top, "diff", "--name-only", "--diff-filter=U").splitlines())
    if not conflicts:      # it stopped on something else: back to where the branch was
        git(top, "cherry-pick", "--abort", check=False)
        raise InputError(f"git cherry-pick failed, and was aborted ({branch} is as it was): "
                         f"{one_line(picked.stderr.strip())[-300:]}")
    return Applied(branch, count, conflicts)


def _worktree(host: HostRepo) -> Path:
    inside = git(host.top, "rev-parse", "--is-inside-work-tree", check=False).stdout.strip()
    if inside != "true":
        raise InputError(f"{host.top} has no working tree to apply into (a bare repo); "
                         "clone it, then apply there")
    return host.top


def _switch(top: Path, branch: str) -> None:
    if git(top, "check-ref-format", "--branch", branch, check=False).returncode != 0:
        raise InputError(f"--onto {quoted(branch)} is not a branch name git accepts")
    exists = git(top, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}",
                 check=False).returncode == 0
    switched = git(top, "switch", *([] if exists else ["-c"]), branch, check=False)
    if switched.returncode != 0:
        raise InputError(f"--onto {branch}: git switch failed: "
                         f"{one_line(switched.stderr.strip())}")
