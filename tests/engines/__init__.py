"""Test engines: real engines besides the host's Docker, for backends that share no disk.

``remote_engine`` (session-scoped) is a fresh dockerd reached over TCP on 127.0.0.1 (see
``dind.py``); ``remote_worker_image`` is runner-worker:latest loaded into it
(``remote_jvm_image``: the JVM one). ``kube_cluster`` is a one-node Kubernetes built from
Debian's source package (``kube.py``), its API server on 127.0.0.1, with the worker image
imported. Integration tests get them through
tests/integration/conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import docker
import pytest

from tests.engines.dind import RemoteEngine, running_engine
from tests.engines.kube import TestCluster, running_cluster


@pytest.fixture(scope="session")
def remote_engine(engine: docker.DockerClient) -> Iterator[RemoteEngine]:
    """A fresh engine for the session; removed, with its volume and cgroups, at the end."""
    with running_engine(engine) as remote:
        yield remote


@pytest.fixture(scope="session")
def remote_worker_image(remote_engine: RemoteEngine, worker_image: str) -> str:
    remote_engine.load(worker_image)
    return worker_image


@pytest.fixture(scope="session")
def remote_jvm_image(remote_engine: RemoteEngine, jvm_image: str) -> str:
    remote_engine.load(jvm_image)
    return jvm_image


@pytest.fixture(scope="session")
def kube_cluster(engine: docker.DockerClient, worker_image: str) -> Iterator[TestCluster]:
    """The session's cluster, the worker image on its node; gone, cgroups and all, at the
    end (nothing of any run survives it)."""
    with running_cluster(engine) as cluster:
        cluster.load(worker_image)
        yield cluster
