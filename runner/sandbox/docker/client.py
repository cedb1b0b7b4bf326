"""This machine's or another's Docker engine, connected through docker-py; what a failure
to reach it says."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import docker
import docker.errors
import requests

from runner.errors import EngineUnavailable


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
