"""`runner clean`: remove the containers and workspaces of ended runs, and orphaned
containers. Never a ref, never the target branch; work found in a workspace that no ref
holds yet is collected first."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import docker
import docker.errors

from runner.errors import InputError
from runner.events import EventSink, Notice
from runner.gitops import HostRepo
from runner.objectstore import STORE
from runner.phase import load_phase
from runner.record import PHASE_COPY, load_result
from runner.run import RunOptions, run_context, salvage_workspaces
from runner.runlock import driving, is_driven
from runner.status import runs
from runner.sandbox.engines import connect, resolve
from runner.trees import discard_tree

SCRATCH = ("workspaces", "gradle", "reruns", STORE, "integration", "checks", "selftest", "bundles")


def clean(*, host: HostRepo, state_dir: Path, client: docker.DockerClient, sink: EventSink,
          run_id: str | None = None, everything: bool = False) -> list[str]:
    """Clean one run, or every ended run (and orphans); ``everything`` also removes the
    runs' records (logs, transcripts, run.json)."""
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
        # ignore_removed: another live run's workers go while we look.
        for container in client.containers.list(all=True, ignore_removed=True,
                                                filters={"label": "runner.run"}):
            owner = container.labels.get("runner.run", "")
            if owner in ended or (run_id is None and owner not in known
                                  and not _driven_elsewhere(container.labels)):
                try:
                    container.remove(force=True)
                except docker.errors.NotFound:
                    continue
                done.append(f"removed container {container.name}"
                            + ("" if owner in known else " (orphan)"))
        for rid in ended:
            done += _clean_run(host, state_dir / rid, client, sink, everything)
    return done


def _driven_elsewhere(labels: dict[str, str]) -> bool:
    """A container of a live run of another repo (or state dir) is no orphan."""
    run_dir = labels.get("runner.run-dir")
    return run_dir is not None and is_driven(Path(run_dir))


def _clean_run(host: HostRepo, root: Path, client: docker.DockerClient, sink: EventSink,
               everything: bool) -> list[str]:
    result = load_result(root)
    phase = load_phase(root / PHASE_COPY)
    engine = resolve(phase.engine)
    if not engine.local:        # its containers and volumes are on that engine
        client = connect(engine)
        for container in client.containers.list(all=True, ignore_removed=True,
                                                filters={"label": f"runner.run={root.name}"}):
            container.remove(force=True)
    ctx = run_context(phase, host, result, client, sink, RunOptions(repo=host.top,
                                                                 phase_file=root / PHASE_COPY))
    salvage_workspaces(ctx, result.base_sha, "cleaned")   # saved first, then removed
    # A workspace whose work could not be collected stays, with everything it needs.
    kept = [*(root / "workspaces").glob("*"), *(root / "reruns").glob("*/workspaces/*"),
            *(root / "unsalvaged").glob("*")]     # they borrow the run's object store
    problems = [problem for name in SCRATCH
                if not (kept and name in ("workspaces", "gradle", "reruns", STORE))
                and (problem := discard_tree(root / name))]
    if everything and not kept and not problems:
        if problem := discard_tree(root):
            problems.append(problem)
        else:
            return [f"removed run {root.name} entirely"]
    for problem in problems:
        sink.emit(Notice(problem, level="warning"))
    sink.emit(Notice(f"cleaned run {root.name}"))
    what = (f"{len(kept)} workspaces kept (their work could not be collected)" if kept
            else "workspaces removed")
    return [f"cleaned run {root.name}: {what}, refs and records kept"]
