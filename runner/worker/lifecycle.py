"""One ticket, start to end: workspace -> sandbox -> agent -> checks -> collect.

The container is always torn down; the worker's commits always reach its ref.
"""

from __future__ import annotations

import secrets
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING

from runner.agents import KINDS, AgentContext, AgentKind, AgentResult, agent_for
from runner.errors import EngineUnavailable, GitError, RunnerError, WorkspaceAway
from runner.host import attempt_ref
from runner.phase import Ticket
from runner.records import (NOTHING_CHANGED, CappedLog, CheckResult, Fetched, LockedLog, LogWriter,
                            SinkValve, TicketChanged, TicketOutcome, TicketOutput, TicketStatus,
                            TicketUsage, Transcript, Usage)
from runner.sandbox import (CLAUDE_BINARY, GRADLE_HOME, GRADLE_RO_CACHE, Checkout, Durable, Limits,
                            Mount, Sandbox, SandboxSpec, read_output)
from runner.text import one_line
from runner.worker.checks import run_checks
from runner.worker.collecting import GIT, CollectError, collect, commit_leftovers, discard_leftovers
from runner.worker.context import RunContext
from runner.worker.gates import gate_ticket
from runner.worker.gatewayenv import gateway_env, mirror_env

if TYPE_CHECKING:   # aiohttp is imported only by a run that starts a gateway
    from runner.gateway import ApiCall, Caller, Connection, Fetch


def sandbox_spec(ctx: RunContext, ticket_id: str, checkout: Checkout) -> SandboxSpec:
    """The sandbox a worker gets: its checkout, the shared cache and the run's files
    read-only, its limits and labels."""
    phase = ctx.phase
    env = {"RUNNER_RUN": ctx.run_id, "RUNNER_TICKET": ticket_id, "HOME": "/tmp",
           "GRADLE_USER_HOME": GRADLE_HOME, **ctx.authorship.env(ticket_id),
           **(gateway_env() if ctx.gateway else {}),
           **mirror_env(ctx.gateway.mirrors if ctx.gateway else None)}
    if phase.gradle.shared_cache:
        env["GRADLE_RO_DEP_CACHE"] = GRADLE_RO_CACHE
    # The binary goes into every sandbox of the run, so the self-test sees what tickets get;
    # but where it is not a mount of this machine's file but a copy sent in (0.4 GB: a
    # Pod's), into the tickets' alone whose kind runs it.
    kind = _kind_of(ctx, ticket_id)
    carried = ctx.claude and (ctx.provider.shares_disk or bool(kind and kind.runs_claude_code))
    files = (Mount(ctx.claude, CLAUDE_BINARY, read_only=True),) if carried else ()
    return SandboxSpec(
        name=ctx.container_name(ticket_id), image=phase.image, env=env, checkout=checkout,
        shared_cache=phase.gradle.shared_cache, files=files,
        labels={"runner.run": ctx.run_id, "runner.ticket": ticket_id,
                # Whether the run is live can be told from any repo (runner clean): on a
                # local engine only, where the path means something (and says no more).
                **({"runner.run-dir": str(ctx.root)}
                   if ctx.provider.shares_disk else {})},
        limits=Limits(cpus=phase.resources.cpus, memory=phase.resources.memory,
                      pids=phase.resources.pids, disk=phase.resources.disk_bytes),
        network=phase.network, user=ctx.user, runtime=phase.runtime,
        durable=(Durable(phase.kubernetes.storage_class)
                 if phase.kubernetes.workspaces == "claim" else None))


def _kind_of(ctx: RunContext, ticket_id: str) -> AgentKind | None:
    """The agent kind of ticket ``ticket_id``; None for a probe's or a check's sandbox."""
    try:
        return KINDS[ctx.phase.ticket(ticket_id).agent]
    except KeyError:
        return None


@contextmanager
def open_sandbox(ctx: RunContext, ticket_id: str, checkout: Checkout, *, keep: bool = False,
                 name: str | None = None, caller: Caller | None = None,
                 say: Callable[[str], None] | None = None) -> Iterator[Sandbox]:
    """The worker's sandbox over ``checkout``, with its own gateway socket when the run
    has a gateway (served for ``caller``, else for the ticket with nothing recorded); what
    befalls its commands (a stream that broke) goes to ``say``."""
    spec = sandbox_spec(ctx, ticket_id, checkout)
    if name:
        spec = replace(spec, name=name)
    with ExitStack() as stack:
        if ctx.gateway is not None:
            from runner.gateway import SOCKET_NAME, Caller

            caller = caller or Caller(ticket=ticket_id, max_tokens=None,
                                      on_call=lambda call: None,
                                      on_connection=lambda connection: None)
            spec = replace(spec, gateway=stack.enter_context(ctx.gateway.serve(caller))
                           / SOCKET_NAME)
        # Closed in reverse: the container goes before its socket.
        yield stack.enter_context(ctx.provider.open(spec, keep=keep, say=say))


