"""Fixtures integration tests share beyond tests/conftest.py: the remote test engine."""

from tests.engines import remote_engine, remote_worker_image  # noqa: F401  (pytest fixtures)
