"""A run: resolve the repo and refs, provision images, schedule tickets, integrate, record."""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import docker

from runner.errors import (EnvironmentProblem, GitError, InputError, PhaseFileError, RepoError,
                           SelfTestFailed)
from runner.events import EventSink, Notice, RunFinished, RunStarted, TicketChanged, TicketStatus
from runner.gates import gate_ticket
from runner.gitops import HostRepo, open_host_repo
from runner.images import ensure_image
from runner.integrate import Integrator
from runner.ledger import Ledger, default_prices
from runner.phase import Phase
from runner.sandbox.docker import DockerSandboxes, docker_client
from runner.scheduler import SUCCEEDED, finished, schedule
from runner.selftest import run_selftest
from runner.phasegate import land, phase_gate
from runner.worker import RunContext, TicketOutcome, run_ticket


@dataclass(frozen=True)
class RunOptions:
    repo: Path
    phase_file: Path
    concurrency: int | None = None
    sequential: bool = False
    keep: bool = False
    state_dir: Path | None = None     # default: <git dir>/runner
    preflight: bool = True            # the isolation self-test before any ticket
    allow_overlap: bool = False       # let tickets with overlapping paths run at once
    land: bool = False                # fast-forward base to target when all passed


@dataclass
class RunResult:
    run_id: str
    phase: str
    base_sha: str
    target: str
    run_dir: Path
    outcomes: dict[str, TicketOutcome]
    started: float
    ended: float = 0.0
    target_sha: str | None = None
    checks_passed: bool | None = None    # None: the phase has no checks
    checks_reason: str = ""
    preflight: str = "skipped"           # the isolation self-test's outcome
    culprit: str | None = None           # the ticket from which the phase checks fail
    landed: str = ""                     # with --land: what happened to base

    @property
    def exit_code(self) -> int:
        ok = all(o.status in SUCCEEDED for o in self.outcomes.values())
        return 0 if ok and self.checks_passed is not False else 1


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def run_phase(phase: Phase, options: RunOptions, sink: EventSink,
              client: docker.DockerClient | None = None) -> RunResult:
    host = open_host_repo(options.repo)
    base_sha = host.resolve(phase.base)
    if base_sha is None:
        raise RepoError(f"base {phase.base!r} is not a commit in {host.top}; set `base:` to a "
                        "branch, tag or commit that exists")
    target = phase.target_branch
    if not host.is_branch_name(target):
        raise PhaseFileError(options.phase_file, f"{target!r} is not a valid branch name",
                             field="target" if phase.target else "name")
    if target in host.checked_out_branches():
        raise RepoError(f"target {target!r} is the branch checked out in {host.top} (or one "
                        "of its worktrees); runner never moves it under you: choose another "
                        "`target:` or check out another branch")
    cache = phase.gradle.shared_cache
    if cache is not None and not cache.is_dir():
        raise PhaseFileError(options.phase_file, f"{cache} is not a directory",
                             field="gradle.shared_cache")
    _check_agent_inputs(phase, sink)
    client = client or docker_client()
    ensure_image(client, phase.image, sink)

    run_id = new_run_id()
    root = (options.state_dir or host.git_dir / "runner") / run_id
    (root / "logs").mkdir(parents=True, mode=0o700)
    ledger = Ledger(prices={**default_prices(), **phase.prices},
                    budget_usd=phase.budget.usd if phase.budget else None)
    ctx = RunContext(run_id=run_id, phase=phase, host=host, root=root, ledger=ledger,
                     provider=DockerSandboxes(client), sink=sink, keep=options.keep)
    result = RunResult(run_id=run_id, phase=phase.name, base_sha=base_sha, target=target,
                       run_dir=root, outcomes={}, started=time.time())
    sink.emit(RunStarted(run_id=run_id, phase=phase.name, base_ref=phase.base,
                         base_sha=base_sha, target=target, run_dir=str(root),
                         tickets=tuple(t.id for t in phase.tickets)))
    _save_previous_target(host, run_id, target, sink)
    _write_state(result)
    if options.preflight:
        _preflight(ctx, result)

    # With phase checks, target moves only once they pass on the integrated result.
    integrator = Integrator(host, clone=root / "integration", base=base_sha,
                            integrated_ref=f"refs/runner/{run_id}/integrated",
                            target=None if phase.checks else target)

    def integrate(outcome: TicketOutcome) -> TicketOutcome:
        assert outcome.start and outcome.tip
        sink.emit(TicketChanged(outcome.ticket, TicketStatus.INTEGRATING))
        conflict = False
        try:
            reason = gate_ticket(host, phase, phase.ticket(outcome.ticket), base=base_sha,
                                 start=outcome.start, tip=outcome.tip)
            if reason is None:
                merged = integrator.integrate(start=outcome.start, tip=outcome.tip,
                                              ticket=outcome.ticket)
                reason, conflict = merged.reason, not merged.ok
        except GitError as e:   # this ticket fails; the run and its ref go on
            reason = f"integration failed: {e}"
        status = TicketStatus.FAILED if reason else TicketStatus.INTEGRATED
        sink.emit(TicketChanged(outcome.ticket, status, reason))
        return finished(outcome, status, reason, conflict=conflict)

    concurrency = 1 if options.sequential else (options.concurrency
                                                or phase.effective_concurrency)
    try:
        result.outcomes = schedule(phase, concurrency=concurrency,
                                   run_one=lambda t, start, n: run_ticket(ctx, t, start, n),
                                   integrate=integrate,
                                   start_point=lambda t, attempt: integrator.head
                                   if t.depends_on or attempt else base_sha,
                                   allow_overlap=options.allow_overlap,
                                   sink=sink, stop=lambda: _stop(ctx),
                                   blocked=lambda: "the phase budget is spent"
                                   if ledger.budget_reached() else None)
        if phase.checks:
            gate = phase_gate(ctx, integrator)
            result.checks_passed, result.checks_reason = gate.ok, gate.reason
            result.culprit = gate.culprit
        if options.land and result.exit_code == 0:
            result.landed = land(ctx.host, phase.base, base_sha, target, sink)
    finally:
        result.ended = time.time()
        result.target_sha = host.resolve(f"refs/heads/{target}")
        _write_state(result)
    sink.emit(RunFinished(run_id=run_id, exit_code=result.exit_code))
    return result