def gateway_caller(ctx: RunContext, ticket: Ticket, log: LogWriter, transcript: Transcript,
                   refusals: list[str]) -> Caller:
    """Who the gateway serves on the ticket's socket: each API call and connection goes to
    its transcript and its log; what the gateway refused is kept in ``refusals``."""
    from runner.gateway import Caller

    def note(line: str) -> None:
        log.write(f"runner: gateway: {one_line(line)}\n")
        log.flush()

    def on_call(call: ApiCall) -> None:
        transcript.write("api", method=call.method, path=call.path, model=call.model,
                         status=call.status, tokens=call.usage.tokens,
                         input=call.usage.input, output=call.usage.output,
                         latency=round(call.latency, 3), refused=call.refused)
        if call.refused:
            refusals.append(call.refused)
            note(f"refused {call.method} {call.path}: {call.refused}")
        else:
            note(f"{call.method} {call.path} {call.model or '-'}: {call.status}, "
                 f"{call.usage.tokens} tokens, {call.latency:.1f}s")
        if call.scrubbed:
            note(_SCRUBBED.format(call.scrubbed, f"{call.method} {call.path}"))
        totals = ctx.ledger.ticket(ticket.id)
        ctx.sink.emit(TicketUsage(ticket.id, totals.usage.tokens, totals.cost))

    def on_connection(connection: Connection) -> None:
        transcript.write("egress", via=connection.kind, host=connection.host,
                         port=connection.port, allowed=connection.allowed,
                         reason=connection.reason, address=connection.address,
                         bytes_up=connection.bytes_up, bytes_down=connection.bytes_down,
                         duration=round(connection.duration, 3))
        where = f"{connection.kind} {connection.host}:{connection.port}"
        if connection.allowed:
            note(f"{where} via {connection.address}: {connection.bytes_up} bytes up, "
                 f"{connection.bytes_down} down, {connection.duration:.1f}s")
            if connection.scrubbed:
                note(_SCRUBBED.format(connection.scrubbed, where))
        else:
            note(f"refused {where}: {connection.reason}")
            ctx.sink.emit(TicketOutput(ticket.id, f"runner: gateway refused {where}"))

    def on_fetch(fetch: Fetch) -> None:
        transcript.write("cache", ecosystem=fetch.ecosystem, what=fetch.what,
                         source=fetch.source, bytes=fetch.bytes,
                         upstream_bytes=fetch.upstream_bytes, reason=fetch.reason,
                         artifact=fetch.artifact)
        ctx.ledger.record_fetch(ticket=ticket.id, fetched=fetched_by(fetch))
        if fetch.source in ("failed", "refused"):
            note(f"cache: {fetch.ecosystem}: {fetch.what}: {fetch.reason}")
            ctx.sink.emit(TicketOutput(ticket.id, f"runner: cache: {fetch.ecosystem}: "
                                                  f"{one_line(fetch.reason)}"))
            return
        came = (f"from upstream ({fetch.upstream_bytes} bytes)" if fetch.source == "upstream"
                else "from the cache")
        note(f"cache: {fetch.ecosystem}: {fetch.what} {came}"
             + (f"; {fetch.reason}" if fetch.reason else ""))

    return Caller(ticket=ticket.id, max_tokens=ticket.max_tokens, on_call=on_call,
                  on_connection=on_connection, on_fetch=on_fetch)


def fetched_by(fetch: Fetch) -> Fetched:
    """One request's share of a ticket's totals."""
    if fetch.source in ("failed", "refused"):
        return Fetched(failed=1)
    if fetch.source == "upstream":
        return Fetched(upstream_requests=1, upstream_bytes=fetch.upstream_bytes)
    return Fetched(cache_requests=1, cache_bytes=fetch.bytes)   # cache, or stale


_SCRUBBED = ("the API key came back from upstream in the response to {1}: {0} copies of it "
             "taken out before the worker got it")



