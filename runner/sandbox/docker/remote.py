"""A Docker engine that shares no disk with the runner (``tcp://…``, ``ssh://…``, a Docker
context): a build machine reached over the network.

Every checkout lives in two named volumes of that engine (the workspace and the Gradle home),
labelled with the run, which live as long as the run needs them: past the runner itself, so
a resume finds them. The clone is made inside the sandbox from a git bundle of what the worker
may read (the run's object store: base's history and the integrated work), uploaded into the
workspace volume; results come back as the bundle collect already makes, through exec. The
disk budget is watched by du inside the sandbox. A checkout whose work could not be collected
is set aside by a third volume marking its two, which then stay through a clean.

The gateway reaches a worker through a relay beside the container's keeper (relay/), its
connections carried over the engine's exec streams (docker/relay.py). Files of this machine
(the Claude Code binary) go to the engine once, into volumes named by their content
(docker/carried.py), mounted read-only. A shared Gradle cache, a directory of this machine's,
is refused before anything starts.
"""

from __future__ import annotations

import hashlib
import io
import re
import secrets
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import docker
import docker.errors
from docker.models.volumes import Volume
from docker.types import Mount as DockerMount

from runner.errors import EnvironmentProblem
from runner.sandbox import (GRADLE_HOME, RELAY_DIR, SCRATCH_PLACES, STRICT_BASH, WORKSPACE,
                            Checkout, SandboxSpec)
from runner.sandbox.cuts import CUT_TRIES
from runner.sandbox.diskwatch import (PASS_LIMIT, DiskUsage, DiskWatch, du_command,
                                      read_du_inside)
from runner.sandbox.docker.carried import CarriedFiles, put_file
from runner.sandbox.docker.client import DOCKER_ERRORS, engine_must_answer
from runner.sandbox.docker.local import DockerSandboxes
from runner.sandbox.docker.relay import ContainerRelay
from runner.sandbox.docker.sandbox import KEEPER, DockerSandbox
from runner.sandbox.relay.script import beside
from runner.sandbox.relay.tunnel import GatewayTunnel
from runner.sandbox.provisioning import CLONE, HISTORY, history_bundle

CHECKOUT_LABEL = "runner.checkout"     # <place>/<name> of the checkout a volume holds
ROLE_LABEL = "runner.volume"           # workspace | gradle | aside
STEM_LABEL = "runner.stem"             # what a checkout's two volumes' names start with
ASIDE = "aside"                        # the role of a volume marking a checkout set aside
ASIDE_LABEL = "runner.aside"           # on it: the stem of the checkout it marks


@dataclass(frozen=True)
class Volumes:
    workspace: str
    gradle: str
    fresh: bool


