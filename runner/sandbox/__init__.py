"""Where a worker's commands run: the Sandbox protocol and what it is built from.

A Backend is an engine runner is connected to (sandbox/engines.py names it, once per
command, and sandbox/backends.py connects it): it opens a SandboxProvider per run and holds
the images. A sandbox is described by a SandboxSpec — the work (a Checkout: which commit on
which branch, what the worker may read), its limits, labels, network and way out — and
opened by a SandboxProvider, which owns the workspace: it makes the clone and the private
Gradle home where its sandboxes can use them, keeps them as long as the run needs them, and
removes or sets them aside when told. The Docker implementation lives in ``sandbox/docker/``:
local.py (this machine's engine) and remote.py (another's), behind engine.py; the Kubernetes
one (a Pod per sandbox) in ``sandbox/kube/``.
Everything else reaches a workspace only through a sandbox's commands (exec).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from runner.host.objectstore import RunObjects
    from runner.records.events import EventSink
    from runner.sandbox.engines import Engine
    from runner.sandbox.recipes import Recipe

WORKSPACE = "/workspace"
GRADLE_HOME = "/gradle-home"
GRADLE_RO_CACHE = "/gradle-ro-cache"
RUN_OBJECTS = "/runner/objects"  # the run's object store, read-only (clone alternates)
CLAUDE_DIR = "/runner/claude"
CLAUDE_BINARY = f"{CLAUDE_DIR}/claude"    # Claude Code, read-only, for claude-code tickets
GATEWAY_DIR = "/runner/gateway"  # the directory of the worker's gateway socket, read-only
GATEWAY_PORT = 3128              # where the forwarder serves the gateway on the worker's loopback
TIMEOUT_EXIT = 124                # what `timeout` returns when it stopped the command
KILL_GRACE = 10        # seconds between `timeout`'s TERM and its KILL
STOPPED_EXIT = 137     # SIGKILL: the watchdog, the OOM killer, or a worker killing its init
WATCHDOG_SLACK = 30    # seconds after that before the host stops the whole sandbox
# Where a provider's own scratch checkouts are (probes, phase checks): never salvaged.
SCRATCH_PLACES = ("selftest", "checks")
# Scripts and checks run like CI steps: stop at the first failing command, also in pipelines.
STRICT_BASH = ("bash", "--noprofile", "--norc", "-eo", "pipefail", "-c")


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class Checkout:
    """The clone a sandbox works in, which its provider makes and keeps: ``start`` checked
    out on ``branch``, borrowing only what ``history`` holds (base's history and the run's
    integrated work). ``place`` and ``name`` say which one, within the run: a ticket
    ("", "T1"), a rerun ("reruns/1", "T1"), a probe ("selftest", "_probe1"). A ``start`` of
    "" is one not known yet: a sandbox made ahead for a ticket whose dependencies run."""

    name: str
    branch: str
    start: str
    history: RunObjects
    place: str = ""
    fresh: bool = True             # False: the one an earlier sandbox left (salvage)
    # What its private home (GRADLE_HOME) starts with: (file name, text), e.g. Gradle's
    # gradle.properties and cargo's config.toml pointing them at the gateway.
    home_files: tuple[tuple[str, str], ...] = ()
    # And files of this machine copied there: (path in the home, the file), e.g. a Gradle
    # wrapper's distribution from the dependency cache.
    home_copies: tuple[tuple[str, Path], ...] = ()


@dataclass(frozen=True)
class Durable:
    """A checkout that must outlive its sandbox, on an engine whose checkouts would otherwise
    go with it (a Pod's emptyDir): kept on a volume of ``storage_class`` (None: the engine's
    default). Docker's checkouts outlive their containers already."""

    storage_class: str | None = None


@dataclass(frozen=True)
class Limits:
    cpus: float
    memory: str
    pids: int
    disk: int | None = None    # bytes the writable mounts may grow by (None: not watched)


