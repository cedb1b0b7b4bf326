"""Image builds say what they do as they do it: every line a build prints reaches the sink as
it comes (printable, docker's bookkeeping dropped), and a rebuilt parent is noticed.

Tiny Dockerfiles of the test's own, built on the worker image under throwaway tags, all
removed afterwards: the suite never rebuilds runner's own images."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from runner.errors import ImageError
from runner.records.events import EventCollector, ImageOutput
from runner.sandbox.images import descends_from, stream_build

# A label unique to the test run keeps the builder's cache (of an earlier run) out of it.
DOCKERFILE = """\
ARG BASE
ARG WORD=hello
FROM ${BASE} AS one
LABEL runner.test=%s
ARG WORD
RUN echo "$WORD from the build" | tee /word; printf '\\033[31mred\\033[0m\\n'; printf 'a\\rb\\n'
FROM one AS two
RUN echo two
"""
# Its own file, as short as this: the classic builder builds every stage before the target,
# and keeps the images of a failed build's earlier steps.
BROKEN = """\
ARG BASE
FROM ${BASE}
RUN echo about to fail; exit 3
"""


@pytest.fixture
def tags(engine: docker.DockerClient) -> Iterator[list[str]]:
    """Throwaway tags; every image they named is removed at the end (newest first)."""
    made: list[str] = []
    ids: list[str] = []

    def remember() -> None:
        for tag in made:
            try:
                ids.append(engine.images.get(tag).id)
            except docker.errors.ImageNotFound:
                pass

    yield made
    remember()
    for image in [*made, *reversed(ids)]:
        try:
            engine.images.remove(image, force=True)
        except docker.errors.ImageNotFound:
            pass


def _lines(events: EventCollector, image: str) -> list[str]:
    return [e.line for e in events.of_type(ImageOutput) if e.image == image]


def test_a_build_streams_its_output_and_a_rebuilt_parent_shows(
        tmp_path: Path, engine: docker.DockerClient, worker_image: str,
        tags: list[str]) -> None:
    (tmp_path / "Dockerfile").write_text(DOCKERFILE % secrets.token_hex(8))
    name = f"runner-test-build-{secrets.token_hex(3)}"
    one, two = f"{name}:one", f"{name}:two"
    tags += [one, two]
    events = EventCollector()
    for tag, target in ((one, "one"), (two, "two")):
        stream_build(engine, tag, context=tmp_path, target=target,
                     buildargs={"BASE": worker_image}, sink=events)
    shown = _lines(events, one)
    assert "hello from the build" in shown and "red" in shown and "b" in shown
    assert any(line.startswith("Step ") for line in shown)
    assert not any("\x1b" in line or "\r" in line or "--->" in line for line in shown)
    assert descends_from(engine, two, one)
    old = engine.images.get(one).id

    # The parent rebuilt with other content: its child no longer descends from it.
    stream_build(engine, one, context=tmp_path, target="one",
                 buildargs={"BASE": worker_image, "WORD": "changed"}, sink=events)
    tags.append(old)
    assert "changed from the build" in _lines(events, one)
    assert not descends_from(engine, two, one)


def test_a_failing_build_streams_up_to_the_failure_and_names_it(
        tmp_path: Path, engine: docker.DockerClient, worker_image: str,
        tags: list[str]) -> None:
    (tmp_path / "Dockerfile").write_text(BROKEN)
    broken = f"runner-test-build-{secrets.token_hex(3)}:broken"
    tags.append(broken)
    events = EventCollector()
    with pytest.raises(ImageError) as caught:
        stream_build(engine, broken, context=tmp_path, target=None,
                     buildargs={"BASE": worker_image}, sink=events)
    message = str(caught.value)
    assert message.startswith(f"image {broken}: build failed: ") and "\n" not in message
    assert "non-zero code: 3" in message
    assert "about to fail" in _lines(events, broken)