def run_ticket(ctx: RunContext, ticket: Ticket, start: str, attempt: int = 0) -> TicketOutcome:
    """Run ``ticket`` from commit ``start``; its commits end up in its ref, whatever happens.
    A rerun (``attempt`` > 0) works in fresh directories; the ref of the run before it is
    kept at refs/runner/<run>/attempts/<ticket>/<n> (…/before-resume when a resumed run runs
    the ticket again)."""
    started = time.time()
    root = ctx.root if attempt == 0 else ctx.root / "reruns" / str(attempt)  # its bundles
    ref = ctx.ticket_ref(ticket.id)
    if previous := ctx.host.resolve(ref):
        label = str(attempt) if attempt else "before-resume"
        ctx.host.update_ref(attempt_ref(ctx.run_id, ticket.id, label), previous)
    deadline = time.monotonic() + ticket.timeout
    log_path = ctx.root / "logs" / f"{ticket.id}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)

    def outcome(status: TicketStatus, reason: str = "") -> TicketOutcome:
        # Not told here: the scheduler tells a ticket's outcome once it is final.
        totals = ctx.ledger.ticket(ticket.id)
        return TicketOutcome(
            ticket.id, status, reason, start=start, started=started, ended=time.time(),
            tip=collected.tip if collected else None,
            ref=collected.ref if collected else None,
            commits=collected.commits if collected else 0, tier=ticket.tier,
            model=ctx.phase.model_for(ticket) if KINDS[ticket.agent].on_models else "",
            tokens=totals.usage.tokens, cost=totals.cost, fix_loops=work.fix_loops,
            retries=work.retries, turns=work.turns, reruns=attempt, reviews=tuple(reviews),
            infra=restarted[0] > 0, interrupted=ctx.cancelled.is_set() or waits,
            fetched=totals.fetched)

    ctx.sink.emit(TicketChanged(ticket.id, TicketStatus.PROVISIONING))
    work, collected, reviews, restarted = AgentResult(ok=True), None, [], [0]
    waits = False     # its workspace is out of reach for now: a resume finishes it
    transcript = Transcript(ctx.root / "transcripts" / f"{ticket.id}.jsonl")
    refusals: list[str] = []     # what the gateway refused the ticket (its budgets)
    with CappedLog(log_path) as capped:
        log = LockedLog(capped)  # the gateway's thread writes to it too
        on_output = output_handler(ctx, ticket.id, log)
        try:
            if attempt:
                log.write(f"=== rerun {attempt}, from {start[:12]} ===\n")
            checkout = ctx.checkout(ticket.id, start,
                                    place=f"reruns/{attempt}" if attempt else "")
            # A rerun's container has a name of its own: the first one may be kept (--keep).
            name = (f"{ctx.container_name(ticket.id)}-rerun{attempt}-{secrets.token_hex(2)}"
                    if attempt else None)
            caller = (gateway_caller(ctx, ticket, log, transcript, refusals)
                      if ctx.gateway else None)
            with open_sandbox(ctx, ticket.id, checkout, keep=ctx.keep, name=name,
                              caller=caller, say=lambda line: log.write(
                                  f"runner: {one_line(line)}\n")) as sandbox:
                log.write(f"runner: {sandbox.name}: commands through {sandbox.commands_via}\n")
                judged: list[str] = []
                work = _work(ctx, ticket, sandbox, log, on_output, deadline, start, reviews,
                             judged, transcript)
                work = _unless_refused(work, refusals)
                if work.ok and ticket.checks:
                    sandbox.reset()    # what the checks left running (a build daemon) stops
                restarted[0] = sandbox.restarts
                ctx.sink.emit(TicketChanged(ticket.id, TicketStatus.COLLECTING))
                collected = collect(sandbox, ctx.host, start=start, ref=ref,
                                    bundle=root / "bundles" / f"{ticket.id}.bundle",
                                    readable=ctx.objects.objects,
                                    expect=judged[-1] if work.ok and judged else None)
                work = _unless_stopped(work, sandbox)   # also a stop during collection
                if sandbox.stopped_for and not ctx.keep:
                    discard_leftovers(sandbox)   # its commits are in its ref now
        except WorkspaceAway as e:
            log.write(f"runner: {one_line(str(e))}\n")
            waits, restarted[0] = True, 1
            work = _also(work, f"{e}; `runner resume {ctx.run_id}` finishes it once it is back")
        except (RunnerError, CollectError) as e:
            log.write(f"runner: {one_line(str(e))}\n")
            _stop_if_engine_gone(ctx, ticket, e)
            if isinstance(e, EngineUnavailable):    # for a moment: as a stop from outside,
                restarted[0] += 1                    # retries: runs the ticket again
            work = _also(work, str(e))
        except Exception as e:  # a bug fails this ticket, not the run; a lost engine the run
            log.write(traceback.format_exc())
            _stop_if_engine_gone(ctx, ticket, e)
            work = _also(work, f"internal error: {e.__class__.__name__}: {e}")
        finally:
            on_output.close()
    if ctx.cancelled.is_set() and work.ok:
        work = _also(work, "the run was interrupted")
    if not work.ok:
        return outcome(TicketStatus.FAILED, work.reason)
    if not collected or not collected.commits:
        return outcome(TicketStatus.FAILED, NOTHING_CHANGED)
    # The gates, here: the lead's thread integrates one ticket after another, and a gate
    # needs nothing but the host repo.
    try:
        refused = gate_ticket(ctx.host, ctx.phase, ticket, base=ctx.objects.base, start=start,
                              tip=collected.tip, commits=collected.commits)
    except GitError as e:
        refused = f"integration failed: {e}"
    except Exception as e:   # a bug, or a size nobody foresaw: this ticket's, not the run's
        refused = f"integration failed: internal error: {type(e).__name__}: {e}"
    return outcome(TicketStatus.FAILED, refused) if refused else outcome(
        TicketStatus.COLLECTING)


