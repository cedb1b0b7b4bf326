"""The command line's parser: every verb, its flags, its help and example."""

from __future__ import annotations

import argparse
from pathlib import Path

from runner import __version__
from runner.cli.run_verbs import (cmd_demo, cmd_report, cmd_resume, cmd_run, cmd_stats,
                                  cmd_status)
from runner.cli.setup_verbs import (cmd_cache, cmd_clean, cmd_complete, cmd_completion,
                                    cmd_doctor, cmd_images_build, cmd_init, cmd_schema)
from runner.cli.ticket_verbs import cmd_apply, cmd_diff, cmd_logs, cmd_shell, cmd_show

# Each verb imports what it needs when it runs: `--version`, `--help` and `status` must
# not pay for the run machinery, docker-py or the anthropic SDK (most of a second).

def parser() -> argparse.ArgumentParser:
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
    run.set_defaults(func=cmd_run)

    doctor = commands.add_parser("doctor", help="check the engine, images, disk, and run "
                                 "the isolation self-test")
    doctor.add_argument("--image", default="runner-worker:latest",
                        help="the worker image to probe (default runner-worker:latest)")
    doctor.add_argument("--engine", default="local",
                        help="the engine to probe (default local; tcp://…, ssh://…, a context, "
                             "kubernetes[:CONTEXT])")
    doctor.set_defaults(func=cmd_doctor)

    resume = commands.add_parser("resume", help="finish an interrupted run; finished "
                                 "tickets are not redone")
    resume.add_argument("run_id", metavar="RUN_ID")
    resume.add_argument("--engine", help="the engine to finish it on (default: the one it "
                        "ran on)")
    _add_run_flags(resume)
    resume.add_argument("--repo", type=Path, default=Path.cwd())
    resume.set_defaults(func=cmd_resume)

    status = commands.add_parser("status", help="runs, or one run's tickets")
    status.add_argument("run_id", metavar="RUN_ID", nargs="?")
    status.add_argument("--repo", type=Path, default=Path.cwd())
    status.add_argument("--state-dir", type=Path)
    status.set_defaults(func=cmd_status)

    clean = commands.add_parser("clean", help="remove containers and workspaces of ended "
                                "runs (never refs); work not yet in refs is collected first")
    clean.add_argument("run_id", metavar="RUN_ID", nargs="?")
    clean.add_argument("--all", action="store_true", dest="everything",
                       help="also remove the runs' records (logs, transcripts, run.json)")
    clean.add_argument("--repo", type=Path, default=Path.cwd())
    clean.add_argument("--state-dir", type=Path)
    clean.set_defaults(func=cmd_clean)

    report = commands.add_parser("report", help="the postmortem of a run")
    report.add_argument("run_id", metavar="RUN_ID", nargs="?",
                        help="a run's id, or latest (the default)")
    report.add_argument("--format", choices=("md", "html", "json", "junit"), default="md",
                        help="md (default; saved with timeline.svg), html (one file, "
                             "saved as report.html), json or junit")
    report.add_argument("--output", type=Path, help="write it to this file too")
    report.add_argument("--repo", type=Path, default=Path.cwd())
    report.add_argument("--state-dir", type=Path)
    report.set_defaults(func=cmd_report)

    stats = commands.add_parser("stats", help="per tier and model, across all runs")
    stats.add_argument("--repo", type=Path, default=Path.cwd())
    stats.add_argument("--state-dir", type=Path)
    stats.set_defaults(func=cmd_stats)

    logs = _ticket_command(commands, "logs", "a worker's output and transcript: commands, "
                           "output, turns", "runner logs latest T1 -f")
    logs.add_argument("-f", "--follow", action="store_true",
                      help="follow a running worker's output until its ticket ends")
    logs.set_defaults(func=cmd_logs)

    diff = _ticket_command(commands, "diff", "a ticket's change against where it started, "
                           "as git diff shows it", "runner diff T1 --stat")
    diff.add_argument("--stat", action="store_true", help="only the files and their counts")
    diff.add_argument("--attempt", type=int, metavar="N",
                      help="that attempt's change (1: its first run; default: its last)")
    diff.set_defaults(func=cmd_diff)

    show_ = _ticket_command(commands, "show", "a ticket's story: what it was asked, its "
                            "checks, gates, attempts, cost and refs", "runner show latest T1")
    show_.set_defaults(func=cmd_show)

    apply = _ticket_command(commands, "apply", "replay a ticket's commits onto a branch of "
                            "your checkout (git cherry-pick)", "runner apply T1 --onto try-t1")
    apply.add_argument("--onto", metavar="BRANCH",
                       help="the branch to put them on (made from HEAD if new; default: the "
                            "one checked out)")
    apply.add_argument("--attempt", type=int, metavar="N",
                       help="that attempt's commits (1: its first run; default: its last)")
    apply.set_defaults(func=cmd_apply)

    shell = _ticket_command(commands, "shell", "an interactive shell where the ticket's "
                            "worker was: its kept container, or a new one over its workspace",
                            "runner shell latest T1")
    shell.set_defaults(func=cmd_shell)

    init = commands.add_parser("init", help="write a commented phase file for this repo: "
                               "base is the branch checked out, the image one this machine has")
    init.add_argument("--tickets", type=int, default=2, metavar="N",
                      help="how many example tickets (default 2)")
    init.add_argument("--name", help="the phase's name (default: the repo's directory name)")
    init.add_argument("--output", type=Path, default=Path("phase.yaml"),
                      help="the file to write (default phase.yaml)")
    init.add_argument("--force", action="store_true", help="overwrite the file if it exists")
    init.add_argument("--repo", type=Path, default=Path.cwd())
    init.set_defaults(func=cmd_init)

    schema = commands.add_parser("schema", help="print the phase file's JSON Schema "
                                 "(draft 2020-12), for an editor")
    schema.set_defaults(func=cmd_schema)

    completion = commands.add_parser("completion", help="print the shell completion script "
                                     "(commands, options, run and ticket ids) for bash or zsh")
    completion.add_argument("shell", choices=("bash", "zsh"))
    completion.set_defaults(func=cmd_completion)
    complete = commands.add_parser("_complete")       # what the script asks; not listed
    complete.add_argument("words", nargs=argparse.REMAINDER)
    complete.set_defaults(func=cmd_complete, parser=parser)

    demo = commands.add_parser("demo", help="make a sample repo and phase, and run it")
    demo.add_argument("--dir", type=Path, help="where to make it (default: a new temp dir)")
    demo.add_argument("--agent", choices=("script", "anthropic"), default="script",
                      help="script (default, no API key) or anthropic (ANTHROPIC_API_KEY, "
                      "ANTHROPIC_BASE_URL for another endpoint)")
    _add_run_flags(demo)
    demo.set_defaults(func=cmd_demo)

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
    build.set_defaults(func=cmd_images_build)

    cache = commands.add_parser("cache", help="show or prune the dependency cache the "
                                "gateway fills")
    cache.add_argument("action", nargs="?", choices=("show", "prune"), default="show")
    cache.add_argument("--phase", type=Path, metavar="PHASE.yaml",
                       help="the cache this phase uses (its cache.dir and cache.max); "
                            "default: $XDG_CACHE_HOME/runner/deps")
    cache.add_argument("--dir", type=Path, help="the cache's folder")
    cache.add_argument("--max", help="prune down to this size (e.g. 5g, 0 empties it; "
                                     "default: the phase's cache.max, else 20g)")
    cache.set_defaults(func=cmd_cache)
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