class RemoteDockerSandboxes(DockerSandboxes):
    """The SandboxProvider for a Docker engine on another host: volumes, not bind mounts."""

    shares_disk = False

    def __init__(self, client: docker.DockerClient, *, run_id: str, root: Path) -> None:
        super().__init__(client, root=root)     # root: the runner's side (bundles made there)
        self.run_id = run_id
        self._carried = CarriedFiles(client, run_id)

    # --- where checkouts live -------------------------------------------------------------

    def _stem(self, place: str, name: str) -> str:
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{place}-{name}" if place else name)[:60]
        # The digest: slugs may meet; the random part: a checkout set aside keeps its
        # volumes, and the ticket run again gets new ones.
        digest = hashlib.sha256(f"{place}/{name}".encode()).hexdigest()[:8]
        return f"runner-{self.run_id}-{slug}-{digest}-{secrets.token_hex(2)}"

    def _live(self, key: str | None = None) -> dict[str, list[Volume]]:
        """The run's volumes by checkout (one, with ``key``), but those set aside."""
        volumes = self._run_volumes()
        aside = {v.attrs["Labels"].get(ASIDE_LABEL) for v in volumes
                 if v.attrs["Labels"].get(ROLE_LABEL) == ASIDE}
        found: dict[str, list[Volume]] = {}
        for volume in volumes:
            labels = volume.attrs["Labels"]
            if labels.get(ROLE_LABEL) == ASIDE or labels.get(STEM_LABEL) in aside:
                continue
            if key is None or labels.get(CHECKOUT_LABEL) == key:
                found.setdefault(labels.get(CHECKOUT_LABEL, ""), []).append(volume)
        return found

    def _place(self, checkout: Checkout) -> Volumes:
        key = f"{checkout.place}/{checkout.name}"
        with engine_must_answer():
            existing = self._live(key).get(key, [])
            if checkout.fresh and existing:
                raise EnvironmentProblem(f"the engine already has a workspace for {key} "
                                         f"({', '.join(sorted(v.name for v in existing))})")
            if not checkout.fresh:
                stems = {v.attrs["Labels"][STEM_LABEL] for v in existing
                         if v.attrs["Labels"].get(ROLE_LABEL) == "workspace"}
                if not stems:
                    raise EnvironmentProblem(f"the engine has no workspace for {key}")
                stem = stems.pop()
                return Volumes(f"{stem}-ws", f"{stem}-gradle", fresh=False)
            stem = self._stem(checkout.place, checkout.name)
            for suffix, role in (("ws", "workspace"), ("gradle", "gradle")):
                self.client.volumes.create(f"{stem}-{suffix}", labels={
                    "runner.run": self.run_id, CHECKOUT_LABEL: key, ROLE_LABEL: role,
                    STEM_LABEL: stem})
        return Volumes(f"{stem}-ws", f"{stem}-gradle", fresh=True)

    def kept(self) -> list[tuple[str, str]]:
        found = []
        for key, volumes in self._live().items():
            place, _, name = key.rpartition("/")
            if place.split("/")[0] not in SCRATCH_PLACES and any(
                    v.attrs["Labels"].get(ROLE_LABEL) == "workspace" for v in volumes):
                found.append((place, name))
        return sorted(found)

    def _discard(self, place: str, name: str | None) -> str | None:
        return self._remove(volume for key, volumes in self._live().items()
                            if key == f"{place}/{name}"
                            or (name is None and key.startswith(f"{place}/"))
                            for volume in volumes)

    def _clear(self) -> str | None:
        return self._remove(v for volumes in self._live().values() for v in volumes)

    def _set_aside(self, place: str, name: str, label: str) -> str:
        """A volume cannot be renamed: the pair stays, marked by a third (empty) volume
        that says so; the checkout's place is free for the ticket to run again."""
        key = f"{place}/{name}"
        stems = {v.attrs["Labels"][STEM_LABEL] for v in self._live(key).get(key, [])}
        with engine_must_answer():
            for stem in sorted(stems):
                self.client.volumes.create(f"{stem}-aside", labels={
                    "runner.run": self.run_id, CHECKOUT_LABEL: key, ROLE_LABEL: ASIDE,
                    ASIDE_LABEL: stem, "runner.aside-why": label})
        return ", ".join(f"volumes {stem}-ws and {stem}-gradle" for stem in sorted(stems)
                         ) or f"nowhere: the engine has no volumes for {key}"

    def aside(self) -> list[str]:
        return [f"volumes {v.attrs['Labels'][ASIDE_LABEL]}-ws and -gradle"
                for v in self._run_volumes(ASIDE)]

    def _remove(self, volumes: Iterable[Volume]) -> str | None:
        problems = []
        for volume in volumes:
            try:
                volume.remove(force=True)
            except docker.errors.NotFound:
                continue
            except DOCKER_ERRORS as e:
                problems.append(f"volume {volume.name} stays: {e}")
        return "; ".join(problems) or None

    def _run_volumes(self, role: str | None = None) -> list[Volume]:
        filters = [f"runner.run={self.run_id}"] + ([f"{ROLE_LABEL}={role}"] if role else [])
        try:
            return self.client.volumes.list(filters={"label": filters})
        except DOCKER_ERRORS:
            return []

    # --- the sandbox over them ------------------------------------------------------------

    def _mounts(self, spec: SandboxSpec, placement: object) -> list[DockerMount]:
        if spec.shared_cache is not None:
            raise EnvironmentProblem("gradle.shared_cache is a directory on this machine; a "
                                     "remote engine cannot mount it: leave it out")
        mounts = [self._carried.mount(file, spec) for file in spec.files]
        if isinstance(placement, Volumes):
            mounts += [DockerMount(target=WORKSPACE, source=placement.workspace, type="volume"),
                       DockerMount(target=GRADLE_HOME, source=placement.gradle, type="volume")]
        return mounts

    def _supervisor_mount(self, spec: SandboxSpec) -> DockerMount | None:
        return None     # its program is on this machine: commands go through engine execs

    def _keeper(self, spec: SandboxSpec) -> tuple[list[str], dict[str, str]]:
        """With a gateway, its relay beside the keeper, as KEEPER, in a directory of its own
        that the worker cannot enter."""
        command, tmpfs = super()._keeper(replace(spec, gateway=None))
        if spec.gateway is None:
            return command, tmpfs
        uid, gid = KEEPER.split(":")
        return beside(command), {**tmpfs, RELAY_DIR: f"rw,noexec,nosuid,nodev,size=16m,"
                                                     f"mode=0700,uid={uid},gid={gid}"}

    @contextmanager
    def _carry_gateway(self, sandbox: DockerSandbox) -> Iterator[None]:
        if sandbox.spec.gateway is None:
            yield
            return
        relay = ContainerRelay(self.client.api, sandbox.container.id, sandbox.name, KEEPER)
        sandbox.tunnel = GatewayTunnel(relay, sandbox.spec.gateway).start()
        try:
            yield
        finally:
            sandbox.tunnel.close()
            sandbox.tunnel = None

    def _provision(self, sandbox: DockerSandbox, checkout: Checkout, placement: object) -> None:
        """Make the clone inside: the history bundle uploaded into the workspace volume, then
        cloned by git there, as the worker; the Gradle home gets its properties."""
        assert isinstance(placement, Volumes)
        if not placement.fresh:
            return
        uid, gid = (int(part) for part in sandbox.spec.user.split(":"))
        if uid != 0:
            self._own(sandbox.spec, placement, uid, gid)
        bundle = history_bundle(checkout, self.root / "bundles" if self.root else None)
        into = sandbox.container
        with bundle.open("rb") as data:
            put_file(into, WORKSPACE, HISTORY, data, uid=uid, gid=gid)
        for name, text in checkout.home_files:
            put_file(into, GRADLE_HOME, name, io.BytesIO(text.encode()), uid=uid, gid=gid)
        for name, source in checkout.home_copies:
            with source.open("rb") as data:
                put_file(into, GRADLE_HOME, name, data, uid=uid, gid=gid)
        made = sandbox.exec([*STRICT_BASH, CLONE, "clone", f"{WORKSPACE}/{HISTORY}",
                             checkout.branch, checkout.start], timeout=600, repeatable=True)
        if not made.ok:
            raise EnvironmentProblem(f"could not make the clone in {sandbox.name}: "
                                     f"{made.output.strip().splitlines()[-1:] or made}")

    def _watch_disk(self, sandbox: DockerSandbox) -> AbstractContextManager[object]:
        """The same watch, with du run inside the sandbox over its volumes."""
        if sandbox.spec.limits.disk is None or sandbox.spec.checkout is None:
            return nullcontext()
        return DiskWatch({WORKSPACE: WORKSPACE, GRADLE_HOME: GRADLE_HOME},
                         budget=sandbox.spec.limits.disk, stop=sandbox.stop_for,
                         measure=lambda roots, deadline: _du_inside(sandbox, roots, deadline))

    def _own(self, spec: SandboxSpec, placement: Volumes, uid: int, gid: int) -> None:
        """New volumes belong to root; a worker that is not gets them, from a short-lived
        container that may chown and nothing else."""
        try:
            with engine_must_answer():
                self.client.containers.run(
                    spec.image, ["chown", f"{uid}:{gid}", WORKSPACE, GRADLE_HOME], entrypoint=[],
                    user="0:0",
                    remove=True, network_mode="none", cap_drop=["ALL"], cap_add=["CHOWN"],
                    security_opt=["no-new-privileges:true"], labels=dict(spec.labels),
                    mounts=self._mounts(spec, placement))
        except docker.errors.APIError as e:
            raise EnvironmentProblem(f"cannot give the workspace volumes to uid {uid}: "
                                     f"{e.explanation or e}") from e