REVIEW_DIFF = 60_000     # bytes of a change the review reads; it is told of the rest
# $@: git diff; its size first, then its first REVIEW_DIFF bytes (git runs twice: no copy).
_DIFF_HEAD = f'size=$("$@" | wc -c); echo "$size"; "$@" | head -c {REVIEW_DIFF}'


def review_diff(sandbox: Sandbox, start: str, head: str) -> str | None:
    """The change from ``start`` to ``head`` as the review reads it, whole or cut (saying
    how much was cut); None when its output did not arrive whole."""
    shown = read_output(sandbox, ["sh", "-c", _DIFF_HEAD, "diff", *GIT, "diff",
                                  f"{start}..{head}"], timeout=120)
    size, _, diff = shown.output.partition("\n")
    if not shown.ok or not size.strip().isdigit():
        return None
    left = int(size) - len(diff.encode())
    return diff + (f"\n[… {left:,} more bytes of the diff not shown]" if left > 0 else "")


def _stop_if_engine_gone(ctx: RunContext, ticket: Ticket, error: Exception) -> None:
    """A failure because the engine went away is the run's, not the ticket's: stop the run
    (resume redoes what was under way) instead of failing tickets one by one."""
    if not ctx.provider.answers():
        ctx.cancelled.set()
        raise EngineUnavailable(
            f"the {ctx.phase.engine if ctx.phase.engine != 'local' else 'Docker'} engine "
            f"stopped answering during run {ctx.run_id} ({ticket.id}: {error}); the "
            "workspaces keep what the workers did: start the engine again, then "
            f"`runner resume {ctx.run_id}`") from error


def _also(result: AgentResult, problem: str) -> AgentResult:
    """A failure on top of ``result``: the first reason stays first."""
    return replace(result, ok=False,
                   reason=problem if result.ok else f"{result.reason}; {problem}")


def _unless_stopped(result: AgentResult, sandbox: Sandbox, more: str = "") -> AgentResult:
    """A sandbox that stopped its worker over a limit (disk) fails the ticket, that reason
    first: it is why the command that stopped failed."""
    why = sandbox.stopped_for
    if not why:
        return result
    if result.ok:
        reason = why
    else:       # the agent's reason says it already (a script's, a check's) or follows
        reason = result.reason if why in result.reason else f"{why}; {result.reason}"
    return replace(result, ok=False, reason=reason + more)


def _unless_refused(result: AgentResult, refusals: list[str]) -> AgentResult:
    """A ticket the gateway refused an API call (over a budget) fails for that reason first:
    the agent's own reason is how it took the refusal."""
    if not refusals:
        return result
    why = refusals[0] + " (refused at the gateway)"
    # The agent's reason that only repeats the refusal (an API error it printed) says no more.
    said = result.ok or not result.reason or refusals[0] in result.reason
    return replace(result, ok=False, reason=why if said else f"{why}; {result.reason}")


