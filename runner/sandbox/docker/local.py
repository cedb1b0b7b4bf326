"""The Docker sandbox: one hardened container per worker, commands run through exec.

docker-py's exec has no timeout and closing its stream does not stop the process, so every
command runs under ``timeout -k`` inside the container, and a host-side watchdog kills the
container if even that does not end it.
"""

from __future__ import annotations

import os
import shlex
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import docker
import docker.errors
import requests
from docker.models.containers import Container
from docker.types import Mount as DockerMount

from runner.errors import EngineUnavailable, EnvironmentProblem
from runner.host.hostview import explain_mount_error
from runner.host.trees import files_holding
from runner.host.trees import discard_tree
from runner.sandbox import (GATEWAY_DIR, GATEWAY_PORT, GRADLE_HOME, GRADLE_RO_CACHE, KILL_GRACE,
                            RUN_OBJECTS, SCRATCH_PLACES, STOPPED_EXIT, TIMEOUT_EXIT, WATCHDOG_SLACK,
                            WORKSPACE, Checkout, ExecResult, OutputHandler, SandboxSpec, output_of,
                            output_to_file, under_timeout)
from runner.sandbox.diskwatch import DiskWatch
from runner.sandbox.docker.workspace import Workspace, create_workspace, fill_workspace

# The uid:gid of the process that keeps a container up (`sleep infinity` under its init):
# nobody, never the worker's, so a worker can neither signal it nor stop the container, and
# a reset can kill all of the worker's processes at once without restarting it.
KEEPER = "65534:65534"
KEEP_UP = ["sleep", "infinity"]


def keeper_command(spec: SandboxSpec) -> list[str]:
    """What the container's own process runs: with a gateway, the forwarder too (socat, as
    KEEPER like the rest: the worker cannot stop it, and a restart starts it again)."""
    if spec.gateway is None:
        return KEEP_UP
    forward = (f"socat TCP-LISTEN:{GATEWAY_PORT},bind=127.0.0.1,fork,reuseaddr "
               f"UNIX-CONNECT:{shlex.quote(f'{GATEWAY_DIR}/{spec.gateway.name}')}")
    return ["/bin/sh", "-c", f"{forward} & exec {shlex.join(KEEP_UP)}"]


# What docker-py raises when its calls fail: an APIError when the engine answered with an
# error; requests' errors (no DockerException) when it does not answer at all.
DOCKER_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException,
                 ConnectionError)


def docker_client(url: str | None = None) -> docker.DockerClient:
    """A client that answers, or EngineUnavailable saying what to do; ``url`` is another
    machine's engine (tcp://, ssh://), None this machine's (DOCKER_HOST or its socket)."""
    try:
        # max_pool_size: one stream per worker.
        client = (docker.DockerClient(base_url=url, timeout=120, max_pool_size=64) if url
                  else docker.from_env(timeout=120, max_pool_size=64))
        client.ping()
        return client
    except DOCKER_ERRORS as e:
        where = url or os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        hint = ("check the engine there is up and reachable from here" if url else
                "start the Docker engine or set DOCKER_HOST, and check you may use its socket")
        raise EngineUnavailable(f"Docker does not answer at {where} "
                                f"({e.__class__.__name__}); {hint}") from e


@contextmanager
def engine_must_answer() -> Iterator[None]:
    """An engine that stops answering mid-call is EngineUnavailable (a RunnerError), which
    the lead handles, not a stray requests error; the engine's own errors stay what they
    are."""
    try:
        yield
    except docker.errors.APIError:
        raise
    except DOCKER_ERRORS as e:
        raise EngineUnavailable(f"the Docker engine stopped answering ({e.__class__.__name__})"
                                ) from e


ASIDE = "unsalvaged"     # where checkouts whose work could not be collected are set aside


@dataclass
class _Ahead:
    """A sandbox made ahead of its open(): its checkout, and its started container when
    asked for (nothing runs in it but its keeper); ``ready`` once made (or not)."""

    spec: SandboxSpec
    placement: object = None
    sandbox: DockerSandbox | None = None
    ready: threading.Event = field(default_factory=threading.Event)


