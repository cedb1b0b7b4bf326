"""The swap points: a Sandbox (where a worker's commands run), the SandboxProvider of a
run's sandboxes, and the Backend (an engine runner is connected to)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from runner.sandbox.output import ExecResult, OutputHandler
from runner.sandbox.spec import SandboxSpec

if TYPE_CHECKING:
    from runner.records import EventSink
    from runner.sandbox.cuts import Sayer
    from runner.sandbox.engines import Engine
    from runner.sandbox.recipes import Recipe


class Sandbox(Protocol):
    name: str
    user: str           # uid:gid its commands run as (the spec's, or the backend's own)
    restarts: int       # times it was found stopped (killed from outside) and started again,
                        # or a command's stream broke and what it started was stopped
    # Why the sandbox stopped its worker itself, over a limit it enforces while open (disk);
    # "" if it did not. Its files stay, and commands run again after it (collection).
    stopped_for: str
    # How the lead's commands reach it, for the ticket's log: "the supervisor" (a channel to
    # runner's own first process in it, sandbox/supervisor/) or the engine's own ("engine
    # execs", "pods/exec").
    commands_via: str
    # Whether its first process is runner's supervisor (the self-test checks it is out of
    # the worker's reach).
    supervised: bool

    # How it tells the ticket's log what happened to its commands (a stream that broke and
    # was opened again): lines kept until open() is given where they go (sandbox/cuts.py).
    say: Sayer

    def exec(self, argv: Sequence[str], *, timeout: float,
             on_output: OutputHandler | None = None,
             env: Mapping[str, str] | None = None, repeatable: bool = False) -> ExecResult:
        """Run ``argv`` in the workdir; stream lines to ``on_output``; stop it at ``timeout``.
        Its stream broken on the way (the engine and the sandbox fine, sandbox/cuts.py): run
        again when ``repeatable`` (it reads, or running it twice does what running it once
        does, even beside a run of it cut off), else a stopped result, what it started
        stopped, counted in ``restarts``."""
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
        most ``limit`` bytes; the result's output is its stderr. It must be repeatable (as
        exec's ``repeatable``): a broken stream runs it again into ``dest`` anew."""
        ...

    def interact(self, argv: Sequence[str]) -> int:
        """Run ``argv`` on this process's terminal (`runner shell`), keys in and output out as
        they come, until it exits; its exit code."""
        ...


class SandboxProvider(Protocol):
    # Whether its sandboxes see the runner's paths (a local engine): only then does a
    # runner path (the run directory in a label) mean anything to them.
    shares_disk: bool

    def open(self, spec: SandboxSpec, *, keep: bool = False,
             say: Callable[[str], None] | None = None) -> AbstractContextManager[Sandbox]:
        """Start a sandbox; it is removed when the context exits unless ``keep`` (maybe in
        the background: discard, set_aside, clear and settle wait for it). ``say`` is its
        ``say``, from its provisioning on."""
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
class Capacity:
    """What an engine can give its sandboxes at once: the CPUs and memory of each machine
    they are placed on (a Docker engine's one; each node of a cluster that takes Pods)."""

    machines: tuple[tuple[float, int], ...]      # (CPUs, memory in bytes) each

    @property
    def cpus(self) -> float:
        return sum(cpus for cpus, _ in self.machines)

    @property
    def memory_bytes(self) -> int:
        return sum(memory for _, memory in self.machines)

    def fits(self, cpus: float, memory_bytes: int) -> int:
        """How many sandboxes of ``cpus`` and ``memory_bytes`` fit at once, each whole on
        one machine."""
        return sum(min(math.floor(have / cpus + 1e-9), room // memory_bytes)
                   for have, room in self.machines)


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

    def capacity(self) -> Capacity | None:
        """The CPUs and memory its sandboxes share (None: the engine does not say)."""
        ...

    def runtimes(self) -> frozenset[str] | None:
        """The runtimes a sandbox may ask for by name (``runtime:``); None when the engine
        does not say."""
        ...
