"""The verbs around runs: init, schema, completion, doctor, images, cache, clean."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.console import Console

from runner.cli.paths import default_state_dir, state_dir_of
from runner.errors import InputError
from runner.views import Cell, Grid, show

if TYPE_CHECKING:
    from runner.records import EventSink


def cmd_init(args: argparse.Namespace) -> int:
    from runner.cli.initphase import current_branch, phase_name, phase_text, pick_image
    from runner.host import open_host_repo

    if not 1 <= args.tickets <= 100:
        raise InputError("--tickets must be 1 to 100")
    if args.output.exists() and not args.force:
        raise InputError(f"{args.output} exists; give --force to overwrite it, or --output "
                         "another file")
    host = open_host_repo(args.repo.resolve())
    text = phase_text(name=args.name or phase_name(host.top), base=current_branch(host),
                      image=pick_image(host.top, _images_here()), tickets=args.tickets)
    try:
        args.output.write_text(text)
    except OSError as e:
        raise InputError(f"cannot write {args.output}: {e.strerror}; give --output another "
                         "file") from e
    print(f"wrote {args.output}; see the plan: runner run {args.output} --dry-run")
    return 0


def _images_here() -> Callable[[str], bool]:
    """Whether the local engine has an image (none, when no engine answers: then the
    default image, which runner builds)."""
    from runner.errors import EnvironmentProblem
    from runner.sandbox import LOCAL, connect, resolve

    try:
        backend = connect(resolve(LOCAL))
    except EnvironmentProblem:
        return lambda image: False

    def has(image: str) -> bool:
        try:
            return backend.has_image(image)
        except EnvironmentProblem:
            return False
    return has


def cmd_schema(args: argparse.Namespace) -> int:
    from runner.phase import schema_text

    sys.stdout.write(schema_text())
    return 0


def cmd_completion(args: argparse.Namespace) -> int:
    from runner.cli.completion import SCRIPTS

    sys.stdout.write(SCRIPTS[args.shell])
    return 0


def cmd_complete(args: argparse.Namespace) -> int:
    from runner.cli.completion import candidates

    print("\n".join(candidates(args.parser, list(args.words))))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from runner.isolation import run_doctor
    from runner.views import PlainSink

    from runner.phase import check_image

    from runner.sandbox import check_engine

    try:
        check_image(args.image)
    except ValueError as e:
        raise InputError(f"--image: {e}") from e
    try:
        check_engine(args.engine)
    except ValueError as e:
        raise InputError(f"--engine: {e}") from e
    console = Console(highlight=False)
    report = run_doctor(PlainSink(sys.stderr, show_output=False), image=args.image,
                        state_dir=default_state_dir(), engine_name=args.engine)
    grid = Grid(f"runner doctor — {report.title} engine {report.engine}",
                ("check", "result", "detail / what to do"))
    for check in report.checks:
        grid.add(check.name, Cell("pass", "green") if check.passed else Cell("FAIL", "red"),
                 check.detail + (f" — {check.fix}" if check.fix else ""))
    show(console, grid)
    failed = sum(not c.passed for c in report.checks)
    console.print(f"{len(report.checks) - failed} passed, {failed} failed "
                  f"(self-test {report.selftest_seconds:.1f}s)", markup=False)
    return 0 if report.passed else 3


def cmd_images_build(args: argparse.Namespace) -> int:
    from runner.sandbox import BUILDABLE, build_images
    from runner.views import PlainSink

    sink = PlainSink(sys.stdout)    # plain lines, each build line prefixed with its image
    if args.phase is not None:
        return _build_phase_image(args, sink)
    for line in build_images(sink, force=args.force, offline_base=args.offline_base):
        print(line)
    if args.engine:
        from runner.sandbox import check_engine, connect, resolve

        try:
            engine = resolve(check_engine(args.engine))
        except ValueError as e:
            raise InputError(f"--engine: {e}") from e
        if not engine.receives_images:
            raise InputError(f"--engine: runner cannot send images into {engine.name}; "
                             "push them to a registry its nodes pull from, and name that in "
                             "the phase's `image:`")
        if not engine.local:
            remote = connect(engine)
            for name in BUILDABLE:
                remote.ensure_image(name, sink)
                print(f"{name}: on {engine.name}")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from runner.gateway import default_cache_dir, store_at
    from runner.phase import load_phase
    from runner.units import checked_size, size_in_bytes
    from runner.views import size

    cache = load_phase(args.phase).cache if args.phase is not None else None
    folder = args.dir or (cache.dir if cache and cache.dir else None) or default_cache_dir()
    limit = args.max or (cache.max if cache else "20g")
    try:
        max_bytes = size_in_bytes(checked_size(limit))
    except ValueError as e:
        raise InputError(f"--max: {e}") from e
    store = store_at(folder)
    if args.action == "prune":
        removed, freed = store.prune(max_bytes)
        print(f"removed {removed} entries ({size(freed)}), least recently used first")
    used = store.usage()
    print(f"cache    {folder}\n"
          f"holds    {used.artifacts} artifacts ({size(used.artifact_bytes)}), "
          f"{used.indexes} index pages ({size(used.index_bytes)})\n"
          f"bound    {size(max_bytes)} ({limit}; least recently used goes first)")
    return 0


def _build_phase_image(args: argparse.Namespace, sink: EventSink) -> int:
    from runner.phase import apply_overrides, load_phase
    from runner.run import worker_image
    from runner.sandbox import connect, resolve

    phase = apply_overrides(load_phase(args.phase), flags={"engine": args.engine},
                            env=os.environ)
    built = worker_image(phase, connect(resolve(phase.engine)), sink, args.phase)
    print(f"image: {built.image}")
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    from runner.cli.clean import clean
    from runner.host import open_host_repo
    from runner.sandbox import LOCAL, connect, resolve
    from runner.views import PlainSink

    from functools import cache

    for line in clean(host=open_host_repo(args.repo.resolve()), state_dir=state_dir_of(args),
                      local=cache(lambda: connect(resolve(LOCAL))),
                      sink=PlainSink(sys.stderr, show_output=False),
                      run_id=args.run_id, everything=args.everything):
        print(line)
    return 0
