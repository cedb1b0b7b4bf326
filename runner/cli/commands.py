"""The `runner` command: parse arguments, pick a sink, map RunnerError to exit codes."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from runner import __version__
from runner.errors import InputError, RunnerError
from runner.host.hostview import forbid_inspection, in_container
from runner.text import one_line, printable
from runner.views.tables import Cell, Grid, show

# Each command imports what it needs when it runs: `--version`, `--help` and `status` must
# not pay for the run machinery, docker-py or the anthropic SDK (most of a second).
if TYPE_CHECKING:
    from runner.records.events import EventSink
    from runner.records.record import RunResult
    from runner.run.lead import RunOptions

EXIT_INTERRUPTED = 130


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt   # SIGTERM is handled like Ctrl-C: stop, collect, resumable


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    if in_container():
        forbid_inspection()
    err = Console(stderr=True, highlight=False)
    try:
        _check_ids(args)
        return int(args.func(args))
    except RunnerError as e:
        err.print(f"runner: error: {one_line(str(e))}", markup=False, style="red", soft_wrap=True)
        return e.exit_code
    except BrokenPipeError:      # `runner diff T1 | head`: the reader had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt as e:
        run_id = getattr(e, "run_id", None)
        err.print("runner: interrupted; " + (
            f"what the workers committed is kept in refs, and `runner resume {run_id}` "
            "finishes the run" if run_id else "no run had started"), markup=False,
            soft_wrap=True)
        return EXIT_INTERRUPTED


def _check_ids(args: argparse.Namespace) -> None:
    """RUN_ID and TICKET of whichever command, checked before a path is made of them."""
    from runner.phase.ids import checked_run_id, checked_ticket_id

    if (names := getattr(args, "names", None)) is not None:
        if len(names) > 2:
            raise InputError(f"runner {args.command} takes [RUN_ID] TICKET, not "
                             f"{len(names)} names")
        args.run_id, args.ticket = (None, *names) if len(names) == 1 else names

    if getattr(args, "run_id", None) is not None:
        checked_run_id(args.run_id)
    if getattr(args, "ticket", None) is not None:
        checked_ticket_id(args.ticket)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="runner", description="Run a phase of coding "
                                     "tickets, each in its own container over its own clone.")
    parser.add_argument("--version", action="version", version=f"runner {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run a whole phase")
    run.add_argument("phase", type=Path, metavar="PHASE.yaml")
    _add_run_flags(run)
    run.add_argument("--repo", type=Path, default=Path.cwd(),
                     help="the host repository (default: the current directory)")
    run.add_argument("--concurrency", type=int, metavar="N", help="workers at once")
    run.add_argument("--image", help="the worker image (overrides the phase's)")
    run.add_argument("--engine", help="where the workers run: local (default), "
                     "tcp://host:port, ssh://user@host, a Docker context name, kubernetes or "
                     "kubernetes:CONTEXT")
    run.add_argument("--network", choices=("none", "bridge"), help="the workers' network")
    for tier in ("simple", "nuanced", "complex"):
        run.add_argument(f"--model-{tier}", metavar="MODEL", help=f"the {tier} tier's model")
    run.add_argument("--sequential", action="store_true", help="one worker at a time")
    run.add_argument("--no-preflight", action="store_true",
                     help="skip the isolation self-test before the first ticket")
    run.add_argument("--allow-overlap", action="store_true",
                     help="let tickets whose paths overlap run at the same time")
    run.add_argument("--dry-run", action="store_true",
                     help="print the plan (waves, who waits for what, base, images); start "
                          "nothing")
    run.add_argument("--land", action="store_true",
                     help="when everything passed and base has not moved, fast-forward base "
                          "to target")
    run.set_defaults(func=_cmd_run)

    doctor = commands.add_parser("doctor", help="check the engine, images, disk, and run "
                                 "the isolation self-test")
    doctor.add_argument("--image", default="runner-worker:latest",
                        help="the worker image to probe (default runner-worker:latest)")
    doctor.add_argument("--engine", default="local",
                        help="the engine to probe (default local; tcp://…, ssh://…, a context, "
                             "kubernetes[:CONTEXT])")
    doctor.set_defaults(func=_cmd_doctor)

    resume = commands.add_parser("resume", help="finish an interrupted run; finished "
                                 "tickets are not redone")
    resume.add_argument("run_id", metavar="RUN_ID")
    resume.add_argument("--engine", help="the engine to finish it on (default: the one it "
                        "ran on)")
    _add_run_flags(resume)
    resume.add_argument("--repo", type=Path, default=Path.cwd())
    resume.set_defaults(func=_cmd_resume)

    status = commands.add_parser("status", help="runs, or one run's tickets")
    status.add_argument("run_id", metavar="RUN_ID", nargs="?")
    status.add_argument("--repo", type=Path, default=Path.cwd())
    status.add_argument("--state-dir", type=Path)
    status.set_defaults(func=_cmd_status)

    clean = commands.add_parser("clean", help="remove containers and workspaces of ended "
                                "runs (never refs); work not yet in refs is collected first")
    clean.add_argument("run_id", metavar="RUN_ID", nargs="?")
    clean.add_argument("--all", action="store_true", dest="everything",
                       help="also remove the runs' records (logs, transcripts, run.json)")
    clean.add_argument("--repo", type=Path, default=Path.cwd())
    clean.add_argument("--state-dir", type=Path)
    clean.set_defaults(func=_cmd_clean)

    report = commands.add_parser("report", help="the postmortem of a run")
    report.add_argument("run_id", metavar="RUN_ID", nargs="?",
                        help="a run's id, or latest (the default)")
    report.add_argument("--format", choices=("md", "html", "json", "junit"), default="md",
                        help="md (default; saved with timeline.svg), html (one file, "
                             "saved as report.html), json or junit")
    report.add_argument("--output", type=Path, help="write it to this file too")
    report.add_argument("--repo", type=Path, default=Path.cwd())
    report.add_argument("--state-dir", type=Path)
    report.set_defaults(func=_cmd_report)

    stats = commands.add_parser("stats", help="per tier and model, across all runs")
    stats.add_argument("--repo", type=Path, default=Path.cwd())
    stats.add_argument("--state-dir", type=Path)
    stats.set_defaults(func=_cmd_stats)

    logs = _ticket_command(commands, "logs", "a worker's output and transcript: commands, "
                           "output, turns", "runner logs latest T1 -f")
    logs.add_argument("-f", "--follow", action="store_true",
                      help="follow a running worker's output until its ticket ends")
    logs.set_defaults(func=_cmd_logs)

    diff = _ticket_command(commands, "diff", "a ticket's change against where it started, "
                           "as git diff shows it", "runner diff T1 --stat")
    diff.add_argument("--stat", action="store_true", help="only the files and their counts")
    diff.add_argument("--attempt", type=int, metavar="N",
                      help="that attempt's change (1: its first run; default: its last)")
    diff.set_defaults(func=_cmd_diff)

    show_ = _ticket_command(commands, "show", "a ticket's story: what it was asked, its "
                            "checks, gates, attempts, cost and refs", "runner show latest T1")
    show_.set_defaults(func=_cmd_show)

    apply = _ticket_command(commands, "apply", "replay a ticket's commits onto a branch of "
                            "your checkout (git cherry-pick)", "runner apply T1 --onto try-t1")
    apply.add_argument("--onto", metavar="BRANCH",
                       help="the branch to put them on (made from HEAD if new; default: the "
                            "one checked out)")
    apply.add_argument("--attempt", type=int, metavar="N",
                       help="that attempt's commits (1: its first run; default: its last)")
    apply.set_defaults(func=_cmd_apply)

    shell = _ticket_command(commands, "shell", "an interactive shell where the ticket's "
                            "worker was: its kept container, or a new one over its workspace",
                            "runner shell latest T1")
    shell.set_defaults(func=_cmd_shell)

    init = commands.add_parser("init", help="write a commented phase file for this repo: "
                               "base is the branch checked out, the image one this machine has")
    init.add_argument("--tickets", type=int, default=2, metavar="N",
                      help="how many example tickets (default 2)")
    init.add_argument("--name", help="the phase's name (default: the repo's directory name)")
    init.add_argument("--output", type=Path, default=Path("phase.yaml"),
                      help="the file to write (default phase.yaml)")
    init.add_argument("--force", action="store_true", help="overwrite the file if it exists")
    init.add_argument("--repo", type=Path, default=Path.cwd())
    init.set_defaults(func=_cmd_init)

    schema = commands.add_parser("schema", help="print the phase file's JSON Schema "
                                 "(draft 2020-12), for an editor")
    schema.set_defaults(func=_cmd_schema)

    completion = commands.add_parser("completion", help="print the shell completion script "
                                     "(commands, options, run and ticket ids) for bash or zsh")
    completion.add_argument("shell", choices=("bash", "zsh"))
    completion.set_defaults(func=_cmd_completion)
    complete = commands.add_parser("_complete")       # what the script asks; not listed
    complete.add_argument("words", nargs=argparse.REMAINDER)
    complete.set_defaults(func=_cmd_complete)

    demo = commands.add_parser("demo", help="make a sample repo and phase, and run it")
    demo.add_argument("--dir", type=Path, help="where to make it (default: a new temp dir)")
    demo.add_argument("--agent", choices=("script", "anthropic"), default="script",
                      help="script (default, no API key) or anthropic (ANTHROPIC_API_KEY, "
                      "ANTHROPIC_BASE_URL for another endpoint)")
    _add_run_flags(demo)
    demo.set_defaults(func=_cmd_demo)

    images = commands.add_parser("images", help="build runner's images")
    images_commands = images.add_subparsers(dest="images_command", required=True)
    build = images_commands.add_parser("build", help="build the images in images/ that are "
                                       "missing")
    build.add_argument("--offline-base", action="store_true",
                       help="make the Debian base with debootstrap instead of pulling it")
    build.add_argument("--force", action="store_true", help="rebuild images that exist")
    build.add_argument("--engine", help="also copy them to this engine (tcp://host:port, "
                       "ssh://user@host or a Docker context), as a run there would")
    build.add_argument("--phase", type=Path, metavar="PHASE.yaml",
                       help="build this phase's worker image instead (its Dockerfile or "
                            "devcontainer, with runner's layer) on its engine, as its run "
                            "would, and print its tag: e.g. to push it where a cluster's "
                            "nodes pull from")
    build.set_defaults(func=_cmd_images_build)

    cache = commands.add_parser("cache", help="show or prune the dependency cache the "
                                "gateway fills")
    cache.add_argument("action", nargs="?", choices=("show", "prune"), default="show")
    cache.add_argument("--phase", type=Path, metavar="PHASE.yaml",
                       help="the cache this phase uses (its cache.dir and cache.max); "
                            "default: $XDG_CACHE_HOME/runner/deps")
    cache.add_argument("--dir", type=Path, help="the cache's folder")
    cache.add_argument("--max", help="prune down to this size (e.g. 5g, 0 empties it; "
                                     "default: the phase's cache.max, else 20g)")
    cache.set_defaults(func=_cmd_cache)
    for name, command in commands.choices.items():
        if name in EXAMPLES:
            command.epilog = f"Example: {EXAMPLES[name]}"
        command.description = command.description or (
            f"{command_help[0].upper()}{command_help[1:]}."
            if (command_help := _help_of(commands, name)) else None)
    build.epilog = f"Example: {EXAMPLES['images']}"
    return parser


# One example per command, in its --help (those over a ticket carry their own).
EXAMPLES = {
    "run": "runner run phase.yaml --dry-run   (then without --dry-run)",
    "doctor": "runner doctor --image runner-worker-jvm:latest",
    "resume": "runner resume 20260101-120000-ab12",
    "status": "runner status latest",
    "clean": "runner clean --all",
    "report": "runner report latest --format junit --output report.xml",
    "stats": "runner stats --repo ../my-repo",
    "demo": "runner demo --dir /tmp/demo --keep",
    "images": "runner images build --force",
    "init": "runner init --tickets 3 && runner run phase.yaml --dry-run",
    "cache": "runner cache prune --max 5g",
    "schema": "runner schema > phase.schema.json",
    "completion": 'eval "$(runner completion bash)"   (in ~/.bashrc; zsh: ~/.zshrc)',
}


def _help_of(commands: argparse._SubParsersAction, name: str) -> str:
    return next((a.help for a in commands._choices_actions if a.dest == name and a.help), "")


def _ticket_command(commands: argparse._SubParsersAction, name: str, about: str,
                    example: str) -> argparse.ArgumentParser:
    """A command over one ticket of a run: ``[RUN_ID] TICKET``, RUN_ID being `latest` when
    left out, TICKET an id or a prefix only it has."""
    parser = commands.add_parser(
        name, help=about,
        epilog=f"RUN_ID: a run's id, or `latest` (the default). TICKET: a ticket's id, or the "
               f"start of one. Example: {example}")
    parser.add_argument("names", nargs="+", metavar="[RUN_ID] TICKET")
    parser.add_argument("--repo", type=Path, default=Path.cwd())
    parser.add_argument("--state-dir", type=Path)
    return parser


def _add_run_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print one JSON result document on stdout")
    parser.add_argument("--junit", type=Path, metavar="FILE",
                        help="write the JUnit report (one test case per ticket) to FILE")
    parser.add_argument("--keep", action="store_true", help="keep worker containers")
    parser.add_argument("--state-dir", type=Path,
                        help="where runs keep state and workspaces (default: .git/runner)")


def _cmd_run(args: argparse.Namespace) -> int:
    from runner.phase.model import load_phase

    if args.concurrency is not None and args.concurrency < 1:
        raise InputError("--concurrency must be 1 or more")
    from runner.phase.overrides import apply_overrides
    from runner.run.lead import RunOptions

    flags = {"concurrency": args.concurrency, "image": args.image, "network": args.network,
             "engine": args.engine,
             "models.simple": args.model_simple, "models.nuanced": args.model_nuanced,
             "models.complex": args.model_complex}
    phase = apply_overrides(load_phase(args.phase), flags=flags, env=os.environ)
    if args.dry_run:
        from runner.run.plan import describe_plan

        concurrency = 1 if args.sequential else None
        for line in describe_plan(phase, repo=args.repo.resolve(), concurrency=concurrency,
                                  allow_overlap=args.allow_overlap):
            print(line)
        return 0
    options = RunOptions(repo=args.repo.resolve(), phase_file=args.phase,
                         sequential=args.sequential,
                         keep=args.keep, state_dir=_absolute(args.state_dir),
                         preflight=not args.no_preflight,
                         allow_overlap=args.allow_overlap, land=args.land)
    return _execute(phase, options, args.json, args.junit)


def _cmd_demo(args: argparse.Namespace) -> int:
    from runner.cli.demo import make_demo
    from runner.host.hostview import scratch_parent
    from runner.phase.model import load_phase
    from runner.run.lead import RunOptions

    # In a container the demo repo goes in the working directory: the host sees it there.
    root = args.dir or Path(tempfile.mkdtemp(prefix="runner-demo-",
                                             dir=scratch_parent(Path.cwd())))
    repo, phase_file = make_demo(root.resolve(), agent=args.agent)
    out = Console(stderr=args.json, highlight=False)
    out.print(f"demo repo: {repo}\nphase file: {phase_file}", markup=False, soft_wrap=True)
    options = RunOptions(repo=repo, phase_file=phase_file, keep=args.keep,
                         state_dir=_absolute(args.state_dir))
    code = _execute(load_phase(phase_file), options, args.json, args.junit)
    out.print(f"\nsee the result: git -C {repo} log --oneline --graph runner/phase-2\n"
              f"each worker's raw commits: git -C {repo} for-each-ref refs/runner/",
              markup=False, soft_wrap=True)
    return code


def _cmd_resume(args: argparse.Namespace) -> int:
    from runner.run.lead import resume_run

    def resume(sink: EventSink) -> RunResult:
        return resume_run(args.run_id, repo=args.repo.resolve(),
                          state_dir=_absolute(args.state_dir), sink=sink, engine=args.engine)

    from runner.views.showrun import show_run

    return show_run(resume, args.json, args.junit)


def _cmd_status(args: argparse.Namespace) -> int:
    from runner.views.status import list_runs, run_table

    state = _state_dir(args)
    if args.run_id == "latest":
        from runner.views.picking import pick_run

        args.run_id = pick_run(state, args.run_id).run_id
    show(Console(highlight=False), run_table(state / args.run_id) if args.run_id
         else list_runs(state))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from runner.phase.model import load_phase
    from runner.records.record import PHASE_COPY
    from runner.views.picking import pick_run
    from runner.views.report import write_report

    from runner.host.gitops import open_host_repo

    result = pick_run(_state_dir(args), args.run_id)
    run_dir = result.run_dir
    host = open_host_repo(args.repo.resolve()) if args.format == "html" else None
    text, saved = write_report(result, load_phase(run_dir / PHASE_COPY), args.format,
                               host=host)
    if args.output:
        args.output.write_text(text)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    if saved:
        print(f"(saved as {saved}" + (", with its timeline beside it)" if args.format == "md"
                                      else ")"), file=sys.stderr)
    return 0


def _cmd_clean(args: argparse.Namespace) -> int:
    from runner.cli.clean import clean
    from runner.host.gitops import open_host_repo
    from runner.sandbox.backends import connect
    from runner.sandbox.engines import LOCAL, resolve
    from runner.views.progress import PlainSink

    from functools import cache

    for line in clean(host=open_host_repo(args.repo.resolve()), state_dir=_state_dir(args),
                      local=cache(lambda: connect(resolve(LOCAL))),
                      sink=PlainSink(sys.stderr, show_output=False),
                      run_id=args.run_id, everything=args.everything):
        print(line)
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    from runner.views.stats import stats_table

    show(Console(highlight=False), stats_table(_state_dir(args)))
    return 0


def _state_dir(args: argparse.Namespace) -> Path:
    from runner.host.gitops import open_host_repo

    return _absolute(args.state_dir) or open_host_repo(args.repo.resolve()).state_dir


def _picked(args: argparse.Namespace):
    from runner.views.picking import pick

    return pick(_state_dir(args), args.run_id, args.ticket)


def _cmd_logs(args: argparse.Namespace) -> int:
    from runner.records.transcript import render

    picked = _picked(args)
    run_dir, ticket = picked.result.run_dir, picked.ticket
    log = run_dir / "logs" / f"{ticket}.log"
    transcript = run_dir / "transcripts" / f"{ticket}.jsonl"
    console = Console(highlight=False, soft_wrap=True)
    if args.follow:
        from runner.views.follow import follow, ticket_ended

        def write(text: str) -> None:
            sys.stdout.write(text)
            sys.stdout.flush()

        follow(log, ticket_ended(run_dir, ticket), write)
        return 0
    if not log.is_file():
        raise InputError(f"{ticket} of run {picked.result.run_id} has no output yet (it has "
                         "not started); `runner logs -f` waits for it")
    console.rule(f"{ticket}: output", characters="-")
    # Bytes, not read_text: its newline translation would turn a worker's "\r" into a line
    # break, and what followed it into a line that reads as runner's own.
    console.print(printable(log.read_bytes().decode("utf-8", "replace")), markup=False, end="")
    if transcript.is_file():
        console.rule(f"{ticket}: transcript", characters="-")
        for line in render(transcript):
            console.print(line, markup=False)
    return 0


def _cmd_diff(args: argparse.Namespace) -> int:
    from runner.host.gitops import open_host_repo
    from runner.views.diffs import diff_lines, paged, wants_colour

    picked = _picked(args)
    attempt = picked.attempt(args.attempt)
    if not attempt.tip or not attempt.start:
        print(f"{picked.ticket} committed nothing" + (f" in attempt {args.attempt}"
                                                      if args.attempt else ""))
        return 0
    host = open_host_repo(args.repo.resolve())
    colour = wants_colour(host, sys.stdout)
    with paged(host) as out:
        for line in diff_lines(host, attempt.start, attempt.tip, stat=args.stat,
                               colour=colour):
            out.write(line + "\n")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from runner.phase.model import load_phase
    from runner.records.record import PHASE_COPY
    from runner.views.ticketview import ticket_story

    picked = _picked(args)
    outcome = picked.outcome
    try:
        tickets = {t.id: t for t in load_phase(picked.result.run_dir / PHASE_COPY).tickets}
    except (OSError, InputError):
        tickets = {}
    console = Console(highlight=False, soft_wrap=True)
    for line in ticket_story(picked.result, tickets.get(picked.ticket), outcome):
        console.print(line, markup=False)
    return 0


def _cmd_apply(args: argparse.Namespace) -> int:
    from runner.host.gitops import open_host_repo
    from runner.views.applying import apply_attempt

    picked = _picked(args)
    applied = apply_attempt(open_host_repo(args.repo.resolve()), picked.ticket,
                            picked.attempt(args.attempt), args.onto)
    if applied.ok:
        print(f"applied {picked.ticket}'s {applied.commits} commit"
              f"{'s' if applied.commits != 1 else ''} onto {applied.branch}")
        return 0
    shown = ", ".join(printable(f) for f in applied.conflicts[:10])
    print(f"{picked.ticket}'s commits conflict with {applied.branch} in {shown}"
          f"{' …' if len(applied.conflicts) > 10 else ''}: resolve them, `git add` them and "
          "`git cherry-pick --continue`; or `git cherry-pick --abort` to go back",
          file=sys.stderr)
    return 1


def _cmd_shell(args: argparse.Namespace) -> int:
    from runner.host.gitops import open_host_repo
    from runner.views.ticketshell import ticket_shell

    if not sys.stdin.isatty():
        raise InputError("runner shell needs a terminal (its input is not one)")
    return ticket_shell(_picked(args), open_host_repo(args.repo.resolve()))


def _cmd_completion(args: argparse.Namespace) -> int:
    from runner.cli.completion import SCRIPTS

    sys.stdout.write(SCRIPTS[args.shell])
    return 0


def _cmd_complete(args: argparse.Namespace) -> int:
    from runner.cli.completion import candidates

    print("\n".join(candidates(_parser(), list(args.words))))
    return 0


def _cmd_init(args: argparse.Namespace) -> int:
    from runner.cli.initphase import current_branch, phase_name, phase_text, pick_image
    from runner.host.gitops import open_host_repo

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
    from runner.sandbox.backends import connect
    from runner.sandbox.engines import LOCAL, resolve

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


def _cmd_schema(args: argparse.Namespace) -> int:
    from runner.phase.schema import schema_text

    sys.stdout.write(schema_text())
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from runner.isolation.doctor import run_doctor
    from runner.views.progress import PlainSink

    from runner.phase.imageref import check_image

    from runner.sandbox.engines import check_engine

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
                        state_dir=_default_state_dir(), engine_name=args.engine)
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


def _default_state_dir() -> Path:
    from runner.errors import RepoError
    from runner.host.gitops import open_host_repo

    try:
        return open_host_repo(Path.cwd()).state_dir
    except RepoError:
        return Path.cwd()


def _cmd_images_build(args: argparse.Namespace) -> int:
    from runner.sandbox.images import BUILDABLE, build_images
    from runner.views.progress import PlainSink

    sink = PlainSink(sys.stdout)    # plain lines, each build line prefixed with its image
    if args.phase is not None:
        return _build_phase_image(args, sink)
    for line in build_images(sink, force=args.force, offline_base=args.offline_base):
        print(line)
    if args.engine:
        from runner.sandbox.backends import connect
        from runner.sandbox.engines import check_engine, resolve

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


def _cmd_cache(args: argparse.Namespace) -> int:
    from runner.gateway.cache.store import default_cache_dir, store_at
    from runner.phase.model import load_phase
    from runner.units import checked_size, size_in_bytes
    from runner.views.ticketview import size

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
    from runner.phase.model import load_phase
    from runner.phase.overrides import apply_overrides
    from runner.run.lead import worker_image
    from runner.sandbox.backends import connect
    from runner.sandbox.engines import resolve

    phase = apply_overrides(load_phase(args.phase), flags={"engine": args.engine},
                            env=os.environ)
    built = worker_image(phase, connect(resolve(phase.engine)), sink, args.phase)
    print(f"image: {built.image}")
    return 0


def _execute(phase: object, options: RunOptions, as_json: bool, junit: Path | None) -> int:
    from runner.phase.model import Phase
    from runner.run.lead import run_phase

    assert isinstance(phase, Phase)
    from runner.views.showrun import show_run

    return show_run(lambda sink: run_phase(phase, options, sink), as_json, junit)


def _absolute(path: Path | None) -> Path | None:
    return path.resolve() if path is not None else None