def _stop(ctx: RunContext) -> None:
    """An interrupt: agents stop at their next step, containers go now."""
    ctx.cancelled.set()
    ctx.provider.remove_run(ctx.run_id)


def _check_agent_inputs(phase: Phase, sink: EventSink) -> None:
    """What LLM and CLI agents need from the host, checked before anything starts."""
    needs_key = phase.review is not None or any(t.agent == "anthropic" for t in phase.tickets)
    if needs_key and not os.environ.get("ANTHROPIC_API_KEY"):
        raise EnvironmentProblem("anthropic tickets and the review gate need ANTHROPIC_API_KEY "
                                 "in runner's "
                                 "environment (and ANTHROPIC_BASE_URL for another compatible "
                                 "endpoint); it stays in runner, never in a container")
    for ticket in phase.tickets:
        missing = [name for name in ticket.env if name not in os.environ]
        if missing:
            raise InputError(f"ticket {ticket.id}: env asks for {', '.join(missing)}, which "
                             "runner's environment does not have")
        if ticket.env:
            sink.emit(Notice(f"ticket {ticket.id} passes {', '.join(ticket.env)} from the host "
                             "into its container (env:), as the phase asks", level="warning"))
    prices = {**default_prices(), **phase.prices}
    unpriced = sorted({phase.model_for(t) for t in phase.tickets if t.agent == "anthropic"}
                      - set(prices))
    if unpriced:
        sink.emit(Notice(f"no price for {', '.join(unpriced)}: its calls count as $0 in the "
                         "ledger and the budget; add it under `prices:`", level="warning"))


def _preflight(ctx: RunContext, result: RunResult) -> None:
    """The isolation self-test, exactly as workers start; stop before any ticket if it fails."""
    started = time.perf_counter()
    selftest = run_selftest(ctx, result.base_sha)
    seconds = time.perf_counter() - started
    if not selftest.passed:
        result.preflight = "failed: " + ", ".join(c.name for c in selftest.failed)
        _write_state(result)
        first = selftest.failed[0]
        raise SelfTestFailed(f"isolation self-test failed, no ticket started: {first.name}: "
                             f"{first.detail}; {first.fix} (`runner doctor` shows every check)")
    result.preflight = f"passed ({len(selftest.checks)} checks, {seconds:.1f}s)"
    ctx.sink.emit(Notice(f"isolation self-test {result.preflight}"))


def _save_previous_target(host: HostRepo, run_id: str, target: str, sink: EventSink) -> None:
    """A run resets ``target`` to base; keep what it pointed at, so nothing is lost."""
    previous = host.resolve(f"refs/heads/{target}")
    if previous:
        host.update_ref(f"refs/runner/{run_id}/previous-target", previous)
        sink.emit(Notice(f"target {target} was at {previous[:12]}; kept as "
                         f"refs/runner/{run_id}/previous-target", level="warning"))


def _write_state(result: RunResult) -> None:
    """Atomically record the run (run.json); a crash never leaves half a file."""
    data = asdict(result) | {"run_dir": str(result.run_dir), "exit_code": result.exit_code}
    tmp = result.run_dir / ".run.json.tmp"
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, result.run_dir / "run.json")