def _work(ctx: RunContext, ticket: Ticket, sandbox: Sandbox, log: LogWriter,
          on_output: TicketOutputs, deadline: float, start: str,
          reviews: list[str], judged: list[str], transcript: Transcript) -> AgentResult:
    """The agent's turn, then what it left is committed, then the ticket's checks and the
    review gate (unless the agent ran them itself, in its fix loops). Each commit the checks
    judge is appended to ``judged``."""

    def account(usage: Usage, model: str | None = None) -> None:
        ctx.ledger.record(ticket=ticket.id, model=model or ctx.phase.model_for(ticket),
                          usage=usage)
        totals = ctx.ledger.ticket(ticket.id)
        ctx.sink.emit(TicketUsage(ticket.id, totals.usage.tokens, totals.cost))

    def check() -> CheckResult:
        # What is judged is one commit, and only the worker's files: nothing it started may
        # run on (a background committer), and all it left is committed first. That commit
        # is the one collected.
        sandbox.reset()
        judged.append(commit_leftovers(sandbox, ticket.default_commit_message,
                                       run_id=ctx.run_id, ticket=ticket.id))
        checked = run_checks(sandbox, ticket.checks, log=log, on_output=on_output,
                             deadline=deadline)
        if not checked.ok or ctx.phase.review_model is None:
            return checked
        from runner.worker.review import review_change   # the anthropic SDK, only for a review

        diff = review_diff(sandbox, start, judged[-1])
        if diff is None:
            return CheckResult(ok=False, reason="the review could not read the change (its "
                               "output did not arrive whole)")
        verdict = review_change(ticket=ticket, diff=diff, model=ctx.phase.review_model,
                                deadline=deadline, cancelled=ctx.cancelled, account=account)
        reviews.append(str(verdict))
        transcript.write("review", verdict=str(verdict))
        on_output(f"review: {verdict}")
        if verdict.approve:
            return CheckResult(ok=True)
        return CheckResult(ok=False, output="\n".join(verdict.reasons),
                           reason="the review requested changes: " + "; ".join(verdict.reasons))

    ctx.sink.emit(TicketChanged(ticket.id, TicketStatus.RUNNING))
    log.write(f"$ [{ticket.agent}] {ticket.run or ticket.prompt or ''}\n")
    agent_ctx = AgentContext(
        ticket=ticket, phase=ctx.phase, sandbox=sandbox, on_output=on_output,
        deadline=deadline, ledger=ctx.ledger, account=account, check=check,
        cancelled=ctx.cancelled,
        transcript=transcript,
        commit=lambda message: commit_leftovers(sandbox, message, run_id=ctx.run_id,
                                                ticket=ticket.id))
    try:
        result = (AgentResult(ok=False, reason="the run was interrupted")
                  if ctx.cancelled.is_set() else agent_for(ticket).run(agent_ctx))
    except CollectError as e:      # the agent's own commit failed
        result = AgentResult(ok=False, reason=str(e))
    except (EngineUnavailable, WorkspaceAway):
        raise                      # the run's trouble, not the agent's (run_ticket says it)
    except Exception as e:         # a bug in an agent must not cost the ticket its work
        log.write(traceback.format_exc())
        result = AgentResult(ok=False, reason=f"agent error: {type(e).__name__}: {e}")
    if result.checked:
        # The agent committed at finish and then ran the checks: what is left now is
        # theirs (build output), not the ticket's work.
        return _unless_stopped(result, sandbox)
    if sandbox.stopped_for:
        # What it left uncommitted is what went over the budget: committing it would copy
        # it into the host repo too. What it committed is still collected.
        left = "kept in its workspace (--keep)" if ctx.keep else "discarded"
        return _unless_stopped(result, sandbox, f"; what it left uncommitted is {left}")
    try:
        if result.ok:
            checked = check()
            return result if checked.ok else _also(result, checked.reason)
        # What a failed worker left running (a fork bomb, a hung daemon) must not stop its
        # work from being collected; its partial work is kept.
        sandbox.reset()
        commit_leftovers(sandbox, ticket.default_commit_message, run_id=ctx.run_id,
                         ticket=ticket.id)
    except CollectError as e:
        return _also(result, str(e))
    return result


class TicketOutputs:
    """Each line a worker prints goes to its log file (capped) and, as an event, to the
    sinks (through a SinkValve: cut, and at a bounded rate); ``close`` once it ends."""

    def __init__(self, log: LogWriter, emit: Callable[[str], None]) -> None:
        self._log, self._valve = log, SinkValve(emit)

    def __call__(self, line: str) -> None:
        # "| " before every worker line: a worker cannot print a line that reads as runner's
        # own ("[check] passed: …") in its log.
        self._log.write(f"| {line}\n")
        self._log.flush()
        self._valve(line)

    def close(self) -> None:
        self._valve.close()


def output_handler(ctx: RunContext, ticket_id: str, log: LogWriter) -> TicketOutputs:
    return TicketOutputs(log, lambda line: ctx.sink.emit(TicketOutput(ticket_id, line)))
