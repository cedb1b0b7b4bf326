"""The verbs over one ticket of a run: logs, diff, show, apply, shell."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from runner.cli.paths import state_dir_of
from runner.errors import InputError
from runner.text import printable


def _picked(args: argparse.Namespace):
    from runner.views import pick

    return pick(state_dir_of(args), args.run_id, args.ticket)


def cmd_logs(args: argparse.Namespace) -> int:
    from runner.records import render

    picked = _picked(args)
    run_dir, ticket = picked.result.run_dir, picked.ticket
    log = run_dir / "logs" / f"{ticket}.log"
    transcript = run_dir / "transcripts" / f"{ticket}.jsonl"
    console = Console(highlight=False, soft_wrap=True)
    if args.follow:
        from runner.views import follow, ticket_ended

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


def cmd_diff(args: argparse.Namespace) -> int:
    from runner.host import open_host_repo
    from runner.views import diff_lines, paged, wants_colour

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


def cmd_show(args: argparse.Namespace) -> int:
    from runner.views import asked_of, ticket_story

    picked = _picked(args)
    console = Console(highlight=False, soft_wrap=True)
    asked = asked_of(picked.result).get(picked.ticket)
    for line in ticket_story(picked.result, asked, picked.outcome):
        console.print(line, markup=False)
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    from runner.host import open_host_repo
    from runner.views import apply_attempt

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


def cmd_shell(args: argparse.Namespace) -> int:
    from runner.host import open_host_repo
    from runner.views import ticket_shell

    if not sys.stdin.isatty():
        raise InputError("runner shell needs a terminal (its input is not one)")
    return ticket_shell(_picked(args), open_host_repo(args.repo.resolve()))
