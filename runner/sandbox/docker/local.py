"""The run's sandboxes on this machine's Docker engine: a hardened container each
(sandbox.py) over a workspace on the runner's disk (workspace.py), made ahead while the
self-test runs, removed off the tickets' way."""

from __future__ import annotations

import os
import shlex
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import docker
import docker.errors
from docker.models.containers import Container
from docker.types import Mount as DockerMount

from runner.errors import EnvironmentProblem
from runner.host import discard_tree, explain_mount_error, in_container
from runner.sandbox import (GATEWAY_DIR, GATEWAY_PORT, GRADLE_HOME, GRADLE_RO_CACHE, RUN_OBJECTS,
                            SCRATCH_PLACES, SUPERVISOR_PROGRAM, WORKSPACE, Checkout, SandboxSpec)
from runner.sandbox.diskwatch import DiskWatch
from runner.sandbox.cuts import Say, still_answers
from runner.sandbox.docker.client import DOCKER_ERRORS, engine_must_answer
from runner.sandbox.docker.sandbox import KEEP_UP, KEEPER, SUPERVISED, DockerSandbox
from runner.sandbox.docker.workspace import Workspace, create_workspace, fill_workspace
from runner.sandbox.supervisor import (CAPABILITIES, PROGRAM, as_user, can_supervise,
                                       supervisor_command)


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


TMP_OPTIONS = "rw,exec,nosuid,nodev,size=1g"     # a sandbox's /tmp (the worker's HOME)
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
        self._unsupervised: set[str] = set()     # images a supervisor could not run in
        self._lock = threading.Lock()

    def _paths(self, place: str, name: str) -> tuple[Path, Path]:
        if self.root is None:
            raise EnvironmentProblem("this Docker provider has no run directory for "
                                     "workspaces (a bug: give DockerSandboxes the run's root)")
        base = self.root / place
        return base / "workspaces" / name, base / "gradle" / name

    # The places a backend without the runner's disk differs (sandbox/docker/remote.py): where a
    # checkout lives (_place), how it is mounted (_mounts), what the container's own process
    # runs (_keeper, _supervisor_mount), what is done in the started sandbox (_provision), how
    # its disk is watched (_watch_disk) and how the gateway reaches it (_carry_gateway).
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

    def _keeper(self, spec: SandboxSpec) -> tuple[list[str], dict[str, str]]:
        """The container's own command, without a supervisor, and its tmpfs mounts. With a
        gateway, the forwarder runs beside the keeper (as KEEPER like the rest: the worker
        cannot stop it, and a restart starts it again)."""
        tmpfs = {"/tmp": TMP_OPTIONS}
        forward = self._forwarder(spec)
        if forward is None:
            return KEEP_UP, tmpfs
        return ["/bin/sh", "-c", f"{forward} & exec {shlex.join(KEEP_UP)}"], tmpfs

    def _forwarder(self, spec: SandboxSpec) -> str | None:
        """The shell command that serves the gateway's socket on the worker's loopback."""
        if spec.gateway is None:
            return None
        return (f"socat TCP-LISTEN:{GATEWAY_PORT},bind=127.0.0.1,fork,reuseaddr "
                f"UNIX-CONNECT:{shlex.quote(f'{GATEWAY_DIR}/{spec.gateway.name}')}")

    def _supervisor_mount(self, spec: SandboxSpec) -> DockerMount | None:
        """The supervisor's program, read-only, where ``spec``'s sandbox can have one: this
        machine's engine sees it at its path here (not from runner's own container), the
        worker's uid is not the supervisor's, and its image ran it before."""
        if in_container() or not can_supervise(spec.user) or spec.image in self._unsupervised:
            return None
        return DockerMount(target=SUPERVISOR_PROGRAM, source=str(PROGRAM), type="bind",
                           read_only=True)

    def _carry_gateway(self, sandbox: DockerSandbox) -> AbstractContextManager[object]:
        return nullcontext()      # the socket is mounted in

    @contextmanager
    def open(self, spec: SandboxSpec, *, keep: bool = False,
             say: Say | None = None) -> Iterator[DockerSandbox]:
        sandbox = self._made_ahead(spec) or self._open_new(spec)
        sandbox.say.to(say)
        try:
            with self._watch_disk(sandbox), self._carry_gateway(sandbox):
                yield sandbox
        finally:
            if not keep:
                sandbox.detach()
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
        """Create and start ``spec``'s container over ``placement``, ready for commands:
        supervised where it can be; without, where its image cannot run the supervisor
        (said once, by the log of each ticket: `commands_via`)."""
        mounts = self._mounts(spec, placement)
        supervisor = self._supervisor_mount(spec)
        with engine_must_answer():
            container = self._create(spec, mounts + ([supervisor] if supervisor else []),
                                     supervised=supervisor is not None)
        try:
            sandbox = DockerSandbox(container, self.client, spec,
                                    placement if isinstance(placement, Workspace) else None)
            try:
                with engine_must_answer():
                    answered = sandbox.start()
            except docker.errors.APIError as e:
                raise EnvironmentProblem(f"cannot start container {spec.name}: "
                                         f"{e.explanation or e}") from e
            if not answered:      # the image lacks python3 or setpriv
                self._remove_later(container)
                with self._lock:
                    self._unsupervised.add(spec.image)
                return self._start(spec, placement)
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
        if container.status == "running":     # its stdin was another process's
            sandbox.detach()
        with engine_must_answer():
            sandbox._ensure_running()
        with self._carry_gateway(sandbox):
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
        return still_answers(self.client.ping)

    def _run_containers(self, run_id: str, *, all: bool) -> list[Container]:
        try:   # sparse: no inspect of each, which fails for one removed meanwhile
            return self.client.containers.list(all=all, sparse=True,
                                               filters={"label": f"runner.run={run_id}"})
        except DOCKER_ERRORS:
            return []

    def _create(self, spec: SandboxSpec, mounts: list[DockerMount], *,
                supervised: bool) -> Container:
        labels, command, tmpfs = dict(spec.labels), *self._keeper(spec)
        # The container's own process is KEEPER's, or the supervisor's; every command runs
        # as the worker.
        own: dict[str, object] = dict(user=KEEPER, init=True, cap_drop=["ALL"])
        if supervised:
            # Root with the supervisor's capabilities alone, which its command hands to the
            # supervisor's uid and drops for each command; it reaps as pid 1; its channel
            # is stdin and stdout (logged nowhere).
            forward = self._forwarder(spec)
            beside = f"exec {shlex.join(as_user(KEEPER))} {forward}" if forward else None
            command = supervisor_command(spec.user, beside)
            labels[SUPERVISED] = "1"
            own = dict(user="0:0", init=False, cap_drop=["ALL"], cap_add=list(CAPABILITIES),
                       stdin_open=True, log_config={"Type": "none", "Config": {}})
        for attempt in (1, 2):
            try:
                # create (not run): run would silently try to pull a missing image.
                return self.client.containers.create(
                    # entrypoint []: an image's ENTRYPOINT would wrap the keeper (a project's
                    # image often has one) and run it as its arguments.
                    spec.image, command=command, entrypoint=[], name=spec.name,
                    labels=labels, environment=dict(spec.env), **own,
                    working_dir=spec.workdir, mounts=mounts, network_mode=spec.network,
                    read_only=True, tmpfs=tmpfs, security_opt=["no-new-privileges:true"],
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


