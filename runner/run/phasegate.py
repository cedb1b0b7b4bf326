"""After integration: the phase's checks on the result (and, when they fail, the ticket from
which they fail), then, with --land, base fast-forwarded to target."""

from __future__ import annotations

import time
from dataclasses import dataclass

from runner.host import HostRepo, candidate_ref, git
from runner.records import PHASE_CHECKS, CappedLog, CheckResult, EventSink, Notice
from runner.run.integrate import Integrator
from runner.sandbox import Checkout
from runner.worker import RunContext, open_sandbox, output_handler, run_checks

PHASE_CHECKS_TIMEOUT = 3600.0


@dataclass(frozen=True)
class PhaseGate:
    ok: bool
    reason: str = ""
    culprit: str | None = None


def run_phase_checks(ctx: RunContext, head: str, name: str = "result") -> CheckResult:
    """The phase's checks in a fresh sandbox over a checkout of ``head``."""
    place = f"checks/{name}"
    ctx.provider.discard(place)    # an interrupted earlier check's (resume)
    try:
        return _checks_in(ctx, ctx.checkout(PHASE_CHECKS, head, place=place), name)
    finally:
        ctx.provider.discard(place)    # nothing in it to keep


def _checks_in(ctx: RunContext, checkout: Checkout, name: str) -> CheckResult:
    deadline = time.monotonic() + PHASE_CHECKS_TIMEOUT
    with CappedLog(ctx.root / "logs" / f"{PHASE_CHECKS}.log") as log, \
            open_sandbox(ctx, PHASE_CHECKS, checkout) as sandbox:
        log.write(f"=== phase checks on {checkout.start[:12]} ({name}) ===\n")
        on_output = output_handler(ctx, PHASE_CHECKS, log)
        try:
            return run_checks(sandbox, list(ctx.phase.checks), log=log, deadline=deadline,
                              on_output=on_output)
        finally:
            on_output.close()


def phase_gate(ctx: RunContext, integrator: Integrator) -> PhaseGate:
    """Check the integrated result; target moves only if the checks pass. Otherwise the
    result is kept at refs/runner/<run>/candidate and the culprit is looked for."""
    ctx.sink.emit(Notice(f"phase checks on the integrated result {integrator.head[:12]}"))
    checked = run_phase_checks(ctx, integrator.head)
    if checked.ok:
        assert integrator.target is None
        integrator.publish_target(ctx.phase.target_branch)
        ctx.sink.emit(Notice("phase checks passed; target updated"))
        return PhaseGate(ok=True)
    candidate = candidate_ref(ctx.run_id)
    ctx.host.update_ref(candidate, integrator.head)
    culprit = find_culprit(ctx, integrator)
    blame = (f"they fail from ticket {culprit} on" if culprit
             else "they fail on base already")
    reason = f"{checked.reason}; {blame}"
    ctx.sink.emit(Notice(f"phase checks failed: {reason}; target not moved, the integrated "
                         f"result is kept at {candidate}", level="warning"))
    return PhaseGate(ok=False, reason=reason, culprit=culprit)


def find_culprit(ctx: RunContext, integrator: Integrator) -> str | None:
    """The first ticket, in integration order, whose inclusion makes the checks fail (None
    when they fail on base itself). The full result is known to fail."""
    history = integrator.history
    for index, (ticket, head) in enumerate(history[:-1]):
        ctx.sink.emit(Notice(f"looking for the culprit: checks with tickets up to {ticket}"))
        if not run_phase_checks(ctx, head, name=f"upto-{index}").ok:
            return ticket if index or run_phase_checks(ctx, integrator.base, "base").ok else None
    if history and run_phase_checks(ctx, integrator.base, "base").ok:
        return history[-1][0]
    return None


def land(host: HostRepo, base_ref: str, base_sha: str, target: str, sink: EventSink) -> str:
    """Fast-forward the base branch to target, if it has not moved; say what happened
    ("landed: …" or "not landed: …")."""
    branch = branch_of(host, base_ref)
    target_sha = host.resolve(f"refs/heads/{target}")
    if branch is None or target_sha is None:
        return _said(sink, f"not landed: base {base_ref!r} is not a branch")
    if host.resolve(f"refs/heads/{branch}") != base_sha:
        return _said(sink, f"not landed: {branch} moved since the run started")
    worktree = host.checked_out_branches().get(branch)
    if worktree is None:
        git(host.top, "update-ref", f"refs/heads/{branch}", target_sha, base_sha)
    else:
        dirty = git(worktree, "status", "--porcelain", "--untracked-files=no").stdout.strip()
        if dirty:
            return _said(sink, f"not landed: {branch} is checked out in {worktree} with "
                               "uncommitted changes; commit or stash them, then run "
                               f"`git merge --ff-only {target}` there")
        git(worktree, "merge", "--quiet", "--ff-only", target_sha)
    return _said(sink, f"landed: {branch} fast-forwarded to {target} ({target_sha[:12]})")


def branch_of(host: HostRepo, ref: str) -> str | None:
    """The branch ``ref`` names (HEAD: the one checked out), or None for a tag or commit."""
    if ref == "HEAD":
        proc = git(host.top, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
        return proc.stdout.strip() if proc.returncode == 0 else None
    name = ref.removeprefix("refs/heads/")
    return name if host.resolve(f"refs/heads/{name}") else None


def _said(sink: EventSink, message: str) -> str:
    sink.emit(Notice(message, level="info" if message.startswith("landed") else "warning"))
    return message
