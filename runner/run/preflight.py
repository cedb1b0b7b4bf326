"""Before any ticket runs: the phase's inputs checked on this machine (the API key, host
variables, what the engine can carry), then the image check and the isolation self-test,
with the first tickets' sandboxes made meanwhile."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor


from runner.agents import KINDS, kinds_where
from runner.errors import EnvironmentProblem, InputError, PhaseFileError, RepoError
from runner.host import HostRepo
from runner.isolation import image_refusal, run_selftest
from runner.phase import Phase, Ticket
from runner.records import SELFTEST_SPAN, EventSink, Notice, RunResult, default_prices, write_state
from runner.run.options import RunOptions
from runner.run.phasegate import branch_of
from runner.sandbox import Backend, Capacity, Engine
from runner.units import size_in_bytes
from runner.worker import RunContext, mirrors_for, sandbox_spec


def check_inputs(phase: Phase, options: RunOptions, host: HostRepo, sink: EventSink,
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
    for said in unhonoured(phase, engine):
        sink.emit(Notice(said, level="warning"))
    mirrors_for(phase)        # each upstream named, the store usable: before anything starts
    _check_agent_inputs(phase, sink)


def unhonoured(phase: Phase, engine: Engine) -> list[str]:
    """What the phase sets that its engine cannot honour, a sentence each naming the field
    (said before anything starts, and by --dry-run)."""
    said = []
    if "pids" in phase.resources.model_fields_set and not engine.limits_processes:
        said.append(f"resources.pids has no effect on {engine.title}: a Pod's spec cannot "
                    "bound its processes (the node's kubelet bounds every Pod alike, its "
                    "--pod-max-pids); leave it out, or run on a Docker engine")
    return said


def runtime_refusal(phase: Phase, runtimes: frozenset[str] | None) -> str | None:
    """Why the engine cannot give the phase's ``runtime:`` (it has no runtime of that name),
    or None: said once before anything starts, not by every ticket's sandbox."""
    if phase.runtime is None or runtimes is None or phase.runtime in runtimes:
        return None
    has = ", ".join(sorted(runtimes)) or "none"
    return (f"runtime: {phase.runtime!r} is not a runtime of the engine (it has: {has}); name "
            "one of them, or leave runtime out")


def check_runtime(phase: Phase, backend: Backend) -> None:
    if why := runtime_refusal(phase, backend.runtimes() if phase.runtime else None):
        raise EnvironmentProblem(why)


def crowding(phase: Phase, workers: int, capacity: Capacity | None) -> str | None:
    """Why ``workers`` sandboxes of the phase's resources do not fit the engine at once (a
    sentence naming what fits), or None."""
    if capacity is None:
        return None
    cpus, memory = phase.resources.cpus, size_in_bytes(phase.resources.memory)
    fit = capacity.fits(cpus, memory)
    if fit == 0:
        return (f"no worker fits the engine: {_has(capacity)}, and a worker of cpus: {cpus:g} "
                f"and memory: {phase.resources.memory} needs more than any one of them; "
                "lower resources.cpus or resources.memory")
    if workers <= fit:
        return None
    need = (f"{workers} workers of cpus: {cpus:g} and memory: {phase.resources.memory} need "
            f"{workers * cpus:g} CPUs and {_gib(workers * memory)}")
    return (f"concurrency {workers} asks for more than the engine holds: {need}, and "
            f"{_has(capacity)}; {fit} fit at once (concurrency: {fit}), more share them")


def concurrency_for(phase: Phase, asked: int | None,
                    capacity: Capacity | None) -> tuple[int, str, str | None]:
    """How many tickets run at once (as asked, else as many as the engine holds); why, when
    the engine chose fewer than the tickets; and what does not fit it (crowding), if any."""
    workers, why = (asked, "") if asked else default_concurrency(phase, capacity)
    return workers, why, crowding(phase, workers, capacity)


def default_concurrency(phase: Phase, capacity: Capacity | None) -> tuple[int, str]:
    """How many tickets run at once when neither the phase nor a flag says: as many as fit
    the engine (each with the phase's resources), at most one per ticket, at least one; and
    why, to say when it holds fewer than the tickets. An engine that does not tell: 4."""
    tickets = len(phase.tickets)
    if capacity is None:
        return max(1, min(4, tickets)), ""
    fit = capacity.fits(phase.resources.cpus, size_in_bytes(phase.resources.memory))
    workers = max(1, min(fit, tickets))
    if workers >= tickets:
        return workers, ""
    return workers, (f"{workers} ticket{'s' * (workers != 1)} at once: what the engine "
                     f"holds ({_has(capacity)}) for workers of cpus: "
                     f"{phase.resources.cpus:g} and memory: {phase.resources.memory}; "
                     "`concurrency:` sets another number")


def _has(capacity: Capacity) -> str:
    if len(capacity.machines) == 1:
        return f"it has {capacity.cpus:g} CPUs and {_gib(capacity.memory_bytes)}"
    return (f"its {len(capacity.machines)} nodes have {capacity.cpus:g} CPUs and "
            f"{_gib(capacity.memory_bytes)} between them")


def _gib(size: int) -> str:
    return f"{size / (1 << 30):.1f} GiB"


def _check_remote(phase: Phase, options: RunOptions, engine: Engine) -> None:
    """What a remote engine cannot carry, refused before anything starts (never by passing
    a host path in instead)."""
    if phase.gradle.shared_cache is not None:
        raise PhaseFileError(options.phase_file, f"gradle.shared_cache is a directory on this "
                             f"machine, which {engine.name} cannot mount: leave it out",
                             field="gradle.shared_cache")
    if phase.network not in engine.networks:
        raise PhaseFileError(options.phase_file, f"network: {phase.network} is not built for "
                             f"{engine.title} (its sandboxes get {', '.join(engine.networks)}"
                             "): leave it out, or run with --engine local", field="network")


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
        from runner.agents import binary_for

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


def preflight(ctx: RunContext, result: RunResult, *, ahead: Sequence[Ticket] = (),
               selftest: bool = True) -> str | None:
    """Before any ticket: the image checked for what runner runs in it, and (unless told
    not to) the isolation self-test, exactly as workers start; why no ticket may start, or
    None. Meanwhile the sandboxes of ``ahead`` (the first tickets) are made; a refusal
    discards them, and nothing has run in them."""
    started, began = time.perf_counter(), time.time()
    pool = ThreadPoolExecutor(max_workers=AHEAD, thread_name_prefix="ahead")
    try:
        for ticket in ahead:
            pool.submit(make_ahead, ctx, ticket, result.base_sha)
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


def make_ahead(ctx: RunContext, ticket: Ticket, start: str) -> None:
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
