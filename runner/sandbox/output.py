"""A command's output as every backend hands it on: its result, the tail kept, lines cut
at a bound, a read that came whole, a file written at most so large; and `timeout` around
it."""

from __future__ import annotations

import os
import shlex
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runner.sandbox.protocols import Sandbox


@dataclass(frozen=True)
class ExecResult:
    """A finished command. A failure inside a worker is data, not an exception."""

    exit_code: int
    output: str = ""            # the tail of stdout+stderr
    timed_out: bool = False
    stopped: str = ""           # why the sandbox stopped it itself (over its disk budget)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.stopped


OutputHandler = Callable[[str], None]


# A reset as a command's first step: kill(-1) signals every process of the caller's uid but
# the caller itself (and its pid namespace's init), so the shell ends them all, then becomes
# the command.
RESET_FIRST = 'kill -KILL -1 2>/dev/null; exec "$@"'


def under_timeout(argv: Sequence[str], timeout: float, *, grace: int,
                  reset_first: bool = False) -> list[str]:
    """``argv`` as a backend runs it: under `timeout` (TERM at ``timeout``, KILL ``grace``
    seconds later), after a reset of the worker's processes when asked."""
    timed = ["timeout", "-k", str(grace), f"{max(1, int(timeout))}s", *argv]
    return ["sh", "-c", RESET_FIRST, "sh", *timed] if reset_first else timed


Take = Callable[[int, bytes], None]        # (stream: 1 stdout, 2 stderr; bytes) as they come


# Runs a command, feeding its output to a Take: (exit code, timed out, why the sandbox
# stopped it ("" if it did not)).
RunCommand = Callable[[Take], tuple[int, bool, str]]


def output_of(run: RunCommand, on_output: OutputHandler | None) -> ExecResult:
    """A backend's exec: ``run``'s lines to ``on_output``, the tail of its output kept."""
    tail = OutputTail(on_output)

    def take(stream: int, chunk: bytes) -> None:
        tail.feed(chunk.decode("utf-8", "replace"), stream)

    code, timed_out, stopped = run(take)
    return ExecResult(exit_code=code, output=tail.close(), timed_out=timed_out,
                      stopped=stopped)


def output_to_file(run: RunCommand, dest: Path, limit: int) -> ExecResult:
    """A backend's exec_to_file: ``run``'s stdout into a new file ``dest``, at most ``limit``
    bytes (past it: drained, kept nowhere, and the result fails); its output is stderr."""
    errors = OutputTail()
    written = 0
    # dest is in a runner-owned directory; O_EXCL and O_NOFOLLOW all the same.
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        def take(stream: int, chunk: bytes) -> None:
            nonlocal written
            if stream == 2:
                errors.feed(chunk.decode("utf-8", "replace"), stream)
            elif written <= limit:
                written += len(chunk)
                out.write(chunk)

        code, timed_out, stopped = run(take)
    if written > limit:
        return ExecResult(exit_code=code or 1, timed_out=timed_out, stopped=stopped,
                          output=f"output larger than {limit // 2**20} MiB")
    return ExecResult(exit_code=code, output=errors.close(), timed_out=timed_out,
                      stopped=stopped)


START_MARK = "runner-start-of-output-7f3a"   # printed around a read's output: it came whole


END_MARK = "runner-end-of-output-7f3a"


