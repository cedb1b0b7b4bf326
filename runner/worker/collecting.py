"""Bring a worker's commits out of its sandbox into the host repo.

The bundle is made by git *inside* the container and leaves through the exec stream into a
new runner-owned file, so the lead never runs git in the worker's clone and never opens a
path the worker could have replaced with a symlink. The host fetches it, hooks off, every
object checked (through a quarantine repo: see HostRepo.fetch_bundle).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from runner.errors import GitError
from runner.host import SAFE_CONFIG, HostRepo
from runner.sandbox import GRADLE_HOME, Sandbox, read_output
from runner.text import last_line
from runner.worker.authorship import RUN_TRAILER, TICKET_TRAILER, without_runner_trailers

GIT = ("git", *SAFE_CONFIG)
BUNDLE_LIMIT = 1 << 30
BUNDLE_ATTEMPTS = 3
OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
# The worker's git (bookworm's 2.39) has `commit --trailer` (2.32 and later). Then HEAD, the
# only output on success: git's own messages (a warning per file, 60,000 of them) are kept
# and shown, their end, only when it fails.
COMMIT_LEFTOVERS = (
    f'g() {{ {shlex.join(GIT)} "$@"; }}; '
    'out=$( { g add -A && { g diff --cached --quiet || g commit -q --no-verify '
    f'-m "$RUNNER_COMMIT_MESSAGE" --trailer "{RUN_TRAILER}: $RUNNER_RUN" '
    f'--trailer "{TICKET_TRAILER}: $RUNNER_TICKET"; }}; }} 2>&1 ) || '
    '{ printf "%s\\n" "$out" | tail -c 2000; exit 1; }; g rev-parse --verify HEAD'
)

# What a worker left beyond its commits, in its clone and its Gradle home (best effort: a
# directory it made unwritable stays; `runner clean` removes the rest).
DISCARD_LEFTOVERS = (f"{shlex.join(GIT)} reset -q --hard; {shlex.join(GIT)} clean -ffdxq; "
                     f"find {GRADLE_HOME} -mindepth 1 -delete 2>/dev/null; true")


class CollectError(Exception):
    """The worker's commits could not be brought out (reason for the ticket, not the run)."""


@dataclass(frozen=True)
class Collected:
    ref: str | None       # refs/runner/<run>/<ticket>, or None when the worker changed nothing
    tip: str | None
    commits: int


def commit_leftovers(sandbox: Sandbox, message: str, *, run_id: str, ticket: str,
                     timeout: float = 300) -> str:
    """Commit what the worker left uncommitted, as ``message`` with the run's trailers (any
    the message claims itself, an agent's say, are dropped); return its HEAD then. One
    command: committing again what is committed commits nothing, so it may run again."""
    result = read_output(sandbox, ["bash", "-c", COMMIT_LEFTOVERS], timeout=timeout,
                         env={"RUNNER_COMMIT_MESSAGE": without_runner_trailers(message),
                              "RUNNER_RUN": run_id, "RUNNER_TICKET": ticket})
    head = result.output.strip()
    if not result.ok:
        raise CollectError(f"could not commit the worker's changes: {last_line(result.output)}")
    if not OBJECT_ID.fullmatch(head):
        raise CollectError(f"cannot read the worker's HEAD: {last_line(head)}")
    return head


def discard_leftovers(sandbox: Sandbox, timeout: float = 300) -> None:
    """Remove what the worker left uncommitted and its Gradle home: after a disk stop, what
    went over the budget leaves the host's disk, and no later salvage commits it."""
    sandbox.exec(["bash", "-c", DISCARD_LEFTOVERS], timeout=timeout, repeatable=True)


def head_of(sandbox: Sandbox, timeout: float = 300) -> str:
    """The commit the worker's clone has checked out."""
    head = read_output(sandbox, [*GIT, "rev-parse", "--verify", "HEAD"], timeout=timeout)
    if not head.ok or not OBJECT_ID.fullmatch(head.output.strip()):
        raise CollectError(f"cannot read the worker's HEAD: {last_line(head.output)}")
    return head.output.strip()


def collect(sandbox: Sandbox, host: HostRepo, *, start: str, ref: str, bundle: Path,
            readable: Path, expect: str | None = None, timeout: float = 300) -> Collected:
    """Fetch the worker's commits since ``start`` into ``ref`` in the host repo; they may
    name only objects they bring or the worker could read (``readable``). With ``expect``
    (the commit the ticket's checks judged) nothing else is collected: the bundle's HEAD
    must be it."""
    # Its HEAD is asked only when the bundle cannot say it: no commit expected, or none made.
    head = head_of(sandbox, timeout) if expect in (None, start) else expect
    _moved(head, expect)
    if head == start:
        return Collected(ref=None, tip=None, commits=0)
    bundle.parent.mkdir(parents=True, exist_ok=True)
    # An engine may drop or cut an exec's output (see read_output); git checks every byte
    # of a bundle, so one it refuses is made again, and the last refusal is the reason.
    for attempt in range(1, BUNDLE_ATTEMPTS + 1):
        bundle.unlink(missing_ok=True)
        made = sandbox.exec_to_file([*GIT, "bundle", "create", "--quiet", "-", "HEAD",
                                     f"^{start}"], timeout=timeout, dest=bundle,
                                    limit=BUNDLE_LIMIT)
        if not made.ok:
            _moved(head_of(sandbox, timeout), expect)    # back to start, say
            raise CollectError(f"git bundle failed in the worker: {last_line(made.output)}")
        try:
            tip = host.fetch_bundle(bundle, ref, readable=readable,
                                    accept=lambda tip: _moved(tip, expect))
            break
        except GitError as e:
            problems = [line for line in e.stderr.splitlines()
                        if line.startswith(("error:", "fatal:"))]
            if attempt == BUNDLE_ATTEMPTS:
                raise CollectError(f"the worker's commits were refused ({bundle} is kept): "
                                   f"{(problems or [str(e)])[0]}") from e
            sandbox.say(f"the bundle of the worker's commits was refused "
                        f"({(problems or [str(e)])[0][:200]}); it is made again")
    if tip != head:
        raise CollectError(f"the bundle held {tip[:12]}, not {head[:12]}, the worker's HEAD "
                           f"({bundle} is kept)")
    return Collected(ref=ref, tip=tip, commits=host.count_commits(start, tip))


def _moved(head: str, expect: str | None) -> None:
    """Refuse a HEAD that is not the commit the checks judged."""
    if expect is not None and head != expect:
        raise CollectError(f"its HEAD moved to {head[:12]} after its checks judged "
                           f"{expect[:12]}; only the judged commit may be collected")