@dataclass(frozen=True)
class SandboxSpec:
    name: str
    image: str
    env: Mapping[str, str]
    labels: Mapping[str, str]
    limits: Limits
    checkout: Checkout | None = None   # None: a sandbox with no workspace of its own
    shared_cache: Path | None = None   # a read-only Gradle dependency cache (GRADLE_RO_CACHE)
    files: tuple[Mount, ...] = ()      # read-only files carried in (the Claude Code binary)
    network: str = "none"
    user: str = "0:0"          # uid:gid the worker runs as (the host user's)
    workdir: str = WORKSPACE
    # The host path of the worker's gateway socket (None: no way out). The backend carries it
    # into the sandbox and serves it on 127.0.0.1:GATEWAY_PORT there; the socket's directory
    # holds nothing else.
    gateway: Path | None = None
    runtime: str | None = None     # the engine's runtime for it (runsc, a RuntimeClass)
    durable: Durable | None = None  # None: its checkout kept as the engine keeps them


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


class Sandbox(Protocol):
    name: str
    user: str           # uid:gid its commands run as (the spec's, or the backend's own)
    restarts: int       # times it was found stopped (killed from outside) and started again
    # Why the sandbox stopped its worker itself, over a limit it enforces while open (disk);
    # "" if it did not. Its files stay, and commands run again after it (collection).
    stopped_for: str

    def exec(self, argv: Sequence[str], *, timeout: float,
             on_output: OutputHandler | None = None,
             env: Mapping[str, str] | None = None) -> ExecResult:
        """Run ``argv`` in the workdir; stream lines to ``on_output``; stop it at ``timeout``."""
        ...

    def files_holding(self, needle: bytes) -> list[str] | None:
        """The files of its checkout whose bytes hold ``needle``, searched from the runner's
        side; None when the backend cannot look without sending ``needle`` in (a secret,
        such as the API key, must never be)."""
        ...

    def reset(self) -> None:
        """Stop every process the worker left behind; its files stay as they are. A backend
        may do it as the first step of the next command: nothing that command does runs
        beside them."""
        ...

    def exec_to_file(self, argv: Sequence[str], *, timeout: float, dest: Path,
                     limit: int) -> ExecResult:
        """Run ``argv`` and write its stdout (e.g. a git bundle) to a new file ``dest``, at
        most ``limit`` bytes; the result's output is its stderr."""
        ...

    def interact(self, argv: Sequence[str]) -> int:
        """Run ``argv`` on this process's terminal (`runner shell`), keys in and output out as
        they come, until it exits; its exit code."""
        ...


