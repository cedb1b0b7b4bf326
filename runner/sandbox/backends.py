"""Each kind of engine's Backend, connected: the one place that names them (a new engine is
its own subpackage and a line here)."""

from __future__ import annotations

from runner.sandbox import Backend
from runner.sandbox.engines import KUBERNETES, Engine


def connect(engine: Engine) -> Backend:
    """The backend of ``engine``, answering, or EngineUnavailable saying what to do."""
    if engine.kind == KUBERNETES:
        from runner.sandbox.kube import KubeBackend

        return KubeBackend.connect(engine)
    from runner.sandbox.docker.engine import DockerBackend

    return DockerBackend.connect(engine)
