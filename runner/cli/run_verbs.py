"""The verbs of a run: run, demo, resume, status, report, stats."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from runner.cli.paths import absolute, state_dir_of
from runner.errors import InputError
from runner.views import show

if TYPE_CHECKING:
    from runner.records import EventSink, RunResult
    from runner.run import RunOptions


def cmd_run(args: argparse.Namespace) -> int:
    from runner.phase import load_phase

    if args.concurrency is not None and args.concurrency < 1:
        raise InputError("--concurrency must be 1 or more")
    from runner.phase import apply_overrides
    from runner.run import RunOptions

    flags = {"concurrency": args.concurrency, "image": args.image, "network": args.network,
             "engine": args.engine,
             "models.simple": args.model_simple, "models.nuanced": args.model_nuanced,
             "models.complex": args.model_complex}
    phase = apply_overrides(load_phase(args.phase), flags=flags, env=os.environ)
    if args.dry_run:
        from runner.run import describe_plan

        concurrency = 1 if args.sequential else None
        for line in describe_plan(phase, repo=args.repo.resolve(), concurrency=concurrency,
                                  allow_overlap=args.allow_overlap):
            print(line)
        return 0
    options = RunOptions(repo=args.repo.resolve(), phase_file=args.phase,
                         sequential=args.sequential,
                         keep=args.keep, state_dir=absolute(args.state_dir),
                         preflight=not args.no_preflight,
                         allow_overlap=args.allow_overlap, land=args.land)
    return _execute(phase, options, args.json, args.junit)


def cmd_demo(args: argparse.Namespace) -> int:
    from runner.cli.demo import make_demo
    from runner.host import scratch_parent
    from runner.phase import load_phase
    from runner.run import RunOptions

    # In a container the demo repo goes in the working directory: the host sees it there.
    root = args.dir or Path(tempfile.mkdtemp(prefix="runner-demo-",
                                             dir=scratch_parent(Path.cwd())))
    repo, phase_file = make_demo(root.resolve(), agent=args.agent)
    out = Console(stderr=args.json, highlight=False)
    out.print(f"demo repo: {repo}\nphase file: {phase_file}", markup=False, soft_wrap=True)
    options = RunOptions(repo=repo, phase_file=phase_file, keep=args.keep,
                         state_dir=absolute(args.state_dir))
    code = _execute(load_phase(phase_file), options, args.json, args.junit)
    out.print(f"\nsee the result: git -C {repo} log --oneline --graph runner/phase-2\n"
              f"each worker's raw commits: git -C {repo} for-each-ref refs/runner/",
              markup=False, soft_wrap=True)
    return code


def cmd_resume(args: argparse.Namespace) -> int:
    from runner.run import resume_run

    def resume(sink: EventSink) -> RunResult:
        return resume_run(args.run_id, repo=args.repo.resolve(),
                          state_dir=absolute(args.state_dir), sink=sink, engine=args.engine)

    from runner.views import show_run

    return show_run(resume, args.json, args.junit)


def cmd_status(args: argparse.Namespace) -> int:
    from runner.views import list_runs, run_table

    state = state_dir_of(args)
    if args.run_id == "latest":
        from runner.views import pick_run

        args.run_id = pick_run(state, args.run_id).run_id
    show(Console(highlight=False), run_table(state / args.run_id) if args.run_id
         else list_runs(state))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from runner.views import asked_of, pick_run, write_report

    from runner.host import open_host_repo

    result = pick_run(state_dir_of(args), args.run_id)
    host = open_host_repo(args.repo.resolve()) if args.format == "html" else None
    text, saved = write_report(result, asked_of(result), args.format, host=host)
    if args.output:
        args.output.write_text(text)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    if saved:
        print(f"(saved as {saved}" + (", with its timeline beside it)" if args.format == "md"
                                      else ")"), file=sys.stderr)
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from runner.views import stats_table

    show(Console(highlight=False), stats_table(state_dir_of(args)))
    return 0


def _execute(phase: object, options: RunOptions, as_json: bool, junit: Path | None) -> int:
    from runner.phase import Phase
    from runner.run import run_phase

    assert isinstance(phase, Phase)
    from runner.views import show_run

    return show_run(lambda sink: run_phase(phase, options, sink), as_json, junit)
