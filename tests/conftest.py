"""Shared fixtures: the real Docker engine, the worker image, and the no-leftovers rule.

Everything the suite makes lives under one scratch root of its own (TMPDIR points there, for
the tests and every runner they start), so every container a run of this suite starts carries
a ``runner.run-dir`` label under that root. The leftover check and its cleanup look at those
containers only: another runner's runs on the same engine — another suite, a user's phase —
are none of this suite's business.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from runner.host.trees import discard_tree
from runner.records.events import EventCollector
from runner.sandbox.docker.client import docker_client
from runner.sandbox.images import ensure_image

WORKER_IMAGE = "runner-worker:latest"
JVM_IMAGE = "runner-worker-jvm:latest"

# Before pytest picks its basetemp: tempfile caches the directory it found first.
SUITE_ROOT = Path(tempfile.mkdtemp(prefix="runner-suite-"))
SUITE_ROOT.chmod(0o755)          # the non-root user tests reach their dirs under it
os.environ["TMPDIR"] = str(SUITE_ROOT)
tempfile.tempdir = None


def suite_containers(client: docker.DockerClient) -> list[docker.models.containers.Container]:
    """The containers of runs this suite started (their run dirs are under SUITE_ROOT)."""
    root = f"{SUITE_ROOT}/"
    # sparse: no inspect of each (one removed meanwhile would fail it); labels are in attrs.
    return [c for c in client.containers.list(all=True, sparse=True,
                                              filters={"label": "runner.run"})
            if (c.attrs.get("Labels") or {}).get("runner.run-dir", "").startswith(root)]


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
def no_runner_containers_left() -> Iterator[None]:
    """Every container runner starts carries runner.run; none of this suite's may outlive
    it."""
    yield
    try:
        client = docker.from_env()
        left = suite_containers(client)
    except docker.errors.DockerException:
        left = []
    names = []
    for container in left:
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            continue
        except docker.errors.APIError as e:
            if e.status_code == 409 and "in progress" in str(e.explanation):
                continue      # a removal runner started in the background: not left behind
            raise
        names.append(container.attrs["Names"][0].lstrip("/"))
    discard_tree(SUITE_ROOT)      # any depth: some tests' workers nest trees thousands deep
    assert not names, f"containers left behind by the suite: {names}"
