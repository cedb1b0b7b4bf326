"""A TEST DOUBLE of an engine: each "sandbox" is a directory and its commands subprocesses on
this machine, run as this user. It isolates nothing — no container, no network rule, no
limit — and is for tests only: it lets the lead's own logic (scheduling, collect, gates,
integration, records and views) run end to end in a fraction of a second, with no engine.

A worker's paths (/workspace, its private home, the run's objects) are the sandbox's own
directories: every argument and variable naming them is rewritten to them, and commands run
in the clone. The clone borrows the run's object store by its path on this machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from runner.host.gitops import init_linked_clone
from runner.records.events import EventSink
from runner.sandbox import (GRADLE_HOME, RUN_OBJECTS, WORKSPACE, Capacity, ExecResult,
                            OutputHandler, SandboxRecord, SandboxSpec, Take, output_of,
                            output_to_file)
from runner.sandbox.cuts import Say, Sayer
from runner.sandbox.engines import Engine

FAKE_ENGINE = Engine("local", None)   # what the run asks of its engine: this machine's


class DirSandbox:
    restarts = 0
    stopped_for = ""
    commands_via = "subprocesses"
    supervised = False

    def __init__(self, spec: SandboxSpec, clone: Path, home: Path, objects: Path) -> None:
        self.name, self.user = spec.name, f"{os.getuid()}:{os.getgid()}"
        self.clone, self.home = clone, home
        self._paths = ((WORKSPACE, str(clone)), (GRADLE_HOME, str(home)),
                       (RUN_OBJECTS, str(objects)))
        self._env = {k: self._here(v) for k, v in spec.env.items()}
        self.say = Sayer()

    def _here(self, text: str) -> str:
        for inside, outside in self._paths:
            text = text.replace(inside, outside)
        return text

    def _runner(self, argv: Sequence[str], timeout: float,
                env: Mapping[str, str] | None) -> Callable[[Take], tuple[int, bool, str]]:
        def run(take: Take) -> tuple[int, bool, str]:
            variables = {"PATH": os.environ["PATH"], **self._env,
                         **{k: self._here(v) for k, v in (env or {}).items()}}
            try:
                done = subprocess.run([self._here(a) for a in argv], cwd=self.clone,
                                      env=variables, capture_output=True, timeout=timeout)
            except subprocess.TimeoutExpired as e:
                take(1, e.stdout or b"")
                return 124, True, ""
            take(1, done.stdout)
            take(2, done.stderr)
            return done.returncode, False, ""
        return run

    def exec(self, argv: Sequence[str], *, timeout: float,
             on_output: OutputHandler | None = None,
             env: Mapping[str, str] | None = None, repeatable: bool = False) -> ExecResult:
        return output_of(self._runner(argv, timeout, env), on_output)

    def exec_to_file(self, argv: Sequence[str], *, timeout: float, dest: Path,
                     limit: int) -> ExecResult:
        return output_to_file(self._runner(argv, timeout, None), dest, limit)

    def files_holding(self, needle: bytes) -> list[str] | None:
        from runner.host.trees import files_holding

        return files_holding(needle, [self.clone, self.home])

    def reset(self) -> None:
        pass

    def interact(self, argv: Sequence[str]) -> int:
        raise NotImplementedError("a test double has no terminal")


class DirSandboxes:
    shares_disk = True

    def __init__(self, root: Path) -> None:
        self.root = root / "dir-sandboxes"
        self._aside: list[str] = []

    def _paths(self, place: str, name: str) -> tuple[Path, Path]:
        folder = self.root / (place or "tickets") / name
        return folder / "clone", folder / "home"

    @contextmanager
    def open(self, spec: SandboxSpec, *, keep: bool = False,
             say: Say | None = None) -> Iterator[DirSandbox]:
        checkout = spec.checkout
        clone, home = self._paths(checkout.place, checkout.name) if checkout else (
            self.root / "scratch" / spec.name / "clone", self.root / "scratch" / spec.name / "home")
        objects = checkout.history.objects if checkout else clone
        if checkout is not None and (checkout.fresh or not clone.exists()):
            shutil.rmtree(clone.parent, ignore_errors=True)
            home.mkdir(parents=True)
            for name, text in checkout.home_files:
                (home / name).parent.mkdir(parents=True, exist_ok=True)
                (home / name).write_text(text)
            if checkout.start:
                checkout.history.ensure(checkout.start)   # the integrated work, too
                init_linked_clone(clone, objects, checkout.branch, checkout.start)
            else:
                clone.mkdir()
        clone.mkdir(parents=True, exist_ok=True)
        home.mkdir(parents=True, exist_ok=True)
        sandbox = DirSandbox(spec, clone, home, objects)
        sandbox.say.to(say)
        yield sandbox

    def prepare(self, spec: SandboxSpec, *, started: bool = True) -> None:
        pass

    def settle(self) -> None:
        pass

    @contextmanager
    def reopen(self, spec: SandboxSpec) -> Iterator[DirSandbox | None]:
        yield None

    def kept(self) -> list[tuple[str, str]]:
        tickets = self.root / "tickets"
        return [("", p.name) for p in sorted(tickets.iterdir())] if tickets.is_dir() else []

    def discard(self, place: str, name: str | None = None, *,
                later: bool = False) -> str | None:
        shutil.rmtree(self.root / (place or "tickets") / (name or ""), ignore_errors=True)
        return None

    def set_aside(self, place: str, name: str, label: str) -> str:
        kept = self.root / "aside" / f"{name}-{label}"
        kept.parent.mkdir(parents=True, exist_ok=True)
        (self.root / (place or "tickets") / name).rename(kept)
        self._aside.append(str(kept))
        return str(kept)

    def aside(self) -> list[str]:
        return list(self._aside)

    def clear(self) -> str | None:
        for folder in self.root.iterdir() if self.root.is_dir() else ():
            if folder.name != "aside":
                shutil.rmtree(folder, ignore_errors=True)
        return None

    def remove_run(self, run_id: str) -> int:
        return 0

    def stop_processes(self, run_id: str) -> None:
        pass

    def image_env(self, image: str) -> dict[str, str]:
        return {}

    def answers(self) -> bool:
        return True


class DirBackend:
    """The engine a fast test runs a phase on: run_phase(..., backend=DirBackend())."""

    engine = FAKE_ENGINE
    shares_disk = True
    held: Capacity | None = None     # what a test says this "engine" holds

    def version(self) -> str:
        return "a test double (directories and subprocesses)"

    def provider(self, *, run_id: str, root: Path) -> DirSandboxes:
        return DirSandboxes(root)

    def has_image(self, image: str) -> bool:
        return True

    def ensure_image(self, image: str, sink: EventSink) -> None:
        pass

    def build_image(self, recipe: object, sink: EventSink) -> str:
        raise NotImplementedError("a test double builds no image")

    def sandboxes(self) -> list[SandboxRecord]:
        return []

    def remove_sandbox(self, name: str) -> bool:
        return False

    def capacity(self) -> Capacity | None:
        return self.held

    def runtimes(self) -> frozenset[str] | None:
        return None
