"""Shared fixtures: the real Docker engine, the worker image, and the no-leftovers rule."""

from __future__ import annotations

import docker
import pytest

from runner.events import EventCollector
from runner.images import ensure_image
from runner.sandbox.docker import docker_client

WORKER_IMAGE = "runner-worker:latest"
JVM_IMAGE = "runner-worker-jvm:latest"


@pytest.fixture(scope="session")
def engine() -> docker.DockerClient:
    return docker_client()


@pytest.fixture(scope="session")
def worker_image(engine: docker.DockerClient) -> str:
    ensure_image(engine, WORKER_IMAGE, EventCollector())
    return WORKER_IMAGE


@pytest.fixture(scope="session")
def jvm_image(engine: docker.DockerClient) -> str:
    ensure_image(engine, JVM_IMAGE, EventCollector())
    return JVM_IMAGE


@pytest.fixture(scope="session", autouse=True)
def no_runner_containers_left():
    """Every container runner starts carries runner.run; none may outlive the suite."""
    try:
        client = docker.from_env()
        before = {c.id for c in client.containers.list(all=True, filters={"label": "runner.run"})}
    except docker.errors.DockerException:
        yield
        return
    yield
    left = [c for c in client.containers.list(all=True, filters={"label": "runner.run"})
            if c.id not in before]
    names = [c.name for c in left]
    for container in left:
        container.remove(force=True)
    assert not names, f"containers left behind by the suite: {names}"
