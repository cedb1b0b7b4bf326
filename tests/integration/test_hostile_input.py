"""What the grammar lets through and the engine still refuses is one line too (image
references, against the real engine), and the engine is never asked about a reference the
phase file's check refuses."""

from __future__ import annotations

import docker
import pytest

from runner.errors import EnvironmentProblem, ImageError
from runner.records.events import EventCollector
from runner.sandbox.docker.local import DockerSandboxes
from runner.sandbox.images import ensure_image, image_present

pytestmark = pytest.mark.docker

# Past the grammar's check on purpose: what an engine says when it is asked anyway.
REFUSED = ["Runner Worker", "x@md5:" + "a" * 32, "a" * 238]


@pytest.mark.parametrize("ref", REFUSED)
def test_an_engine_refusal_of_an_image_is_one_line(engine: docker.DockerClient,
                                                  ref: str) -> None:
    for ask in (lambda: image_present(engine, ref),
                lambda: ensure_image(engine, ref, EventCollector())):
        with pytest.raises(ImageError) as caught:
            ask()
        [line] = str(caught.value).splitlines()
        assert line.startswith(f"image {ref}: the Docker engine refuses it (")
        assert caught.value.exit_code == 3
    with pytest.raises(EnvironmentProblem) as caught:
        DockerSandboxes(engine).image_env(ref)
    assert len(str(caught.value).splitlines()) == 1


def test_a_dry_run_stops_at_an_image_the_engine_refuses(engine: docker.DockerClient) -> None:
    """Not "unknown": a run would stop there, so the plan does too (exit 3, one line)."""
    from runner.run.plan import _connected, _image_state

    local = _connected("local")
    assert _image_state("runner-worker:latest", "local", *local) == "present"
    with pytest.raises(ImageError, match="^image Runner Worker: the Docker engine refuses"):
        _image_state("Runner Worker", "local", *local)