def _fits(ahead: SandboxSpec, spec: SandboxSpec) -> bool:
    """Whether a sandbox made ahead for ``ahead`` serves ``spec``: the same, but that its
    checkout's start may have been left to its open()."""
    if ahead.checkout is None or spec.checkout is None or ahead.checkout.start:
        return ahead == spec
    return ahead == replace(spec, checkout=replace(spec.checkout, start=""))


REMOVERS = 4     # containers removed at once, off the tickets' way
STARTERS = 64    # containers started while their clones are made (threads made as needed)


class DockerSandboxes:
    """Opens DockerSandbox containers from SandboxSpecs (the SandboxProvider for Docker).

    The engine shares the runner's disk: a checkout is a linked clone and a Gradle home in
    the run's directory (``root``), bind-mounted with the run's object store read-only.
    A sandbox's container is removed on a thread of its own once it is closed: the ticket
    goes on meanwhile, and whatever needs it gone (a discard, a clear, settle()) waits; so
    does a checkout discarded ``later``."""

    def __init__(self, client: docker.DockerClient, root: Path | None = None) -> None:
        self.client = client
        self.root = root
        self._ahead: dict[str, _Ahead] = {}     # by sandbox name: made ahead, not yet opened
        self._opened: set[str] = set()          # names open() was asked for: none made ahead
        self._removing: set[Future[None]] = set()          # containers
        self._remover: ThreadPoolExecutor | None = None
        self._discarding: set[Future[None]] = set()        # checkouts, discard(later=True)
        self._discarder: ThreadPoolExecutor | None = None
        self._starts: ThreadPoolExecutor | None = None     # containers started meanwhile
        self._lock = threading.Lock()

    def _paths(self, place: str, name: str) -> tuple[Path, Path]:
        if self.root is None:
            raise EnvironmentProblem("this Docker provider has no run directory for "
                                     "workspaces (a bug: give DockerSandboxes the run's root)")
        base = self.root / place
        return base / "workspaces" / name, base / "gradle" / name

    # The places a backend without the runner's disk differs (sandbox/docker/remote.py): where a
    # checkout lives (_place), how it is mounted (_mounts), what is done in the started
    # sandbox (_provision), and how its disk is watched (_watch_disk).
    def _place(self, checkout: Checkout) -> object:
        clone, home = self._paths(checkout.place, checkout.name)
        if not checkout.fresh:
            return Workspace(clone=clone, gradle_home=home, branch=checkout.branch,
                             start=checkout.start)
        return create_workspace(checkout.history, clone=clone, gradle_home=home,
                                branch=checkout.branch, start=checkout.start,
                                home_files=checkout.home_files,
                                home_copies=checkout.home_copies)

    def prepare(self, spec: SandboxSpec, *, started: bool = True) -> None:
        made = _Ahead(spec)
        with self._lock:      # an open() of the same name meanwhile waits for it
            if spec.name in self._opened:
                return        # its open() came first: it made its own
            self._ahead[spec.name] = made
        try:
            made.placement = self._place(spec.checkout) if spec.checkout else None
            made.sandbox = self._start(spec, made.placement) if started else None
        except BaseException:     # what it made goes (its open() makes its own)
            with self._lock:
                if self._ahead.get(spec.name) is made:
                    del self._ahead[spec.name]
            made.placement = None
            if spec.checkout is not None:
                self._discard(spec.checkout.place, spec.checkout.name)
            raise
        finally:
            made.ready.set()

    def settle(self) -> None:
        self._drop_ahead()
        self._drain()    # what was closed meanwhile

    def _drop_ahead(self, place: str | None = None, name: str | None = None) -> None:
        """Forget what was made ahead (in ``place``, of ``name``) and never opened: its
        container and its checkout go (nothing ran in them)."""
        def dropped(made: _Ahead) -> bool:
            checkout = made.spec.checkout
            return place is None or (checkout is not None and checkout.place == place
                                     and name in (None, checkout.name))

        with self._lock:
            gone = [made for made in self._ahead.values() if dropped(made)]
            self._ahead = {key: made for key, made in self._ahead.items() if not dropped(made)}
        for made in gone:
            made.ready.wait()        # one still being made is made first
            if made.sandbox is not None:
                self._remove_later(made.sandbox.container)
        self._drain(checkouts=False)
        for made in gone:
            if made.placement is not None and made.spec.checkout is not None:
                self._discard(made.spec.checkout.place, made.spec.checkout.name)

    def _drain(self, checkouts: bool = True) -> None:
        """Wait for every container being removed (and, with ``checkouts``, every checkout
        being discarded)."""
        while True:
            with self._lock:
                pending = list(self._removing) + (list(self._discarding) if checkouts else [])
            if not pending:
                return
            wait(pending)

    def _remove_later(self, container: Container) -> None:
        with self._lock:
            if self._remover is None:
                self._remover = ThreadPoolExecutor(REMOVERS, thread_name_prefix="remove")
            removal = self._remover.submit(_remove, container)
            self._removing.add(removal)
        removal.add_done_callback(self._removed)

    def _removed(self, removal: Future[None]) -> None:
        with self._lock:
            self._removing.discard(removal)

    def kept(self) -> list[tuple[str, str]]:
        if self.root is None:
            return []
        places = ["", *sorted(f"reruns/{p.name}" for p in (self.root / "reruns").glob("*"))]
        return [(place, clone.name) for place in places
                for clone in sorted((self.root / place / "workspaces").glob("*"))]

    # What needs a checkout's sandboxes gone first waits for them here; the _ methods after
    # are what a backend does with its checkouts (sandbox/docker/remote.py: volumes).
    def discard(self, place: str, name: str | None = None, *,
                later: bool = False) -> str | None:
        if later:
            with self._lock:
                if self._discarder is None:
                    self._discarder = ThreadPoolExecutor(1, thread_name_prefix="discard")
                job = self._discarder.submit(self._discard_when_idle, place, name)
                self._discarding.add(job)
            job.add_done_callback(self._discarded)
            return None
        self._idle(place, name)
        return self._discard(place, name)

    def _discard_when_idle(self, place: str, name: str | None) -> None:
        self._drop_ahead(place, name)     # which waits for the containers being removed
        self._discard(place, name)

    def _discarded(self, job: Future[None]) -> None:
        with self._lock:
            self._discarding.discard(job)

    def set_aside(self, place: str, name: str, label: str) -> str:
        self._idle(place, name)
        return self._set_aside(place, name, label)

    def clear(self) -> str | None:
        self.settle()
        return self._clear()

    def _idle(self, place: str, name: str | None) -> None:
        self._drop_ahead(place, name)
        self._drain()

    def _discard(self, place: str, name: str | None) -> str | None:
        if self.root is None:
            return None
        if name is None:
            trees = [self.root / place / "workspaces", self.root / place / "gradle"]
        else:
            trees = list(self._paths(place, name))
        problems = [problem for tree in trees if (problem := discard_tree(tree))]
        return "; ".join(problems) or None

    def _set_aside(self, place: str, name: str, label: str) -> str:
        assert self.root is not None
        aside = self.root / ASIDE / f"{name}-{label}-{os.urandom(2).hex()}"
        aside.mkdir(parents=True)
        for tree in self._paths(place, name):
            if tree.exists():
                tree.rename(aside / tree.parent.name)
        return str(aside)

    def aside(self) -> list[str]:
        return [] if self.root is None else [str(p) for p in
                                             sorted((self.root / ASIDE).glob("*"))]

    def _clear(self) -> str | None:
        if self.root is None:
            return None
        trees = [self.root / name for name in ("workspaces", "gradle", "reruns",
                                                *SCRATCH_PLACES)]
        return "; ".join(problem for tree in trees if (problem := discard_tree(tree))) or None

    shares_disk = True            # the engine sees the runner's paths (bind mounts)

    def _mounts(self, spec: SandboxSpec, placement: object) -> list[DockerMount]:
        binds: list[tuple[Path, str, bool]] = [(m.source, m.target, True) for m in spec.files]
        if isinstance(placement, Workspace):
            assert spec.checkout is not None
            binds += [(placement.clone, WORKSPACE, False),
                      (placement.gradle_home, GRADLE_HOME, False),
                      (spec.checkout.history.objects, RUN_OBJECTS, True)]
        if spec.shared_cache is not None:
            binds.append((spec.shared_cache, GRADLE_RO_CACHE, True))
        mounts = [DockerMount(target=target, source=str(source), type="bind",
                              read_only=read_only) for source, target, read_only in binds]
        if spec.gateway is not None:     # its directory: a socket bound again stays reachable
            mounts.append(DockerMount(target=GATEWAY_DIR, source=str(spec.gateway.parent),
                                      type="bind", read_only=True))
        return mounts

    def _provision(self, sandbox: DockerSandbox, checkout: Checkout, placement: object) -> None:
        """The clone made on the runner's disk, if it was left for now (made ahead before
        its start was known): the container sees it through its bind mount."""
        if sandbox.workspace is not None and not sandbox.workspace.start:
            sandbox.workspace = fill_workspace(checkout.history, sandbox.workspace,
                                               checkout.start)

    def _watch_disk(self, sandbox: DockerSandbox) -> AbstractContextManager[object]:
        """Watch the writable mounts (workspace, Gradle home) against the disk budget while
        the sandbox is open: during the worker's commands, its checks and collection alike."""
        spec, workspace = sandbox.spec, sandbox.workspace
        if spec.limits.disk is None or workspace is None:
            return nullcontext()
        return DiskWatch({workspace.clone: WORKSPACE, workspace.gradle_home: GRADLE_HOME},
                         budget=spec.limits.disk, stop=sandbox.stop_for)

    @contextmanager
    def open(self, spec: SandboxSpec, *, keep: bool = False) -> Iterator[DockerSandbox]:
        sandbox = self._made_ahead(spec) or self._open_new(spec)
        try:
            with self._watch_disk(sandbox):
                yield sandbox
        finally:
            if not keep:
                self._remove_later(sandbox.container)

    def _made_ahead(self, spec: SandboxSpec) -> DockerSandbox | None:
        """The sandbox made ahead for ``spec`` (its clone made now, if its start was not
        known then), or started now if only its checkout was made; None when nothing was
        made ahead for it, or for another spec under its name."""
        with self._lock:
            self._opened.add(spec.name)
            made = self._ahead.pop(spec.name, None)
        if made is None:
            return None
        made.ready.wait()
        if made.sandbox is not None and _fits(made.spec, spec):
            if spec.checkout is not None and made.spec.checkout != spec.checkout:
                try:
                    made.sandbox.spec = spec
                    self._provision(made.sandbox, spec.checkout, made.placement)
                except BaseException:
                    self._remove_later(made.sandbox.container)
                    raise
            return made.sandbox
        if made.sandbox is not None:
            self._remove_later(made.sandbox.container)
        if made.spec.checkout == spec.checkout and made.placement is not None:
            return self._start(spec, made.placement)
        if made.spec.checkout is not None and made.placement is not None:  # not this one's
            self.discard(made.spec.checkout.place, made.spec.checkout.name)
        return None

    def _open_new(self, spec: SandboxSpec) -> DockerSandbox:
        checkout = spec.checkout
        if checkout is None or not (checkout.fresh and checkout.start and self.shares_disk):
            return self._start(spec, self._place(checkout) if checkout else None)
        # On the runner's disk, the clone is made while the engine creates and starts the
        # container: its bind mount shows the clone once made, and no command runs in it
        # before open() returns.
        checkout.history.ensure(checkout.start)     # refused before anything is made
        later = replace(checkout, start="")
        placement = self._place(later)
        starting = self._starter().submit(self._start, replace(spec, checkout=later),
                                          placement)
        try:
            assert isinstance(placement, Workspace)
            filled = fill_workspace(checkout.history, placement, checkout.start)
            sandbox = starting.result()
        except BaseException:
            _remove_started(starting)
            raise
        sandbox.spec, sandbox.workspace = spec, filled
        return sandbox

    def _starter(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._starts is None:
                self._starts = ThreadPoolExecutor(STARTERS, thread_name_prefix="start")
            return self._starts

    def _start(self, spec: SandboxSpec, placement: object) -> DockerSandbox:
        """Create and start ``spec``'s container over ``placement``, ready for commands."""
        with engine_must_answer():
            container = self._create(spec, self._mounts(spec, placement))
        try:
            try:
                with engine_must_answer():
                    container.start()
            except docker.errors.APIError as e:
                raise EnvironmentProblem(f"cannot start container {spec.name}: "
                                         f"{e.explanation or e}") from e
            sandbox = DockerSandbox(container, self.client, spec,
                                    placement if isinstance(placement, Workspace) else None)
            if spec.checkout is not None and spec.checkout.start:    # else at its open()
                self._provision(sandbox, spec.checkout, placement)
            return sandbox
        except BaseException:
            self._remove_later(container)
            raise

    @contextmanager
    def reopen(self, spec: SandboxSpec) -> Iterator[DockerSandbox | None]:
        labels = [f"{key}={spec.labels[key]}" for key in ("runner.run", "runner.ticket")]
        with engine_must_answer():
            found = [c for c in self.client.containers.list(all=True,
                                                             filters={"label": labels})
                     if "runner.shell" not in c.labels]     # another shell's, not the run's
        if not found:
            yield None
            return
        container = max(found, key=lambda c: c.attrs.get("Created", ""))
        placement = self._place(spec.checkout) if spec.checkout else None
        sandbox = DockerSandbox(container, self.client, replace(spec, name=container.name),
                                placement if isinstance(placement, Workspace) else None)
        with engine_must_answer():
            sandbox._ensure_running()
        yield sandbox

    def stop_processes(self, run_id: str) -> None:
        # Best effort, container by container: an interrupt goes on regardless.
        for container in self._run_containers(run_id, all=False):
            try:
                container.restart(timeout=0)
            except DOCKER_ERRORS:
                pass

    def remove_run(self, run_id: str) -> int:
        with self._lock:      # what was made ahead goes with the rest
            self._ahead = {name: replace(made, sandbox=None)
                           for name, made in self._ahead.items()}
        containers = self._run_containers(run_id, all=True)
        for container in containers:
            try:
                container.remove(force=True)
            except DOCKER_ERRORS:
                pass
        return len(containers)

    def image_env(self, image: str) -> dict[str, str]:
        try:
            with engine_must_answer():
                config = self.client.images.get(image).attrs.get("Config") or {}
        except docker.errors.ImageNotFound as e:
            raise EnvironmentProblem(f"image {image} is missing; run `runner images "
                                     "build`") from e
        except docker.errors.APIError as e:   # a reference this engine refuses
            raise EnvironmentProblem(f"image {image}: the Docker engine refuses it "
                                     f"({e.explanation or e})") from e
        return dict(entry.split("=", 1) for entry in config.get("Env") or [] if "=" in entry)

    def answers(self) -> bool:
        try:
            return bool(self.client.ping())
        except DOCKER_ERRORS:
            return False

    def _run_containers(self, run_id: str, *, all: bool) -> list[Container]:
        try:   # sparse: no inspect of each, which fails for one removed meanwhile
            return self.client.containers.list(all=all, sparse=True,
                                               filters={"label": f"runner.run={run_id}"})
        except DOCKER_ERRORS:
            return []

    def _create(self, spec: SandboxSpec, mounts: list[DockerMount]) -> Container:
        for attempt in (1, 2):
            try:
                # create (not run): run would silently try to pull a missing image.
                return self.client.containers.create(
                    # entrypoint []: an image's ENTRYPOINT would wrap the keeper (a project's
                    # image often has one) and run it as its arguments.
                    spec.image, command=keeper_command(spec), entrypoint=[], name=spec.name,
                    # The container's own process is KEEPER's; every command runs as the
                    # worker.
                    labels=dict(spec.labels), environment=dict(spec.env), user=KEEPER,
                    working_dir=spec.workdir, mounts=mounts, network_mode=spec.network,
                    init=True, read_only=True,
                    tmpfs={"/tmp": "rw,exec,nosuid,nodev,size=1g"},
                    cap_drop=["ALL"], security_opt=["no-new-privileges:true"],
                    pids_limit=spec.limits.pids, mem_limit=spec.limits.memory,
                    memswap_limit=spec.limits.memory, nano_cpus=int(spec.limits.cpus * 1e9),
                    runtime=spec.runtime,
                )
            except docker.errors.ImageNotFound as e:
                raise EnvironmentProblem(f"image {spec.image} is missing; run `runner images "
                                         "build`") from e
            except docker.errors.APIError as e:
                if e.status_code == 409 and attempt == 1 and self._removing:
                    self._drain()    # the name is an earlier sandbox's, still being removed
                    continue
                reason = explain_mount_error(str(e.explanation or e))
                raise EnvironmentProblem(f"cannot create container {spec.name}: "
                                         f"{reason}") from e
        raise AssertionError("unreachable")


def _remove_started(starting: Future[DockerSandbox]) -> None:
    """The container ``starting`` makes, removed once made (nothing to do if it failed)."""
    try:
        sandbox = starting.result()
    except BaseException:
        return
    _remove(sandbox.container)


def _remove(container: Container) -> None:
    try:
        container.remove(force=True)
    except DOCKER_ERRORS:   # gone already, or no engine to ask: `clean` finds it
        pass


class DockerSandbox:
    def __init__(self, container: Container, client: docker.DockerClient,
                 spec: SandboxSpec, workspace: Workspace | None = None) -> None:
        self.container, self.api, self.spec = container, client.api, spec
        self.workspace = workspace     # its checkout on the runner's disk (a local engine)
        self.name = spec.name
        self.user = spec.user
        self.restarts = 0
        self.stopped_for = ""
        self._stop_counted = False
        self._stops = 0            # stops of the sandbox's own (disk), so far
        self._last_stop = ""
        self._reset_due = False    # reset() asked: the next command kills the rest first

    def exec(self, argv: Sequence[str], *, timeout: float,
             on_output: OutputHandler | None = None,
             env: Mapping[str, str] | None = None) -> ExecResult:
        return output_of(lambda take: self._run(argv, timeout, env, take), on_output)

    def exec_to_file(self, argv: Sequence[str], *, timeout: float, dest: Path,
                     limit: int) -> ExecResult:
        return output_to_file(lambda take: self._run(argv, timeout, None, take), dest, limit)

    def interact(self, argv: Sequence[str]) -> int:
        from runner.sandbox.terminal import interact

        try:
            with engine_must_answer():
                self._ensure_running()
                return interact(self.api, self.container.id, argv, user=self.spec.user,
                                workdir=self.spec.workdir, env={})
        except docker.errors.APIError as e:
            raise EnvironmentProblem(f"cannot open a shell in {self.name}: "
                                     f"{e.explanation or e}") from e

    def files_holding(self, needle: bytes) -> list[str] | None:
        if self.workspace is None:      # not on the runner's disk
            return None
        return files_holding(needle, [self.workspace.clone, self.workspace.gradle_home])

    def reset(self) -> None:
        """Done by the next command, as its first step and in its own exec (one exec fewer
        than a kill of its own): its shell kills every other process of the worker's uid at
        once, then becomes the command. Where that cannot be (the worker runs as KEEPER's
        uid), at once."""
        if self._kills_alone():
            self._reset_due = True
            return
        with engine_must_answer():
            self._reset()

    def _kills_alone(self) -> bool:
        """Whether a kill(-1) as the worker spares the container's own process."""
        return self.spec.user.split(":")[0] != KEEPER.split(":")[0]

    def _reset(self) -> None:
        self._note_if_stopped()
        self._stop_counted = False
        if self._kill_worker_processes():
            return
        try:
            self.container.restart(timeout=0)
        except docker.errors.APIError as e:
            raise EnvironmentProblem(f"cannot restart container {self.name}: "
                                     f"{e.explanation or e}") from e

    def _kill_worker_processes(self) -> bool:
        """SIGKILL every process of the worker's uid with one kill(-1): the kernel signals
        them all at once, so no fork slips through. The container's own process belongs to
        KEEPER and stays, so the container and its /tmp live on. False when that cannot run
        (a fork bomb holding every pid, a stopped container): then it is restarted."""
        if not self._kills_alone() or self.stopped():
            return False
        try:
            exec_id = self.api.exec_create(self.container.id, ["kill", "-KILL", "-1"],
                                           user=self.spec.user)["Id"]
            self.api.exec_start(exec_id)
            code = self.api.exec_inspect(exec_id).get("ExitCode")
        except docker.errors.APIError:
            return False
        return code in (0, 1)      # 1: there was nothing left to kill

    def _run(self, argv: Sequence[str], timeout: float, env: Mapping[str, str] | None,
             take: Callable[[int, bytes], None]) -> tuple[int, bool, str]:
        """Exit code, whether it timed out, and why the sandbox stopped it ("" if not)."""
        stops = self._stops
        with engine_must_answer():
            code, timed_out = self._run_under_timeout(argv, timeout, env, take)
        if self._stops > stops and code == STOPPED_EXIT:
            return code, False, self._last_stop
        return code, timed_out, ""

    def _run_under_timeout(self, argv: Sequence[str], timeout: float,
                           env: Mapping[str, str] | None,
                           take: Callable[[int, bytes], None]) -> tuple[int, bool]:
        """Run ``argv`` under `timeout`, feeding (stream, bytes) to ``take``; return the exit
        code and whether it was stopped for taking too long. A stopped container is data
        about the worker (it may have killed its own init), not an error of runner's: it is
        started again so collection can still run."""
        self._ensure_running()
        reset_first, self._reset_due = self._reset_due, False
        wrapped = under_timeout(argv, timeout, grace=KILL_GRACE, reset_first=reset_first)
        started = time.monotonic()
        killed = threading.Event()
        timer = threading.Timer(timeout + KILL_GRACE + WATCHDOG_SLACK, self._kill, [killed])
        timer.daemon = True
        timer.start()
        try:
            code = self._stream(wrapped, env, take)
        except docker.errors.APIError:
            if not (killed.is_set() or self.stopped()):
                if reset_first:      # it could not start (a fork bomb): a reset of its own
                    timer.cancel()
                    self._reset()
                    return self._run_under_timeout(argv, timeout, env, take)
                raise
            code = None
        finally:
            timer.cancel()
        code = STOPPED_EXIT if code is None else int(code)
        if code == STOPPED_EXIT:
            # The engine may report the stop a moment later; wait for it, so that the next
            # command starts the container again instead of meeting it half-stopped.
            self._note_if_stopped(settle=10.0 if killed.is_set() else 2.0)
        # 137 is also what an out-of-memory kill looks like: only a late one is a timeout.
        late = code == STOPPED_EXIT and time.monotonic() - started >= timeout
        return code, killed.is_set() or code == TIMEOUT_EXIT or late

    def _stream(self, wrapped: list[str], env: Mapping[str, str] | None,
                take: Callable[[int, bytes], None]) -> int | None:
        exec_id = self.api.exec_create(self.container.id, wrapped, workdir=self.spec.workdir,
                                       environment=dict(env or {}), user=self.spec.user)["Id"]
        for out, err in self.api.exec_start(exec_id, stream=True, demux=True):
            if out:
                take(1, out)
            if err:
                take(2, err)
        return self.api.exec_inspect(exec_id).get("ExitCode")

    def stopped(self) -> bool:
        """Whether the container is not running, asked of the engine (gone counts)."""
        try:
            self.container.reload()
            return self.container.status != "running"
        except docker.errors.NotFound:
            return True

    def _note_if_stopped(self, settle: float = 0.0) -> bool:
        """Count a stop from outside once (the engine may take a moment to report it)."""
        deadline = time.monotonic() + settle
        while not self.stopped():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        if not self._stop_counted:
            self.restarts += 1
            self._stop_counted = True
        return True

    def _ensure_running(self) -> None:
        if self._note_if_stopped():
            self._stop_counted = False
            try:
                self.container.start()
            except docker.errors.APIError as e:
                raise EnvironmentProblem(f"cannot restart container {self.name}: "
                                         f"{e.explanation or e}") from e

    def stop_for(self, reason: str) -> None:
        """Stop the worker over a limit (the disk watchdog calls this from its thread): kill
        the container, as the timeout watchdog does; the command running returns with the
        reason, and the next one starts the container again (collection)."""
        self.stopped_for = self.stopped_for or reason
        self._last_stop = reason
        self._stops += 1
        self._kill(threading.Event())

    def _kill(self, killed: threading.Event) -> None:
        killed.set()
        self._stop_counted = True     # our own stop, not one from outside (no retry for it)
        try:
            self.container.kill()
        except DOCKER_ERRORS:
            pass
