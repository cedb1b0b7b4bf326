"""Shell completion: `runner completion bash|zsh` prints a script that asks `runner
_complete WORDS…` for the candidates, which come from the command line's parser (commands,
options) and the repo (run ids, the run's ticket ids)."""

from __future__ import annotations

import argparse
from pathlib import Path

from runner.views import LATEST, ticket_ids

BASH = r"""# runner's completion for bash: eval "$(runner completion bash)"
_runner_complete() {
  local words
  words=$(runner _complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null) || return
  COMPREPLY=($(compgen -W "$words" -- "${COMP_WORDS[COMP_CWORD]}"))
}
complete -o default -F _runner_complete runner
"""

ZSH = r"""# runner's completion for zsh: eval "$(runner completion zsh)"
(( $+functions[compdef] )) || { autoload -U compinit && compinit; }
_runner_complete() {
  local -a offered
  offered=("${(@f)$(runner _complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
  compadd -a offered
}
compdef _runner_complete runner
"""

SCRIPTS = {"bash": BASH, "zsh": ZSH}
# Commands whose first positional is a run id, and those over [RUN_ID] TICKET.
RUN_COMMANDS = ("resume", "status", "report", "clean")
TICKET_COMMANDS = ("logs", "diff", "show", "apply", "shell")


def candidates(parser: argparse.ArgumentParser, words: list[str]) -> list[str]:
    """What may come next after ``words`` (the last one being typed, maybe "")."""
    *done, _ = words or [""]
    commands = _subcommands(parser)
    if not done:
        return [name for name in commands if not name.startswith("_")] + ["--version"]
    command = commands.get(done[0])
    if command is None:
        return []
    options = [o for action in command._actions for o in action.option_strings]
    positional = [w for w in done[1:] if not w.startswith("-")]
    if done[0] in RUN_COMMANDS and not positional:
        return [*_run_ids(done), *options]
    if done[0] in TICKET_COMMANDS and len(positional) < 2:
        tickets = _tickets(done, positional[0] if positional else None)
        return [*(_run_ids(done) if not positional else []), *tickets, *options]
    return options


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _state_dir(words: list[str]) -> Path | None:
    from runner.errors import RunnerError
    from runner.host import open_host_repo

    given = {flag: words[i + 1] for i, flag in enumerate(words[:-1])
             if flag in ("--repo", "--state-dir")}
    if "--state-dir" in given:
        return Path(given["--state-dir"])
    try:
        return open_host_repo(Path(given.get("--repo", ".")).resolve()).state_dir
    except RunnerError:
        return None


def _run_ids(words: list[str]) -> list[str]:
    from runner.views import runs

    state = _state_dir(words)
    return ([LATEST] + [r.run_id for r in reversed(runs(state))]) if state else []


def _tickets(words: list[str], run_id: str | None) -> list[str]:
    from runner.errors import RunnerError
    from runner.views import pick_run

    state = _state_dir(words)
    if state is None:
        return []
    try:
        return ticket_ids(pick_run(state, run_id))
    except RunnerError:        # not a run id: the word was a ticket of the newest run
        return []