class SandboxProvider(Protocol):
    # Whether its sandboxes see the runner's paths (a local engine): only then does a
    # runner path (the run directory in a label) mean anything to them.
    shares_disk: bool

    def open(self, spec: SandboxSpec, *, keep: bool = False) -> AbstractContextManager[Sandbox]:
        """Start a sandbox; it is removed when the context exits unless ``keep`` (maybe in
        the background: discard, set_aside, clear and settle wait for it)."""
        ...

    def remove_run(self, run_id: str) -> int:
        """Remove every sandbox of a run at once (a hard stop, cleanup); return how many. A
        backend whose checkouts live only as long as their sandboxes (Kubernetes' emptyDir)
        keeps those that hold one of kept(), with nothing running in them, for the salvage
        that follows; discard() and clear() remove them."""
        ...

    def image_env(self, image: str) -> Mapping[str, str]:
        """The variables ``image`` sets in every sandbox made from it (the self-test tells
        them from what leaked in)."""
        ...

    def answers(self) -> bool:
        """Whether the engine behind the sandboxes still answers (after a failure: was it
        the ticket, or did the engine go away?)."""
        ...

    def stop_processes(self, run_id: str) -> None:
        """End every process in the run's sandboxes; their files and the sandboxes stay (an
        interrupt: the workers then collect what they committed)."""
        ...

    def prepare(self, spec: SandboxSpec, *, started: bool = True) -> None:
        """Make ``spec``'s sandbox ahead of its open() (while the self-test runs, say): its
        checkout, and with ``started`` the sandbox itself, started, with nothing run in it.
        The open() of the same spec then uses it — of one whose checkout has the start
        this one's left open (""), with that start checked out then; of another spec under
        its name, only its checkout, if that is the same. An open() of its name while it
        is being made waits for it. A backend may make less ahead, or nothing."""
        ...

    def settle(self) -> None:
        """Remove what was made ahead and never opened, and wait until every sandbox closed
        is gone (a backend may remove them in the background): the end of a run."""
        ...

    def reopen(self, spec: SandboxSpec) -> AbstractContextManager[Sandbox | None]:
        """The newest sandbox a run kept (--keep) of the run and ticket ``spec`` is labelled
        with, started again if it stopped and left as it is when closed; None when none
        is kept."""
        ...

    def kept(self) -> list[tuple[str, str]]:
        """The (place, name) of every checkout of the run this provider keeps, but those of
        its probes and phase checks: what a resume or a clean must salvage."""
        ...

    def discard(self, place: str, name: str | None = None, *,
                later: bool = False) -> str | None:
        """Remove a checkout (every one under ``place`` when ``name`` is None); a problem
        that left something behind, or None. With ``later`` it may be done in the
        background, saying nothing (scratch: its sandboxes closed, nothing in it to keep);
        any discard, clear or settle() after waits for it."""
        ...

    def set_aside(self, place: str, name: str, label: str) -> str:
        """Keep a checkout whose work could not be collected out of the way, whole, so the
        ticket can run again; return where it is kept."""
        ...

    def aside(self) -> list[str]:
        """Where each checkout set aside is kept (what a clean must leave)."""
        ...

    def clear(self) -> str | None:
        """Remove every checkout of the run, its probes' and checks' too, but those set
        aside; a problem that left something behind, or None."""
        ...


@dataclass(frozen=True)
class SandboxRecord:
    """A sandbox of runner's found on an engine, whoever started it."""

    name: str
    run_id: str
    labels: Mapping[str, str]


class Backend(Protocol):
    """An engine runner is connected to: where every sandbox of a command runs."""

    engine: Engine
    shares_disk: bool          # as its providers' (sandboxes see the runner's paths)

    def version(self) -> str:
        """The engine's version, as it names it."""
        ...

    def provider(self, *, run_id: str, root: Path) -> SandboxProvider:
        """The provider of one run's sandboxes; ``root`` is the run's directory here."""
        ...

    def has_image(self, image: str) -> bool:
        ...

    def ensure_image(self, image: str, sink: EventSink) -> None:
        """``image`` on the engine: built when runner can build it, or sent from here."""
        ...

    def build_image(self, recipe: Recipe, sink: EventSink) -> str:
        """A project's image (its Dockerfile, runner's layer on it) where the engine's
        sandboxes can start from it, built only when no image of these very inputs is;
        its tag."""
        ...

    def sandboxes(self) -> list[SandboxRecord]:
        """Every sandbox of runner's on the engine, of any run (an orphan's too)."""
        ...

    def remove_sandbox(self, name: str) -> bool:
        """Remove one, running or not; False if it was gone already."""
        ...


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
    for _ in range(attempts):
        result = sandbox.exec(["sh", "-c", _MARKED, START_MARK, END_MARK, *argv],
                              timeout=timeout, env=env)
        before, start, rest = result.output.partition(f"{START_MARK}\n")
        inner, end, after = rest.rpartition(f"\n{END_MARK}\n")
        if start and end:
            return replace(result, output=before + inner + after)
        if result.timed_out or result.stopped:
            return result
    return replace(result, exit_code=result.exit_code or 1,
                   output=f"its output did not arrive whole in {attempts} tries: "
                          + result.output[-200:])


# $0: the start mark, $1: the end mark, then the command.
_MARKED = ('printf "%s\\n" "$0"; end=$1; shift; "$@"; code=$?; printf "\\n%s\\n" "$end"; '
           'exit "$code"')


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
