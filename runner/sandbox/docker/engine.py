"""A Docker engine as a Backend: this machine's (DockerSandboxes: bind mounts over the
runner's disk) or another machine's (RemoteDockerSandboxes: volumes, images sent from here).
"""

from __future__ import annotations

from pathlib import Path

import docker
import docker.errors

from runner.records import EventSink
from runner.sandbox import Capacity, SandboxProvider, SandboxRecord
from runner.sandbox.docker.client import DOCKER_ERRORS, docker_client, engine_must_answer
from runner.sandbox.docker.local import DockerSandboxes
from runner.sandbox.engines import Engine
from runner.sandbox.images import copy_image, ensure_image, image_present
from runner.sandbox.recipes import Recipe, project_image


class DockerBackend:
    def __init__(self, client: docker.DockerClient, engine: Engine) -> None:
        self.client, self.engine = client, engine
        self.shares_disk = engine.local

    @classmethod
    def connect(cls, engine: Engine) -> DockerBackend:
        return cls(docker_client(engine.url), engine)

    def version(self) -> str:
        with engine_must_answer():
            return str(self.client.version().get("Version", "?"))

    def provider(self, *, run_id: str, root: Path) -> SandboxProvider:
        if self.engine.local:
            return DockerSandboxes(self.client, root=root)
        from runner.sandbox.docker.remote import RemoteDockerSandboxes

        return RemoteDockerSandboxes(self.client, run_id=run_id, root=root)

    def has_image(self, image: str) -> bool:
        with engine_must_answer():
            return image_present(self.client, image)

    def ensure_image(self, image: str, sink: EventSink) -> None:
        with engine_must_answer():
            if self.engine.local:
                ensure_image(self.client, image, sink)
            else:        # built (or found) on this machine, then sent
                copy_image(docker_client(), self.client, image, sink, engine=self.engine.name)

    def build_image(self, recipe: Recipe, sink: EventSink) -> str:
        """Built on this very engine (another machine's too: docker-py sends it the context)."""
        with engine_must_answer():
            return project_image(self.client, recipe, sink)

    def sandboxes(self) -> list[SandboxRecord]:
        # sparse: no inspect of each (one removed meanwhile would fail it); labels are there.
        with engine_must_answer():
            found = self.client.containers.list(all=True, sparse=True,
                                                filters={"label": "runner.run"})
        records = []
        for container in found:
            labels = container.attrs.get("Labels") or {}
            names = container.attrs.get("Names") or [container.id]
            records.append(SandboxRecord(name=names[0].lstrip("/"),
                                         run_id=labels.get("runner.run", ""), labels=labels))
        return records

    def capacity(self) -> Capacity | None:
        try:
            info = self.client.info()
        except DOCKER_ERRORS:
            return None           # not told: nothing is said of it (the run goes on as asked)
        cpus, memory = info.get("NCPU"), info.get("MemTotal")
        if not isinstance(cpus, int) or not isinstance(memory, int):
            return None
        return Capacity(machines=((cpus, memory),))

    def runtimes(self) -> frozenset[str] | None:
        """The engine's OCI runtimes (``docker info``: runc, and any it is set up with)."""
        try:
            found = self.client.info().get("Runtimes")
        except DOCKER_ERRORS:
            return None
        return frozenset(found) if isinstance(found, dict) and found else None

    def remove_sandbox(self, name: str) -> bool:
        try:
            with engine_must_answer():
                self.client.containers.get(name).remove(force=True)
            return True
        except docker.errors.NotFound:
            return False
