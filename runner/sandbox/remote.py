"""A Docker engine that shares no disk with the runner (``tcp://…``, ``ssh://…``, a Docker
context): a build machine reached over the network.

Every checkout lives in two named volumes of that engine (the workspace and the Gradle home),
labelled with the run, which live as long as the run needs them: past the runner itself, so
a resume finds them. The clone is made inside the sandbox from a git bundle of what the worker
may read (the run's object store: base's history and the integrated work), uploaded into the
workspace volume; results come back as the bundle collect already makes, through exec.

What needs the runner's disk is refused before anything starts, saying why: the gateway (a
unix socket of the runner's), a shared Gradle cache and carried files (a host path each).
"""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import docker
import docker.errors
from docker.types import Mount as DockerMount

from runner.errors import EnvironmentProblem
from runner.sandbox import GRADLE_HOME, STRICT_BASH, WORKSPACE, Checkout, SandboxSpec
from runner.sandbox.docker import (DOCKER_ERRORS, SCRATCH_PLACES, DockerSandbox,
                                   DockerSandboxes, _engine_must_answer)

CHECKOUT_LABEL = "runner.checkout"     # <place>/<name> of the checkout a volume holds
ROLE_LABEL = "runner.volume"           # workspace | gradle
HISTORY = ".runner-history.bundle"     # uploaded into the workspace, removed once cloned
# Inside the sandbox, as the worker: a repo at /workspace with the bundle's objects and the
# start commit checked out on its branch; the bundle's own refs do not stay.
CLONE = r"""
cd /workspace
git init --quiet --template= .
git fetch --quiet --no-tags "$1" '+refs/*:refs/runner-history/*'
git update-ref "refs/heads/$2" "$3"
git symbolic-ref HEAD "refs/heads/$2"
git reset --quiet --hard
git for-each-ref --format='delete %(refname)' refs/runner-history | git update-ref --stdin
rm -f "$1"
"""


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

    # --- where checkouts live -------------------------------------------------------------

    def _names(self, place: str, name: str) -> tuple[str, str]:
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{place}-{name}" if place else name)
        digest = hashlib.sha256(f"{place}/{name}".encode()).hexdigest()[:8]  # slugs may meet
        stem = f"runner-{self.run_id}-{slug}-{digest}"
        return f"{stem}-ws", f"{stem}-gradle"

    def _place(self, checkout: Checkout) -> Volumes:
        workspace, gradle = self._names(checkout.place, checkout.name)
        key = f"{checkout.place}/{checkout.name}"
        with _engine_must_answer():
            existing = {v.name for v in self.client.volumes.list(filters={"label": [
                f"runner.run={self.run_id}", f"{CHECKOUT_LABEL}={key}"]})}
            if checkout.fresh and existing:
                raise EnvironmentProblem(f"the engine already has a workspace for {key} "
                                         f"({', '.join(sorted(existing))})")
            if not checkout.fresh:
                if workspace not in existing:
                    raise EnvironmentProblem(f"the engine has no workspace for {key}")
                return Volumes(workspace, gradle, fresh=False)
            for volume, role in ((workspace, "workspace"), (gradle, "gradle")):
                self.client.volumes.create(volume, labels={
                    "runner.run": self.run_id, CHECKOUT_LABEL: key, ROLE_LABEL: role})
        return Volumes(workspace, gradle, fresh=True)

    def kept(self) -> list[tuple[str, str]]:
        found = []
        for volume in self._run_volumes("workspace"):
            place, _, name = volume.attrs["Labels"][CHECKOUT_LABEL].rpartition("/")
            if place.split("/")[0] not in SCRATCH_PLACES:
                found.append((place, name))
        return sorted(found)

    def discard(self, place: str, name: str | None = None) -> str | None:
        problems = []
        for volume in self._run_volumes():
            key = volume.attrs["Labels"].get(CHECKOUT_LABEL, "")
            if key == f"{place}/{name}" or (name is None and key.startswith(f"{place}/")):
                try:
                    volume.remove(force=True)
                except DOCKER_ERRORS as e:
                    problems.append(f"volume {volume.name} stays: {e}")
        return "; ".join(problems) or None

    def set_aside(self, place: str, name: str, label: str) -> str:
        # A volume cannot be renamed: it stays where it is, and is no longer salvaged.
        workspace, gradle = self._names(place, name)
        return (f"volumes {workspace} and {gradle} on the engine (docker -H … volume "
                "inspect shows them)")

    def _run_volumes(self, role: str | None = None) -> list:
        filters = [f"runner.run={self.run_id}"] + ([f"{ROLE_LABEL}={role}"] if role else [])
        try:
            return self.client.volumes.list(filters={"label": filters})
        except DOCKER_ERRORS:
            return []

    # --- the sandbox over them ------------------------------------------------------------

    def _refuse_host_paths(self, spec: SandboxSpec) -> None:
        if spec.gateway is not None:
            raise EnvironmentProblem("the gateway cannot reach a worker on a remote Docker "
                                     "engine yet (its socket is on this machine): run this "
                                     "phase with `--engine local`")
        if spec.shared_cache is not None:
            raise EnvironmentProblem("gradle.shared_cache is a directory on this machine; a "
                                     "remote engine cannot mount it: leave it out")
        if spec.files:
            raise EnvironmentProblem("the Claude Code binary is a file on this machine; a "
                                     "remote engine cannot mount it yet: run claude-code "
                                     "tickets with `--engine local`")

    def _mounts(self, spec: SandboxSpec, placement: object) -> list[DockerMount]:
        self._refuse_host_paths(spec)
        if not isinstance(placement, Volumes):
            return []
        return [DockerMount(target=WORKSPACE, source=placement.workspace, type="volume"),
                DockerMount(target=GRADLE_HOME, source=placement.gradle, type="volume")]

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
        with bundle.open("rb") as data:
            _upload(sandbox, WORKSPACE, HISTORY, data, uid, gid)
        if checkout.gradle_properties:
            _upload(sandbox, GRADLE_HOME, "gradle.properties",
                    io.BytesIO(checkout.gradle_properties.encode()), uid, gid)
        made = sandbox.exec([*STRICT_BASH, CLONE, "clone", f"{WORKSPACE}/{HISTORY}",
                             checkout.branch, checkout.start], timeout=600)
        if not made.ok:
            raise EnvironmentProblem(f"could not make the clone in {sandbox.name}: "
                                     f"{made.output.strip().splitlines()[-1:] or made}")

    def _own(self, spec: SandboxSpec, placement: Volumes, uid: int, gid: int) -> None:
        """New volumes belong to root; a worker that is not gets them, from a short-lived
        container that may chown and nothing else."""
        try:
            with _engine_must_answer():
                self.client.containers.run(
                    spec.image, ["chown", f"{uid}:{gid}", WORKSPACE, GRADLE_HOME], user="0:0",
                    remove=True, network_mode="none", cap_drop=["ALL"], cap_add=["CHOWN"],
                    security_opt=["no-new-privileges:true"], labels=dict(spec.labels),
                    mounts=self._mounts(spec, placement))
        except docker.errors.APIError as e:
            raise EnvironmentProblem(f"cannot give the workspace volumes to uid {uid}: "
                                     f"{e.explanation or e}") from e


def history_bundle(checkout: Checkout, folder: Path | None) -> Path:
    """What the worker may read, as a bundle: the run's store once it holds ``start``."""
    checkout.history.ensure(checkout.start)
    return checkout.history.bundle(folder or Path(tempfile.gettempdir()))


def _upload(sandbox: DockerSandbox, folder: str, name: str, data: BinaryIO,
            uid: int, gid: int) -> None:
    """One file into ``folder`` (a volume: a read-only root takes none), owned by the
    worker, streamed from ``data`` through a tar in a temporary file."""
    with tempfile.TemporaryFile() as archive:
        with tarfile.open(fileobj=archive, mode="w") as tar:
            info = tarfile.TarInfo(name)
            info.size = data.seek(0, io.SEEK_END)
            data.seek(0)
            info.uid, info.gid, info.mode = uid, gid, 0o600
            tar.addfile(info, data)
        archive.seek(0)
        with _engine_must_answer():
            if not sandbox.container.put_archive(folder, archive):
                raise EnvironmentProblem(f"could not upload {name} into {sandbox.name}")
