"""Test engines: real Docker engines besides the host's, for backends that share no disk.

``remote_engine`` (session-scoped) is a fresh dockerd reached over TCP on 127.0.0.1 (see
``dind.py``); ``remote_worker_image`` is runner-worker:latest loaded into it. Integration tests
get both through tests/integration/conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import docker
import pytest

from tests.engines.dind import RemoteEngine, running_engine


@pytest.fixture(scope="session")
def remote_engine(engine: docker.DockerClient) -> Iterator[RemoteEngine]:
    """A fresh engine for the session; removed, with its volume and cgroups, at the end."""
    with running_engine(engine) as remote:
        yield remote


@pytest.fixture(scope="session")
def remote_worker_image(remote_engine: RemoteEngine, worker_image: str) -> str:
    remote_engine.load(worker_image)
    return worker_image
