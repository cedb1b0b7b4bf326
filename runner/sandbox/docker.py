"""The Docker sandbox: one hardened container per worker, commands run through exec.

docker-py's exec has no timeout and closing its stream does not stop the process, so every
command runs under ``timeout -k`` inside the container, and a host-side watchdog kills the
container if even that does not end it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import docker
import docker.errors
from docker.models.containers import Container
from docker.types import Mount as DockerMount

from runner.errors import DockerUnavailable, EnvironmentProblem
from runner.sandbox import (TIMEOUT_EXIT, BytesResult, ExecResult, OutputHandler, OutputTail,
                            SandboxSpec)

KILL_GRACE = 10        # seconds between `timeout`'s TERM and its KILL
WATCHDOG_SLACK = 30    # seconds after that before the host kills the whole container


def docker_client() -> docker.DockerClient:
    """A client that answers, or DockerUnavailable saying what to do."""
    try:
        client = docker.from_env(timeout=120, max_pool_size=64)  # one stream per worker
        client.ping()
        return client
    except docker.errors.DockerException as e:
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise DockerUnavailable(
            f"Docker does not answer at {where} ({e.__class__.__name__}); start the Docker "
            "engine or set DOCKER_HOST, and check you may use its socket") from e


class DockerSandboxes:
    """Opens DockerSandbox containers from SandboxSpecs (the SandboxProvider for Docker)."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client

    @contextmanager
    def open(self, spec: SandboxSpec, *, keep: bool = False) -> Iterator[DockerSandbox]:
        container = self._create(spec)
        try:
            container.start()
            yield DockerSandbox(container, self.client, spec)
        finally:
            if not keep:
                try:
                    container.remove(force=True)
                except docker.errors.NotFound:
                    pass

    def remove_run(self, run_id: str) -> int:
        containers = self.client.containers.list(
            all=True, filters={"label": f"runner.run={run_id}"})
        for container in containers:
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass
        return len(containers)

    def _create(self, spec: SandboxSpec) -> Container:
        mounts = [DockerMount(target=m.target, source=str(m.source), type="bind",
                              read_only=m.read_only) for m in spec.mounts]
        try:
            # create (not run): run would silently try to pull a missing image.
            return self.client.containers.create(
                spec.image, command=["sleep", "infinity"], name=spec.name,
                labels=dict(spec.labels), environment=dict(spec.env), user=spec.user,
                working_dir=spec.workdir, mounts=mounts, network_mode=spec.network,
                init=True, read_only=True,
                tmpfs={"/tmp": "rw,exec,nosuid,nodev,size=1g"},
                cap_drop=["ALL"], security_opt=["no-new-privileges:true"],
                pids_limit=spec.limits.pids, mem_limit=spec.limits.memory,
                memswap_limit=spec.limits.memory, nano_cpus=int(spec.limits.cpus * 1e9),
            )
        except docker.errors.ImageNotFound as e:
            raise EnvironmentProblem(f"image {spec.image} is missing; run `runner images "
                                     "build`") from e
        except docker.errors.APIError as e:
            raise EnvironmentProblem(f"cannot create container {spec.name}: "
                                     f"{e.explanation or e}") from e


class DockerSandbox:
    def __init__(self, container: Container, client: docker.DockerClient,
                 spec: SandboxSpec) -> None:
        self.container, self.api, self.spec = container, client.api, spec
        self.name = spec.name
        self.killed = False

    def exec(self, argv: Sequence[str], *, timeout: float,
             on_output: OutputHandler | None = None,
             env: Mapping[str, str] | None = None) -> ExecResult:
        tail = OutputTail(on_output)
        with self._watchdog(timeout):
            exec_id = self._exec_create(argv, timeout, env)
            try:
                for out, err in self.api.exec_start(exec_id, stream=True, demux=True):
                    for stream, chunk in ((1, out), (2, err)):
                        if chunk:
                            tail.feed(chunk.decode("utf-8", "replace"), stream)
            except docker.errors.APIError:
                if not self.killed:
                    raise
            code = self._exit_code(exec_id)
        return ExecResult(exit_code=code, output=tail.close(),
                          timed_out=self.killed or code in (TIMEOUT_EXIT, 128 + 9))

    def exec_bytes(self, argv: Sequence[str], *, timeout: float) -> BytesResult:
        with self._watchdog(timeout):
            exec_id = self._exec_create(argv, timeout, None)
            out, err = self.api.exec_start(exec_id, demux=True)
            code = self._exit_code(exec_id)
        return BytesResult(exit_code=code, stdout=out or b"",
                           stderr=(err or b"").decode("utf-8", "replace"),
                           timed_out=self.killed or code == TIMEOUT_EXIT)

    def _exec_create(self, argv: Sequence[str], timeout: float,
                     env: Mapping[str, str] | None) -> str:
        wrapped = ["timeout", "-k", str(KILL_GRACE), f"{max(1, int(timeout))}s", *argv]
        return self.api.exec_create(self.container.id, wrapped, workdir=self.spec.workdir,
                                    environment=dict(env or {}))["Id"]

    def _exit_code(self, exec_id: str) -> int:
        code = self.api.exec_inspect(exec_id).get("ExitCode")
        return 128 + 9 if code is None else int(code)

    @contextmanager
    def _watchdog(self, timeout: float) -> Iterator[None]:
        timer = threading.Timer(timeout + KILL_GRACE + WATCHDOG_SLACK, self._kill)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def _kill(self) -> None:
        self.killed = True
        try:
            self.container.kill()
        except docker.errors.APIError:
            pass