def read_output(sandbox: Sandbox, argv: Sequence[str], *, timeout: float,
                env: Mapping[str, str] | None = None, attempts: int = 3) -> ExecResult:
    """Run ``argv``, a command that may run again (it only reads, or running it twice does
    what running it once does), and return its output
    whole. An engine may drop the start or the end of an exec's output now and then, the
    exit code intact (moby#27289; here, under load, about one exec in a few hundred): the
    command prints START_MARK before and END_MARK after it, and one whose marks did not both
    arrive runs again; after ``attempts`` the result fails, saying so. Its output must fit
    in the tail an exec keeps (64,000 characters)."""
    for number in range(1, attempts + 1):
        result = sandbox.exec(["sh", "-c", _MARKED, START_MARK, END_MARK, *argv],
                              timeout=timeout, env=env, repeatable=True)
        before, start, rest = result.output.partition(f"{START_MARK}\n")
        inner, end, after = rest.rpartition(f"\n{END_MARK}\n")
        if start and end:
            return replace(result, output=before + inner + after)
        if result.timed_out or result.stopped:     # what came, without runner's mark
            return replace(result, output=before + rest if start else result.output)
        if number < attempts:
            sandbox.say(f"the output of `{command_label(argv)}` did not arrive whole; it "
                        "runs again")
    return replace(result, exit_code=result.exit_code or 1,
                   output=f"its output did not arrive whole in {attempts} tries: "
                          + result.output[-200:])


# $0: the start mark, $1: the end mark, then the command.
_MARKED = ('printf "%s\\n" "$0"; end=$1; shift; "$@"; code=$?; printf "\\n%s\\n" "$end"; '
           'exit "$code"')


def command_label(argv: Sequence[str], limit: int = 60) -> str:
    """A command as the log names it, on one line: a shell's script, or the command without
    git's ``-c`` settings (and without a read's marks), cut to ``limit`` characters."""
    words = list(argv[5:] if list(argv[:3]) == ["sh", "-c", _MARKED] else argv)
    if words[:1] in (["sh"], ["bash"]) and "-c" in words[:-1]:
        text = words[words.index("-c") + 1]
    else:
        kept: list[str] = []
        rest = iter(words)
        for word in rest:
            if word == "-c" and kept[:1] == ["git"]:
                next(rest, None)
                continue
            kept.append(word)
        text = shlex.join(kept)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


LINE_LIMIT = 16_000    # characters of one output line handed on; the rest is cut


def cut_mark(cut: int) -> str:
    return f" [… {cut:,} more characters of this line cut]"


@dataclass
class OutputTail:
    """Keep the last ``limit`` characters of a command's output, and cut each stream
    (stdout, stderr) into lines for a handler, so their partial lines never mix.

    A line longer than ``line_limit`` reaches the handler cut to its start, marked with how
    much was cut: output without a newline costs bounded memory and time, however long."""

    handler: OutputHandler | None = None
    limit: int = 64_000
    line_limit: int = LINE_LIMIT
    _partial: dict[int, str] = field(default_factory=dict)
    _cut: dict[int, int] = field(default_factory=dict)     # characters dropped, per stream
    _tail: deque[str] = field(default_factory=deque)
    _size: int = 0

    def feed(self, text: str, stream: int = 1) -> None:
        self._keep(text)
        if self.handler is None:
            return
        *ended, rest = text.split("\n")
        for piece in ended:
            self._add(stream, piece)
            self._emit(stream)
        self._add(stream, rest)

    def close(self) -> str:
        for stream in list(self._partial):
            if self._partial[stream] or self._cut.get(stream):
                self._emit(stream)
        self._partial.clear()
        return "".join(self._tail)[-self.limit:]

    def _keep(self, text: str) -> None:
        text = text[-self.limit:]
        self._tail.append(text)
        self._size += len(text)
        while self._size - len(self._tail[0]) >= self.limit:   # still `limit` without it
            self._size -= len(self._tail.popleft())

    def _add(self, stream: int, piece: str) -> None:
        partial = self._partial.get(stream, "")
        room = self.line_limit - len(partial)
        if len(piece) > room:
            self._cut[stream] = self._cut.get(stream, 0) + len(piece) - max(room, 0)
            piece = piece[:max(room, 0)]
        self._partial[stream] = partial + piece

    def _emit(self, stream: int) -> None:
        assert self.handler is not None
        line, cut = self._partial.pop(stream, ""), self._cut.pop(stream, 0)
        self.handler(line + cut_mark(cut) if cut else line)
