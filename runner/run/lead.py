"""A run: resolve the repo and refs, provision images, schedule tickets, integrate, record."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from runner.agents.kinds import KINDS, kinds_where
from runner.errors import (EnvironmentProblem, GitError, InputError, PhaseFileError, RepoError,
                           RunnerError, SelfTestFailed)
from runner.host.gitops import HostRepo, open_host_repo
from runner.host.objectstore import STORE, RunObjects
from runner.host.refs import attempt_ref, integrated_ref, previous_target_ref, run_refs
from runner.host.runlock import driving
from runner.isolation.imagecheck import image_refusal
from runner.isolation.selftest import run_selftest
from runner.phase.load import load_phase
from runner.phase.model import Phase, Ticket
from runner.records.events import (EventSink, Notice, RunFinished, RunStarted, TicketChanged,
                                   TicketStatus)
from runner.records.journal import TICKET_JOURNAL, Journal
from runner.records.ledger import Ledger, default_prices
from runner.records.outcome import TicketOutcome, conflict_reason
from runner.records.record import (CHECKS_SPAN, GAP_SPAN, PHASE_COPY, SELFTEST_SPAN, RunResult,
                                   load_result, record_outcome, write_state)
from runner.run.integrate import Integrator
from runner.run.phasegate import branch_of, land, phase_gate
from runner.run.scheduler import finished, first_wave, schedule
from runner.sandbox import Backend
from runner.sandbox.backends import connect
from runner.sandbox.engines import Engine, check_engine, resolve
from runner.worker.authorship import read_authorship
from runner.worker.collect import CollectError, collect, commit_leftovers
from runner.worker.context import RunContext, gateway_for, mirrors_for
from runner.worker.lifecycle import open_sandbox, run_ticket, sandbox_spec


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


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def run_phase(phase: Phase, options: RunOptions, sink: EventSink,
              backend: Backend | None = None) -> RunResult:
    host = open_host_repo(options.repo)
    base_sha = host.resolve(phase.base)
    if base_sha is None:
        raise RepoError(f"base {phase.base!r} is not a commit in {host.top}; set `base:` to a "
                        "branch, tag or commit that exists")
    engine = resolve(phase.engine)
    _check_inputs(phase, options, host, sink, engine)
    backend = backend or connect(engine)
    copy, phase = phase, worker_image(phase, backend, sink, options.phase_file)

    run_id = new_run_id()
    root = (options.state_dir or host.state_dir) / run_id
    (root / "logs").mkdir(parents=True, mode=0o700)
    with driving(root):   # released when the run ends, or the runner dies
        # What resume runs: the phase as this run took it, overrides applied.
        # (a project's image as its recipe: a resume builds it again if its inputs changed)
        (root / PHASE_COPY).write_text(yaml.safe_dump(copy.model_dump(mode="json"),
                                                      sort_keys=False))
        result = RunResult(run_id=run_id, phase=phase.name, base_sha=base_sha,
                           target=phase.target_branch, run_dir=root, outcomes={},
                           started=time.time(), options=_recorded(options))
        sink = Journal(root / TICKET_JOURNAL, sink)
        ctx = run_context(phase, host, result, backend, sink, options)
        with gateway_for(ctx) as ctx:
            sink.emit(RunStarted(run_id=run_id, phase=phase.name, base_ref=phase.base,
                                 base_sha=base_sha, target=result.target, run_dir=str(root),
                                 tickets=tuple(t.id for t in phase.tickets)))
            _save_previous_target(host, run_id, result.target, sink)
            write_state(result)
            # The first tickets' checkouts are made while the self-test runs; nothing runs
            # in them before it passes.
            ahead = first_wave(phase, concurrency=_concurrency(phase, options),
                               allow_overlap=options.allow_overlap)
            if refused := _preflight(ctx, result, ahead=ahead, selftest=options.preflight):
                # Recorded as refused, not left "running": there is nothing to resume.
                result.state, result.refused, result.ended = "refused", refused, time.time()
                write_state(result)
                sink.emit(Notice(refused, level="warning"))
                sink.emit(RunFinished(run_id=run_id, exit_code=result.exit_code))
                return result
            # With phase checks, target moves only once they pass on the integrated result.
            integrator = Integrator(host, clone=root / "integration", base=base_sha,
                                    integrated_ref=integrated_ref(run_id),
                                    target=None if phase.checks else result.target,
                                    run_id=run_id, committer=ctx.authorship.committer)
            return _drive(ctx, result, integrator, options, done={})


def resume_run(run_id: str, *, repo: Path, state_dir: Path | None, sink: EventSink,
               backend: Backend | None = None,
               engine: str | None = None) -> RunResult:
    """Finish an interrupted (or killed) run: what finished stays finished; what was under
    way is collected from its workspace (into refs/runner/<run>/attempts/<t>/interrupted)
    and run again."""
    host = open_host_repo(repo)
    root = (state_dir or host.state_dir) / run_id
    load_result(root)                        # a clear error for a run that is not there
    with driving(root):                      # read it again, now that nobody else drives it
        return _resume(load_result(root), host, root, sink, backend, engine)


def _resume(result: RunResult, host: HostRepo, root: Path, sink: EventSink,
            backend: Backend | None, engine_name: str | None) -> RunResult:
    run_id = result.run_id
    if result.state == "finished":
        sink.emit(Notice(f"run {run_id} has already finished (exit {result.exit_code}); "
                         "nothing to resume"))
        return result
    if result.state == "refused":
        raise SelfTestFailed(f"run {run_id} was refused before any ticket started, so there "
                             f"is nothing to resume ({result.refused}); fix that, then start "
                             "a new run with `runner run`")
    # Since it stopped (a killed runner wrote no end: its last ticket's end, or its start).
    stopped = result.ended or max([o.ended for o in result.outcomes.values()] + [result.started])
    result.spans.append([GAP_SPAN, stopped, time.time()])
    result.state = "running"                 # claim it before salvaging
    write_state(result)
    phase = load_phase(root / PHASE_COPY)
    if engine_name:                          # the run's engine, under another name or URL
        phase = phase.model_copy(update={"engine": check_engine(engine_name)})
    options = RunOptions(repo=host.top, phase_file=root / PHASE_COPY,
                         state_dir=root.parent, **result.options)
    backend = backend or connect(resolve(phase.engine))
    phase = worker_image(phase, backend, sink, root / PHASE_COPY)
    sink = Journal(root / TICKET_JOURNAL, sink)
    ctx = run_context(phase, host, result, backend, sink, options)
    with gateway_for(ctx) as ctx:
        done = {t: o for t, o in result.outcomes.items() if not o.interrupted}
        sink.emit(RunStarted(run_id=run_id, phase=phase.name, base_ref=phase.base,
                             base_sha=result.base_sha, target=result.target, run_dir=str(root),
                             tickets=tuple(t.id for t in phase.tickets)))
        sink.emit(Notice(f"resuming run {run_id}: {len(done)} tickets finished, "
                         f"{len(phase.tickets) - len(done)} to run"))
        ctx.provider.remove_run(run_id)          # the old run's containers, if any survived
        salvage_workspaces(ctx, result.base_sha, "interrupted", skip=set(done))
        integrator = Integrator(host, clone=root / "integration", base=result.base_sha,
                                integrated_ref=integrated_ref(run_id),
                                target=None if phase.checks else result.target,
                                history=result.integrated, run_id=run_id,
                                committer=ctx.authorship.committer)
        if refused := _preflight(ctx, result, selftest=options.preflight):
            result.state = "interrupted"         # its finished tickets stay; resume again later
            write_state(result)
            raise SelfTestFailed(refused)
        return _drive(ctx, result, integrator, options, done=done)


def _drive(ctx: RunContext, result: RunResult, integrator: Integrator, options: RunOptions,
           done: dict[str, TicketOutcome]) -> RunResult:
    phase, host, sink = ctx.phase, ctx.host, ctx.sink

    def integrate(outcome: TicketOutcome) -> TicketOutcome:
        assert outcome.start and outcome.tip
        sink.emit(TicketChanged(outcome.ticket, TicketStatus.INTEGRATING))
        conflicts: tuple[str, ...] = ()
        with_whom: list[str] = []
        try:     # its gates passed in its worker's thread (run_ticket)
            merged = integrator.integrate(start=outcome.start, tip=outcome.tip,
                                          ticket=outcome.ticket, publish=False)
            reason, conflicts = merged.reason, merged.conflicts
            if not merged.ok:
                with_whom = integrator.touched(conflicts, since=outcome.start)
                if conflicts:
                    reason = conflict_reason(tuple(with_whom), conflicts,
                                             merged.conflict_count)
                return replace(finished(outcome, TicketStatus.FAILED, reason, conflict=True),
                               conflicts_with=tuple(with_whom), conflict_files=conflicts)
        except GitError as e:   # this ticket fails; the run and its ref go on
            reason = f"integration failed: {e}"
        except Exception as e:  # a bug, or a size nobody foresaw: this ticket's, not the run's
            reason = f"integration failed: internal error: {type(e).__name__}: {e}"
        # The scheduler tells the outcome: it knows whether a rerun follows.
        return finished(outcome, TicketStatus.FAILED if reason else TicketStatus.INTEGRATED,
                        reason)

    def record(outcome: TicketOutcome) -> None:
        result.outcomes[outcome.ticket] = outcome
        steps_from = len(result.integrated)      # integration only appends
        result.integrated += [list(step) for step in integrator.history[steps_from:]]
        record_outcome(result, outcome, steps_from=steps_from)

    # The sandboxes of tickets about to be ready are made while their dependencies run:
    # started, the start commit checked out once it is known (not with a gateway, whose
    # socket is served once a ticket runs).
    ahead = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ahead")
    try:
        outcomes = schedule(
            phase, concurrency=_concurrency(phase, options), done=done, on_result=record,
            run_one=lambda t, start, n: run_ticket(ctx, t, start, n), integrate=integrate,
            # Sequential: each ticket sees the work of those before it, as the seed's
            # fallback did, so none of them conflicts.
            start_point=lambda t, attempt: integrator.head
            if t.depends_on or attempt or options.sequential else result.base_sha,
            rerun_conflicts=not options.sequential,
            allow_overlap=options.allow_overlap, sink=sink, stop=lambda: _stop(ctx),
            publish=integrator.publish,
            prepare=(lambda t: ahead.submit(_make_ahead, ctx, t, "")) if ctx.gateway is None
            else lambda t: None,
            hard_stop=lambda: ctx.provider.remove_run(ctx.run_id),
            blocked=lambda: "the phase budget is spent" if ctx.ledger.budget_reached() else None)
        result.outcomes = outcomes
        if phase.checks:
            began = time.time()
            gate = phase_gate(ctx, integrator)
            result.spans.append([CHECKS_SPAN, began, time.time()])
            result.checks_passed, result.checks_reason = gate.ok, gate.reason
            result.culprit = gate.culprit
        if options.land and result.exit_code == 0:
            result.landed = land(ctx.host, phase.base, result.base_sha, result.target, sink)
        result.state = "finished"
    except BaseException:
        result.state = "interrupted"
        sink.emit(Notice(f"run {ctx.run_id} interrupted; finish it with `runner resume "
                         f"{ctx.run_id}`", level="warning"))
        raise
    finally:
        ahead.shutdown(cancel_futures=True)
        ctx.provider.settle()        # every sandbox of the run gone before it ends
        result.ended = time.time()
        result.target_sha = host.resolve(f"refs/heads/{result.target}")
        write_state(result)
    sink.emit(RunFinished(run_id=ctx.run_id, exit_code=result.exit_code))
    return result


def worker_image(phase: Phase, backend: Backend, sink: EventSink, phase_file: Path) -> Phase:
    """The phase with its worker image on the engine: a name as it is (built first when it
    is one of runner's own), a project's Dockerfile or devcontainer built into its tag."""
    if isinstance(phase.image, str):
        backend.ensure_image(phase.image, sink)
        return phase
    from runner.phase.devcontainer import recipe_for

    tag = backend.build_image(recipe_for(phase.image, phase_file), sink)
    return phase.model_copy(update={"image": tag})


def run_context(phase: Phase, host: HostRepo, result: RunResult,
                backend: Backend, sink: EventSink, options: RunOptions) -> RunContext:
    ledger = Ledger(prices={**default_prices(), **phase.prices},
                    budget_usd=phase.budget.usd if phase.budget else None,
                    carried=sum(o.cost for o in result.outcomes.values()))  # when resumed
    objects = RunObjects(host, path=result.run_dir / STORE, run_id=result.run_id,
                         base=result.base_sha)
    claude = None
    if any(KINDS[t.agent].runs_claude_code for t in phase.tickets):
        from runner.agents.claude_binary import binary_for

        claude = binary_for(phase).path
    return RunContext(run_id=result.run_id, phase=phase, host=host, root=result.run_dir,
                      claude=claude,
                      objects=objects,
                      ledger=ledger, sink=sink,
                      provider=backend.provider(run_id=result.run_id, root=result.run_dir),
                      keep=options.keep, authorship=read_authorship(host, phase))


def _check_inputs(phase: Phase, options: RunOptions, host: HostRepo, sink: EventSink,
                  engine: Engine) -> None:
    target = phase.target_branch
    if not host.is_branch_name(target):
        raise PhaseFileError(options.phase_file, f"{target!r} is not a valid branch name",
                             field="target" if phase.target else "name")
    if target in host.checked_out_branches():
        raise RepoError(f"target {target!r} is the branch checked out in {host.top} (or one "
                        "of its worktrees); runner never moves it under you: choose another "
                        "`target:` or check out another branch")
    if options.land and branch_of(host, phase.base) is None:
        raise RepoError(f"--land fast-forwards base to target, but base {phase.base!r} is not "
                        "a branch (a tag or a commit cannot move): set `base:` to a branch, "
                        "or run without --land")
    cache = phase.gradle.shared_cache
    if cache is not None and not cache.is_dir():
        raise PhaseFileError(options.phase_file, f"{cache} is not a directory",
                             field="gradle.shared_cache")
    if not engine.local:
        _check_remote(phase, options, engine)
    mirrors_for(phase)        # each upstream named, the store usable: before anything starts
    _check_agent_inputs(phase, sink)


def _check_remote(phase: Phase, options: RunOptions, engine: Engine) -> None:
    """What a remote engine cannot carry yet, refused before anything starts (never by
    passing the key, or a host path, in instead)."""
    if phase.needs_gateway and not engine.carries_gateway:
        why = ("egress:" if phase.egress else "cache:" if phase.cache
               else " and ".join(kinds_where(needs_gateway=True)) + " tickets")
        raise PhaseFileError(options.phase_file, f"{why} need the runner's gateway, which "
                             f"cannot reach workers on {engine.name} yet (its socket is on "
                             "this machine): run with --engine local or kubernetes", field="engine")
    if phase.gradle.shared_cache is not None:
        raise PhaseFileError(options.phase_file, f"gradle.shared_cache is a directory on this "
                             f"machine, which {engine.name} cannot mount: leave it out",
                             field="gradle.shared_cache")
    if phase.network not in engine.networks:
        raise PhaseFileError(options.phase_file, f"network: {phase.network} is not built for "
                             f"{engine.title} (its sandboxes get {', '.join(engine.networks)}"
                             "): leave it out, or run with --engine local", field="network")


def _recorded(options: RunOptions) -> dict[str, object]:
    """The options a resume runs with again."""
    return {"concurrency": options.concurrency, "sequential": options.sequential,
            "keep": options.keep, "preflight": options.preflight,
            "allow_overlap": options.allow_overlap, "land": options.land}


def _stop(ctx: RunContext) -> None:
    """An interrupt: agents stop at their next step; what workers run is ended, their
    containers and files stay so that they can collect what they committed."""
    ctx.cancelled.set()
    ctx.provider.stop_processes(ctx.run_id)


def _check_agent_inputs(phase: Phase, sink: EventSink) -> None:
    """What LLM and CLI agents need from the host, checked before anything starts."""
    if not os.environ.get("ANTHROPIC_API_KEY") and (needs := _needs_key(phase)):
        raise EnvironmentProblem(f"{needs} ANTHROPIC_API_KEY in runner's environment (and "
                                 "ANTHROPIC_BASE_URL for another compatible endpoint); it "
                                 "stays in runner, never in a container")
    for ticket in phase.tickets:
        missing = [name for name in ticket.env if name not in os.environ]
        if missing:
            raise InputError(f"ticket {ticket.id}: env asks for {', '.join(missing)}, which "
                             "runner's environment does not have")
        if ticket.env:
            sink.emit(Notice(f"ticket {ticket.id} passes {', '.join(ticket.env)} from the host "
                             "into its container (env:), as the phase asks", level="warning"))
        if "ANTHROPIC_API_KEY" in ticket.env:
            sink.emit(Notice(f"ticket {ticket.id}: the real API key enters its container "
                             "(env: [ANTHROPIC_API_KEY]); without it the worker gets a "
                             "placeholder and the gateway adds the key outside",
                             level="warning"))
    if phase.network != "none" and phase.needs_gateway:
        sink.emit(Notice(f"network: {phase.network} lets workers reach any host directly, "
                         "around the gateway (its egress list and metering); the gateway "
                         "alone is the way out with network: none", level="warning"))
    if any(KINDS[t.agent].runs_claude_code for t in phase.tickets):
        from runner.agents.claude_binary import binary_for

        binary_for(phase)            # a clear error now, not in every ticket
    prices = {**default_prices(), **phase.prices}
    unpriced = sorted({phase.model_for(t) for t in phase.tickets if KINDS[t.agent].on_models}
                      - set(prices))
    if unpriced:
        sink.emit(Notice(f"no price for {', '.join(unpriced)}: its calls count as $0 in the "
                         "ledger and the budget; add it under `prices:`", level="warning"))


def _needs_key(phase: Phase, shown: int = 5) -> str:
    """Who needs the API key, as the subject of a sentence: the anthropic tickets by id (the
    first few) and the review gate; "" when nothing does."""
    ids = [t.id for t in phase.tickets if KINDS[t.agent].on_models]
    who: list[str] = []
    if ids:
        more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
        kinds = ", ".join(k for k in kinds_where(on_models=True)
                          if any(t.agent == k for t in phase.tickets))
        who.append(f"{'ticket' if len(ids) == 1 else 'tickets'} {', '.join(ids[:shown])}{more} "
                   f"(agent: {kinds})")
    if phase.review is not None:
        who.append("the review gate (review:)")
    if not who:
        return ""
    return " and ".join(who) + (" need" if len(ids) > 1 or len(who) > 1 else " needs")


def _concurrency(phase: Phase, options: RunOptions) -> int:
    return 1 if options.sequential else options.concurrency or phase.effective_concurrency


def _preflight(ctx: RunContext, result: RunResult, *, ahead: Sequence[Ticket] = (),
               selftest: bool = True) -> str | None:
    """Before any ticket: the image checked for what runner runs in it, and (unless told
    not to) the isolation self-test, exactly as workers start; why no ticket may start, or
    None. Meanwhile the sandboxes of ``ahead`` (the first tickets) are made; a refusal
    discards them, and nothing has run in them."""
    started, began = time.perf_counter(), time.time()
    pool = ThreadPoolExecutor(max_workers=AHEAD, thread_name_prefix="ahead")
    try:
        for ticket in ahead:
            pool.submit(_make_ahead, ctx, ticket, result.base_sha)
        # Beside the self-test: what it lacks would fail the probes too, less clearly.
        image = pool.submit(image_refusal, ctx)
        tested = run_selftest(ctx, result.base_sha) if selftest else None
        lacking = image.result()
    except BaseException:       # interrupted: no ticket has started; nothing to keep
        pool.shutdown(cancel_futures=True)    # what is being made ahead, then it all goes
        ctx.provider.remove_run(ctx.run_id)
        ctx.provider.settle()
        result.state = "interrupted"
        write_state(result)
        raise
    pool.shutdown()
    seconds = time.perf_counter() - started
    if tested is not None:
        result.spans.append([SELFTEST_SPAN, began, began + seconds])
    if lacking or (tested is not None and not tested.passed):
        if not result.outcomes:      # what was made ahead; a resume's finished tickets
            ctx.provider.discard("")     # keep theirs
        ctx.provider.settle()       # nothing of the run's stays on the engine
    if lacking:
        result.preflight = "failed: the image lacks what runner needs"
        write_state(result)
        return f"no ticket started: {lacking}"
    if tested is None:
        return None
    if not tested.passed:
        result.preflight = "failed: " + ", ".join(c.name for c in tested.failed)
        write_state(result)
        first = tested.failed[0]
        return (f"isolation self-test failed, no ticket started: {first.name}: "
                f"{first.detail}; {first.fix} (`runner doctor` shows every check)")
    result.preflight = f"passed ({len(tested.checks)} checks, {seconds:.1f}s)"
    ctx.sink.emit(Notice(f"isolation self-test {result.preflight}"))
    return None


AHEAD = 8      # sandboxes made at once while the self-test runs


def _make_ahead(ctx: RunContext, ticket: Ticket, start: str) -> None:
    """Best effort: what could not be made ahead is made when its ticket starts. With a
    gateway only the checkout: a sandbox's socket is served once its ticket runs. A
    ``start`` of "" is checked out when the ticket opens it."""
    if ctx.cancelled.is_set():
        return
    try:
        ctx.provider.prepare(sandbox_spec(ctx, ticket.id, ctx.checkout(ticket.id, start)),
                             started=ctx.gateway is None)
    except Exception:   # nothing is left of it: the ticket makes its own, saying what fails
        pass


def _save_previous_target(host: HostRepo, run_id: str, target: str, sink: EventSink) -> None:
    """A run resets ``target`` to base; keep what it pointed at, so nothing is lost."""
    previous = host.resolve(f"refs/heads/{target}")
    if previous:
        host.update_ref(previous_target_ref(run_id), previous)
        sink.emit(Notice(f"target {target} was at {previous[:12]}; kept as "
                         f"{previous_target_ref(run_id)}", level="warning"))


def salvage_workspaces(ctx: RunContext, base_sha: str, label: str, *,
                       skip: set[str] = frozenset()) -> None:
    """Salvage every checkout the provider keeps for the run, its reruns' too (but those of
    ``skip``), so that nothing in them is lost and a ticket run again finds its place free."""
    for place, name in ctx.provider.kept():
        if place or name not in skip:
            rerun = place.removeprefix("reruns/")
            salvage(ctx, name, base_sha, place=place,
                    label=f"{label}-rerun-{rerun}" if place else label)


def salvage(ctx: RunContext, ticket_id: str, base_sha: str, *, place: str, label: str) -> None:
    """Collect what a ticket committed (and left) in its checkout through a sandbox over it,
    into refs/runner/<run>/attempts/<ticket>/<label> unless its refs hold it already; then
    discard the checkout. Save before delete: never lose work."""
    ref = attempt_ref(ctx.run_id, ticket_id, label)
    try:
        ctx.objects.ensure(base_sha)      # the store its clone borrows from
        checkout = ctx.checkout(ticket_id, base_sha, place=place, fresh=False)
        with open_sandbox(ctx, ticket_id, checkout) as sandbox:
            if sandbox.exec(["test", "-d", ".git"], timeout=60).exit_code != 0:
                got = None                # never got as far as a clone: nothing to keep
            else:
                # Nothing runs in this fresh container: a lock there is a killed git's.
                sandbox.exec(["rm", "-f", ".git/index.lock"], timeout=60)
                commit_leftovers(sandbox, f"{ticket_id}: work left in its workspace ({label})",
                                 run_id=ctx.run_id, ticket=ticket_id)
                got = collect(sandbox, ctx.host, start=base_sha, ref=ref,
                              bundle=ctx.root / "bundles" / f"{ticket_id}.{label}.bundle",
                              readable=ctx.objects.objects)
    except (CollectError, RunnerError) as e:
        # Kept whole, out of the way: the ticket can run again, and nothing is lost.
        aside = ctx.provider.set_aside(place, ticket_id, label)
        ctx.sink.emit(Notice(f"{ticket_id}: could not collect the work in its workspace "
                             f"({e}); it is kept at {aside}", level="warning"))
        return
    if got is not None and got.tip:
        if ctx.host.held_elsewhere(got.tip, ref, run_refs(ctx.run_id)):
            ctx.host.delete_ref(ref)
        else:
            ctx.sink.emit(Notice(f"{ticket_id}: work found in its workspace is kept at {ref}"))
    if problem := ctx.provider.discard(place, ticket_id):   # never follows a link out
        ctx.sink.emit(Notice(f"{ticket_id}: {problem}", level="warning"))
