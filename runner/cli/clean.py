"""`runner clean`: remove the sandboxes and checkouts of ended runs, and orphaned sandboxes.
Never a ref, never the target branch; work found in a checkout that no ref holds yet is
collected first. Everything on an engine goes through its backend."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from runner.errors import InputError
from runner.host import STORE, HostRepo, discard_tree, driving, is_driven
from runner.phase import load_phase
from runner.records import PHASE_COPY, EventSink, Notice, load_result
from runner.run import RunOptions, run_context, salvage_workspaces
from runner.sandbox import Backend, SandboxRecord, connect, resolve
from runner.views import runs

# The run's own scratch on this machine, beside its records.
SCRATCH = ("integration", "bundles")


def clean(*, host: HostRepo, state_dir: Path, local: Callable[[], Backend], sink: EventSink,
          run_id: str | None = None, everything: bool = False) -> list[str]:
    """Clean one run, or every ended run (and orphans on ``local()``, this machine's engine,
    connected only when a run or the orphans need it: a run on a cluster needs no Docker
    here); ``everything`` also removes the runs' records (logs, transcripts, run.json)."""
    known = {r.run_id: r for r in runs(state_dir)}
    if run_id is not None and run_id not in known:
        raise InputError(f"no run {run_id!r} in {state_dir}; `runner status` lists the runs")
    with ExitStack() as held:
        # Hold each run while cleaning it: a resume cannot start under us, nor we under it.
        ended = []
        for rid in [run_id] if run_id else list(known):
            try:
                held.enter_context(driving(state_dir / rid))
                ended.append(rid)
            except InputError:
                if run_id:
                    raise
        done: list[str] = []
        if run_id is None:
            here = local()
            for sandbox in here.sandboxes():
                if (sandbox.run_id not in known and not _driven_elsewhere(sandbox)
                        and here.remove_sandbox(sandbox.name)):
                    done.append(f"removed container {sandbox.name} (orphan)")
        for rid in ended:
            done += _clean_run(host, state_dir / rid, local, sink, everything)
    return done


def _driven_elsewhere(sandbox: SandboxRecord) -> bool:
    """A sandbox of a live run of another repo (or state dir) is no orphan."""
    run_dir = sandbox.labels.get("runner.run-dir")
    return run_dir is not None and is_driven(Path(run_dir))


def _clean_run(host: HostRepo, root: Path, local: Callable[[], Backend], sink: EventSink,
               everything: bool) -> list[str]:
    result = load_result(root)
    phase = load_phase(root / PHASE_COPY)
    engine = resolve(phase.engine)
    backend = local() if engine.local else connect(engine)   # its sandboxes are on that engine
    ctx = run_context(phase, host, result, backend, sink,
                      RunOptions(repo=host.top, phase_file=root / PHASE_COPY))
    removed = ctx.provider.remove_run(root.name)
    # Saved first, then removed; one out of reach (its node away) is set aside, kept.
    salvage_workspaces(ctx, result.base_sha, "cleaned", away_aside=True)
    problems = [problem for problem in [ctx.provider.clear()] if problem]
    # A checkout whose work could not be collected stays, with the store it borrows from.
    kept = ctx.provider.aside()
    problems += [problem for name in (*SCRATCH, *(() if kept else (STORE,)))
                 if (problem := discard_tree(root / name))]
    if everything and not kept and not problems:
        if problem := discard_tree(root):
            problems.append(problem)
        else:
            return [*_removed(removed, root.name), f"removed run {root.name} entirely"]
    for problem in problems:
        sink.emit(Notice(problem, level="warning"))
    sink.emit(Notice(f"cleaned run {root.name}"))
    what = (f"{len(kept)} workspaces kept (their work could not be collected): "
            + ", ".join(kept) if kept else "workspaces removed")
    return [*_removed(removed, root.name), f"cleaned run {root.name}: {what}, refs and "
            "records kept"]


def _removed(count: int, run_id: str) -> list[str]:
    return [f"removed {count} container{'s' * (count != 1)} of run {run_id}"] if count else []
