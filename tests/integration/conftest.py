"""Fixtures integration tests share beyond tests/conftest.py: the test engines."""

from tests.engines import (kube_cluster, remote_engine, remote_jvm_image,  # noqa: F401
                           remote_worker_image)