def _du_inside(sandbox: DockerSandbox, roots: list[str],
               deadline: float | None) -> DiskUsage | None:
    """du over ``roots`` in the sandbox, as the worker (root without capabilities could read
    no more), stopped at ``deadline``; None while the sandbox is stopped: never started again
    for a measurement, which the next command does."""
    left = PASS_LIMIT if deadline is None else deadline - time.monotonic()
    if left <= 0:
        return DiskUsage(0, complete=False)
    stdout = stderr = None
    for _ in range(CUT_TRIES):
        started = time.monotonic()
        try:
            exec_id = sandbox.api.exec_create(
                sandbox.container.id,
                ["timeout", "-s", "KILL", f"{left:.1f}s", *du_command(roots)],
                user=sandbox.spec.user)["Id"]
            stdout, stderr = sandbox.api.exec_start(exec_id, demux=True)
            ran = sandbox.api.exec_inspect(exec_id)
        except DOCKER_ERRORS:
            ran = {}
        code = ran.get("ExitCode")
        if not ran.get("Running"):     # else its stream broke on the way: measured again
            break
    if code is None or code in (125, 126, 127):
        # Stopped, or the engine away: the commands will say. Otherwise nothing could start
        # in it (every pid taken, say), which the watch forgives for a while.
        return None if sandbox.stopped() else DiskUsage(0, complete=False,
                                                        failed="du could not run in it")
    return read_du_inside(code, _text(stdout), _text(stderr), took=time.monotonic() - started,
                          allowed=left)


def _text(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", "surrogateescape")
