"""Files of this machine a Pod is given (the Claude Code binary, 0.4 GB), delivered in an
image instead of over an exec per Pod.

The image is the sandbox's own with one layer more that holds them (read-only, where the Pod
would have had its copy), built on this machine's Docker engine and named by what it holds:
the base image's id and each file's place and sha256, so a changed binary or base is another
image, and the bytes a node runs are the ones hashed here (an image's layers are checked by
their digests as a node takes them). A node gets it as it gets any image: from a registry it
pulls from, or loaded onto it. While a node that takes Pods lacks it, each Pod is sent its
own copy instead (podlife.send_files), as before.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import IO, TYPE_CHECKING

from runner.sandbox import Mount, SandboxSpec
from runner.sandbox.provisioning import file_sha256

if TYPE_CHECKING:
    from runner.sandbox.kube.cluster import Cluster

LABEL = "runner.carries"       # on the image: the files it holds, "<target>=<sha256>" each


# What each (cluster, image, files) gets: the image with them, when every node that takes
# Pods has it; else None (a copy per Pod). Asked once per process.
_carriers: dict[tuple[str, str, tuple[Mount, ...]], str | None] = {}
_carrying = threading.Lock()


def carry(cluster: Cluster, spec: SandboxSpec) -> SandboxSpec:
    """``spec`` with its files in its image, where the nodes have that image; else as it
    is (its Pod is sent them)."""
    if not spec.files:
        return spec
    from runner.sandbox.kube.nodes import on_every_node

    key = (cluster.where, spec.image, spec.files)
    with _carrying:       # one build at a time; the others wait for its answer
        if key not in _carriers:
            tag = carried_image(spec.image, spec.files)
            _carriers[key] = tag if tag is not None and on_every_node(cluster, tag) else None
    tag = _carriers[key]
    return spec if tag is None else replace(spec, image=tag, files=())


def carried_tag(image: str, base_id: str, files: Sequence[Mount]) -> str:
    """The name of ``image`` (whose id is ``base_id``) with ``files`` in it."""
    digest = hashlib.sha256(base_id.encode())
    for file in files:
        digest.update(f"\0{file.target}\0{file_sha256(file.source)}".encode())
    reference = image.partition("@")[0]
    name, colon, tag = reference.rpartition(":")
    repository = name if colon and "/" not in tag else reference     # host:port/x has none
    return f"{repository}:carries-{digest.hexdigest()[:20]}"


def carried_image(image: str, files: Sequence[Mount]) -> str | None:
    """``image`` with ``files`` in it, built on this machine's Docker engine when it lacks
    it; None when that engine cannot (it does not answer, or has no ``image``)."""
    from docker.errors import DockerException, ImageNotFound

    from runner.errors import RunnerError
    from runner.sandbox.docker.client import docker_client

    try:
        client = docker_client()
        base = client.images.get(image)
        tag = carried_tag(image, base.id, files)
        try:
            client.images.get(tag)
            return tag
        except ImageNotFound:
            pass
        with _context(base.id, files) as context:
            client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True,
                                pull=False, labels={LABEL: _carried_label(files)})
        return tag
    except (DockerException, RunnerError, OSError):
        return None


def _carried_label(files: Sequence[Mount]) -> str:
    return " ".join(f"{file.target}={file_sha256(file.source)}" for file in files)


@contextmanager
def _context(base_id: str, files: Sequence[Mount]) -> Iterator[IO[bytes]]:
    """The build's context in a temporary file: a Dockerfile and each file, read-only and
    runnable (COPY keeps a context file's mode)."""
    lines = [f"FROM {base_id}"]
    with tempfile.TemporaryFile() as archive:
        with tarfile.open(fileobj=archive, mode="w") as tar:
            for number, file in enumerate(files):
                info = tar.gettarinfo(str(file.source), arcname=f"file-{number}")
                info.mode, info.uid, info.gid, info.uname, info.gname = 0o555, 0, 0, "", ""
                with file.source.open("rb") as data:
                    tar.addfile(info, data)
                lines.append(f"COPY file-{number} {file.target}")
            dockerfile = ("\n".join(lines) + "\n").encode()
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(dockerfile)
            tar.addfile(info, io.BytesIO(dockerfile))
        archive.seek(0)
        yield archive
