"""Every error runner raises on purpose, in one tree.

    RunnerError                 exit_code 1; str(e) is one line that says what to do
    ├── InputError              exit 2: the user's input is wrong
    │   ├── PhaseFileError      the phase file (field path, ticket id)
    │   ├── OverrideError       a flag or RUNNER_* variable over the phase (names only it)
    │   └── RepoError           the host repo or a ref in it
    └── EnvironmentProblem      exit 3: the machine is not ready
        ├── EngineUnavailable   the sandboxes' engine does not answer
        ├── ImageError          an image is missing and cannot be built
        ├── SelfTestFailed      the isolation self-test found a broken check
        └── GitError            a git command failed where it must not (argv, stderr)

Third-party errors (docker, git subprocesses, yaml, pydantic) are translated into these at the
boundary with ``raise ... from e``; the CLI maps ``exit_code`` to the process exit status.
A failed command *inside a worker* is data (an ExecResult), never one of these.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from runner.text import quoted


class RunnerError(Exception):
    exit_code = 1


class InputError(RunnerError):
    exit_code = 2


class PhaseFileError(InputError):
    def __init__(self, path: Path, message: str, *, field: str | None = None,
                 ticket: str | None = None) -> None:
        self.path, self.field, self.ticket = path, field, ticket
        where = _cut(field or "")
        ticket = _cut(ticket) if ticket else ticket
        if ticket:
            where = f"{where} (ticket {ticket})" if where else f"ticket {ticket}"
        text = f"{path}: {where}: {message}" if where else f"{path}: {message}"
        super().__init__(shown(text))


def _cut(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def shown(text: str) -> str:
    """``text`` on one line whatever a user's file put in it: keys and ids become part of
    the message, and a newline (or U+2028) in one would start a line of its own."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


class OverrideError(InputError):
    """A bad value from a flag or an environment variable: the phase file is not at fault,
    so the message names the flag or variable, not the file."""

    def __init__(self, source: str, setting: str, value: object, message: str) -> None:
        self.source, self.setting, self.value = source, setting, value
        super().__init__(shown(f"{source}: {quoted(value, 100)} is not valid for {setting}: "
                               f"{message}"))


class RepoError(InputError):
    pass


class EnvironmentProblem(RunnerError):
    exit_code = 3


class EngineUnavailable(EnvironmentProblem):
    """The engine the sandboxes run on does not answer (this machine's or another's)."""


class WorkspaceAway(EnvironmentProblem):
    """A sandbox's workspace is kept where the engine cannot reach it for now (the node its
    volume is bound to stopped answering): its ticket waits, and a resume finishes it once
    the workspace can be reached again."""


class ImageError(EnvironmentProblem):
    def __init__(self, image: str, message: str) -> None:
        self.image = image
        super().__init__(f"image {image}: {message}")


class SelfTestFailed(EnvironmentProblem):
    pass


class GitError(EnvironmentProblem):
    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        self.argv, self.returncode, self.stderr = list(argv), returncode, stderr
        detail = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {returncode}"
        shown = " ".join(self.argv[:8]) + (f" … ({len(self.argv) - 8} more arguments)"
                                           if len(self.argv) > 8 else "")
        super().__init__(f"git {shown[:500]}: {detail[:500]}")
