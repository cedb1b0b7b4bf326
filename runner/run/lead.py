"""A run: resolve the repo and refs, provision images, schedule tickets, integrate, record."""

from __future__ import annotations

import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import yaml

from runner.agents import KINDS
from runner.errors import GitError, RepoError, SelfTestFailed
from runner.host import (STORE, HostRepo, RunObjects, driving, integrated_ref, open_host_repo,
                         previous_target_ref)
from runner.phase import Phase, load_phase
from runner.records import (CHECKS_SPAN, GAP_SPAN, PHASE_COPY, TICKET_JOURNAL, Asked, EventSink,
                            Journal, Ledger, Notice, RunFinished, RunResult, RunStarted,
                            TicketChanged, TicketOutcome, TicketStatus, conflict_reason,
                            default_prices, load_result, record_outcome, write_state)
from runner.run.integrate import Integrator
from runner.run.options import RunOptions
from runner.run.phasegate import land, phase_gate
from runner.run.preflight import (check_inputs, check_runtime, concurrency_for, make_ahead,
                                  preflight)
from runner.run.salvage import salvage_workspaces
from runner.run.scheduler import finished, first_wave, schedule
from runner.sandbox import Backend, check_engine, connect, resolve
from runner.worker import RunContext, gateway_for, read_authorship, run_ticket


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
    check_inputs(phase, options, host, sink, engine)
    backend = backend or connect(engine)
    check_runtime(phase, backend)
    workers = _concurrency(phase, options, backend, sink)
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
                           started=time.time(), options=_recorded(options),
                           tickets=[t.id for t in phase.tickets],
                           asked={t.id: Asked.of(t) for t in phase.tickets})
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
            ahead = first_wave(phase, concurrency=workers, allow_overlap=options.allow_overlap)
            if refused := preflight(ctx, result, ahead=ahead, selftest=options.preflight):
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
            return _drive(ctx, result, integrator, options, workers, done={})


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
    check_runtime(phase, backend)
    workers = _concurrency(phase, options, backend, sink)
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
        away = salvage_workspaces(ctx, result.base_sha, "interrupted", skip=set(done))
        for ticket, why in away.items():     # still out of reach: it waits, as it did
            was = result.outcomes.get(ticket) or TicketOutcome(ticket, TicketStatus.FAILED)
            done[ticket] = replace(
                was, reason=f"{why}; `runner resume {run_id}` finishes it once it is back",
                interrupted=True, started=was.started or time.time())
        integrator = Integrator(host, clone=root / "integration", base=result.base_sha,
                                integrated_ref=integrated_ref(run_id),
                                target=None if phase.checks else result.target,
                                history=result.integrated, run_id=run_id,
                                committer=ctx.authorship.committer)
        if refused := preflight(ctx, result, selftest=options.preflight):
            result.state = "interrupted"         # its finished tickets stay; resume again later
            write_state(result)
            raise SelfTestFailed(refused)
        return _drive(ctx, result, integrator, options, workers, done=done)


def _drive(ctx: RunContext, result: RunResult, integrator: Integrator, options: RunOptions,
           workers: int,
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
            phase, concurrency=workers, done=done, on_result=record,
            run_one=lambda t, start, n: run_ticket(ctx, t, start, n), integrate=integrate,
            # Sequential: each ticket sees the work of those before it, as the seed's
            # fallback did, so none of them conflicts.
            start_point=lambda t, attempt: integrator.head
            if t.depends_on or attempt or options.sequential else result.base_sha,
            rerun_conflicts=not options.sequential,
            allow_overlap=options.allow_overlap, sink=sink, stop=lambda: _stop(ctx),
            publish=integrator.publish,
            prepare=(lambda t: ahead.submit(make_ahead, ctx, t, "")) if ctx.gateway is None
            else lambda t: None,
            hard_stop=lambda: ctx.provider.remove_run(ctx.run_id),
            blocked=lambda: "the phase budget is spent" if ctx.ledger.budget_reached() else None)
        result.outcomes = outcomes
        if waiting := [o.ticket for o in outcomes.values() if o.interrupted and o.started]:
            # Their workspaces out of reach for now (a node away): neither the phase's
            # checks nor landing judge a phase that is not whole; the resume does.
            result.state = "interrupted"
            sink.emit(Notice(f"run {ctx.run_id} waits for {', '.join(waiting)} (and what "
                             f"depends on them): finish it with `runner resume {ctx.run_id}` "
                             "once their workspaces can be reached", level="warning"))
        else:
            if phase.checks:
                began = time.time()
                gate = phase_gate(ctx, integrator)
                result.spans.append([CHECKS_SPAN, began, time.time()])
                result.checks_passed, result.checks_reason = gate.ok, gate.reason
                result.culprit = gate.culprit
            if options.land and result.exit_code == 0:
                result.landed = land(ctx.host, phase.base, result.base_sha, result.target,
                                     sink)
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
    from runner.phase import recipe_for

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
        from runner.agents import binary_for

        claude = binary_for(phase).path
    return RunContext(run_id=result.run_id, phase=phase, host=host, root=result.run_dir,
                      claude=claude,
                      objects=objects,
                      ledger=ledger, sink=sink,
                      provider=backend.provider(run_id=result.run_id, root=result.run_dir),
                      keep=options.keep, authorship=read_authorship(host, phase))


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


def _concurrency(phase: Phase, options: RunOptions, backend: Backend, sink: EventSink) -> int:
    """How many tickets run at once: as asked (more than the engine holds is said, then
    done), else as many as the engine holds."""
    if options.sequential:
        return 1
    workers, why, said = concurrency_for(phase, options.concurrency or phase.concurrency,
                                         backend.capacity())
    if why:
        sink.emit(Notice(why))
    if said:
        sink.emit(Notice(said, level="warning"))
    return workers


def _save_previous_target(host: HostRepo, run_id: str, target: str, sink: EventSink) -> None:
    """A run resets ``target`` to base; keep what it pointed at, so nothing is lost."""
    previous = host.resolve(f"refs/heads/{target}")
    if previous:
        host.update_ref(previous_target_ref(run_id), previous)
        sink.emit(Notice(f"target {target} was at {previous[:12]}; kept as "
                         f"{previous_target_ref(run_id)}", level="warning"))


