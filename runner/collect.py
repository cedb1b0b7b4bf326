"""Bring a worker's commits out of its sandbox into the host repo.

The bundle is made by git *inside* the container and leaves through the exec stream, so the
lead never runs git in the worker's clone and never reads a file the worker could have
replaced with a symlink. The host fetches it from a runner-owned file, hooks off, objects
checked.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from runner.text import last_line
from runner.gitops import HostRepo
from runner.sandbox import Sandbox

GIT = ["git", "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false"]
COMMIT_LEFTOVERS = (
    'git -c core.hooksPath=/dev/null add -A && '
    'if git diff --cached --quiet; then exit 0; fi && '
    'git -c core.hooksPath=/dev/null -c commit.gpgSign=false commit -q --no-verify '
    '-m "$RUNNER_COMMIT_MESSAGE"'
)


class CollectError(Exception):
    """The worker's commits could not be brought out (reason for the ticket, not the run)."""


@dataclass(frozen=True)
class Collected:
    ref: str | None       # refs/runner/<run>/<ticket>, or None when the worker changed nothing
    tip: str | None
    commits: int


def commit_leftovers(sandbox: Sandbox, message: str, timeout: float = 300) -> None:
    """Commit what the worker left uncommitted, as ``message``."""
    result = sandbox.exec(["bash", "-c", COMMIT_LEFTOVERS], timeout=timeout,
                          env={"RUNNER_COMMIT_MESSAGE": message})
    if not result.ok:
        raise CollectError(f"could not commit the worker's changes: {last_line(result.output)}")


def collect(sandbox: Sandbox, host: HostRepo, *, start: str, ref: str, bundle: Path,
            timeout: float = 300) -> Collected:
    """Fetch the worker's commits since ``start`` into ``ref`` in the host repo."""
    count = sandbox.exec([*GIT, "rev-list", "--count", f"{start}..HEAD"], timeout=timeout)
    if not count.ok:
        raise CollectError(f"cannot read the worker's history: {last_line(count.output)}")
    commits = int(count.output.strip() or 0)
    if commits == 0:
        return Collected(ref=None, tip=None, commits=0)
    made = sandbox.exec_bytes([*GIT, "bundle", "create", "--quiet", "-", "HEAD", f"^{start}"],
                              timeout=timeout)
    if made.exit_code != 0 or not made.stdout:
        raise CollectError(f"git bundle failed in the worker: {last_line(made.stderr)}")
    _write_atomically(bundle, made.stdout)
    host.fetch(bundle, [f"+HEAD:{ref}"])
    tip = host.resolve(ref)
    assert tip is not None
    return Collected(ref=ref, tip=tip, commits=commits)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)

