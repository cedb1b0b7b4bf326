"""`runner run --dry-run`: what a run would do, without starting anything."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from runner.errors import ImageError, RepoError, RunnerError
from runner.host import open_host_repo
from runner.phase import Phase
from runner.run.scheduler import plan_waves
from runner.sandbox import BUILDABLE, Backend, resolve


def describe_plan(phase: Phase, *, repo: Path, concurrency: int | None,
                  allow_overlap: bool) -> Iterator[str]:
    host = open_host_repo(repo)
    base_sha = host.resolve(phase.base)
    if base_sha is None:
        raise RepoError(f"base {phase.base!r} is not a commit in {host.top}")
    from runner.run.preflight import (concurrency_for, runtime_refusal,   # the run's words
                                      unhonoured)

    backend, unreached = _connected(phase.engine)
    workers, why, said = concurrency_for(phase, concurrency or phase.concurrency,
                                         backend.capacity() if backend is not None else None)
    yield (f"phase {phase.name}: base {phase.base} = {base_sha[:12]}, target "
           f"{phase.target_branch}, {len(phase.tickets)} tickets, {workers} at once"
           + (", overlapping paths allowed" if allow_overlap else ""))
    if why:
        yield why
    yield from (f"warning: {said}" for said in unhonoured(phase, resolve(phase.engine)))
    if backend is not None and phase.runtime and (
            refused := runtime_refusal(phase, backend.runtimes())):
        yield f"refused: {refused}"
    if said:
        yield f"warning: {said}"
    if isinstance(phase.image, str):
        yield f"image {phase.image}: {_image_state(phase.image, phase.engine, backend, unreached)}"
    else:
        from runner.phase import recipe_for

        recipe = recipe_for(phase.image, repo)
        yield (f"image from {recipe.source}: built with runner's layer when no image of its "
               "inputs is there yet")
    if phase.cache is not None:
        from runner.worker import mirrors_for

        mirrors = mirrors_for(phase, open_store=False)     # a dry run makes nothing
        assert mirrors is not None
        yield (f"cache in {mirrors.store} (max {phase.cache.max}): " + ", ".join(
            f"{eco} from {url}" for eco, url in mirrors.upstreams.items()) + (
            "" if "go" not in mirrors.upstreams else
            f"; Go modules checked by the base's go.sum and {mirrors.go_sumdb.split()[0]}"
            if mirrors.go_sumdb else "; Go modules checked by the base's go.sum alone"))
    for number, wave in enumerate(plan_waves(phase, concurrency=workers,
                                             allow_overlap=allow_overlap), start=1):
        yield f"wave {number}: " + ", ".join(t.ticket for t in wave)
        for planned in wave:
            if planned.waits_for:
                yield f"  {planned.ticket} waits for " + ", ".join(planned.waits_for)


def _connected(engine: str) -> tuple[Backend | None, str]:
    """The engine's backend, or None and why it could not be had."""
    from runner.sandbox import connect

    try:
        return connect(resolve(engine)), ""
    except RunnerError as e:
        return None, str(e)


def _image_state(image: str, engine: str, backend: Backend | None, unreached: str) -> str:
    if backend is None:
        return f"unknown ({unreached})"
    try:
        if backend.has_image(image):
            return "present"
        if not backend.engine.receives_images:
            return ("on none of the cluster's nodes yet: they pull it when a Pod starts, so "
                    "a registry they reach must have it")
        if not backend.shares_disk:
            return f"missing on {engine}; runner sends it from this machine"
        return "missing; runner builds it" if image in BUILDABLE else "MISSING"
    except ImageError:
        raise        # the engine refuses the reference: a run would stop there too
    except RunnerError as e:
        return f"unknown ({e})"
