"""The images runner builds from ``images/``, and the offline Debian base they start from.

No registry may be reachable: then the base is made with debootstrap from the machine's own
apt mirror (read from its apt sources, never hard-coded) and imported into Docker.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from runner.errors import ImageError
from runner.events import EventSink, Notice

if TYPE_CHECKING:   # docker-py is imported by the functions that talk to the engine
    import docker

IMAGES_DIR = Path(__file__).resolve().parent.parent / "images"
WORKER_DOCKERFILE = IMAGES_DIR / "worker" / "Dockerfile"
BUILDABLE = {"runner-worker:latest": "worker",      # image tag -> stage of WORKER_DOCKERFILE
             "runner-worker-jvm:latest": "worker-jvm"}
UPSTREAM_BASE = "debian:bookworm-slim"
OFFLINE_BASE = "runner-base:bookworm"
SUITE = "bookworm"
APT_SOURCES = Path("/etc/apt")


def image_present(client: docker.DockerClient, name: str) -> bool:
    import docker.errors

    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False


def ensure_image(client: docker.DockerClient, name: str, sink: EventSink) -> None:
    """Make sure ``name`` exists locally, building it when it is one of ours."""
    if image_present(client, name):
        return
    if name not in BUILDABLE:
        raise ImageError(name, "not present, and runner cannot build it; load it with "
                         "`docker load` or use runner-worker:latest")
    sink.emit(Notice(f"image {name} is missing: building it (stage {BUILDABLE[name]} of "
                     f"{WORKER_DOCKERFILE})"))
    build_image(client, name, sink)


def build_image(client: docker.DockerClient, name: str, sink: EventSink, *,
                offline_base: bool = False) -> None:
    if not WORKER_DOCKERFILE.is_file():
        raise ImageError(name, f"no Dockerfile at {WORKER_DOCKERFILE}; run runner from its "
                         "source checkout (pip install -e .)")
    import docker.errors

    base = base_image(client, sink, offline=offline_base)
    try:
        for chunk in client.api.build(path=str(WORKER_DOCKERFILE.parent), tag=name,
                                      target=BUILDABLE[name], buildargs={"BASE": base},
                                      rm=True, forcerm=True, pull=False, decode=True):
            if "error" in chunk:
                raise ImageError(name, f"build failed: {chunk['error'].strip()}")
            line = chunk.get("stream", "").strip()
            if line.startswith("Step "):
                sink.emit(Notice(f"{name}: {line}"))
    except docker.errors.APIError as e:
        raise ImageError(name, f"build failed: {e.explanation or e}") from e
    sink.emit(Notice(f"built image {name} (from {base})"))


def base_image(client: docker.DockerClient, sink: EventSink, *, offline: bool) -> str:
    """The Debian base to build from: upstream when present or pullable, else our own."""
    import docker.errors

    if not offline:
        if image_present(client, UPSTREAM_BASE):
            return UPSTREAM_BASE
        try:
            client.images.pull(UPSTREAM_BASE)
            return UPSTREAM_BASE
        except docker.errors.APIError:
            sink.emit(Notice(f"cannot pull {UPSTREAM_BASE} (no registry reachable): "
                             "making the base with debootstrap", level="warning"))
    if not image_present(client, OFFLINE_BASE):
        make_offline_base(client, sink)
    return OFFLINE_BASE


def make_offline_base(client: docker.DockerClient, sink: EventSink) -> None:
    if shutil.which("debootstrap") is None:
        raise ImageError(OFFLINE_BASE, "debootstrap is not installed; install it "
                         "(apt-get install debootstrap) or load debian:bookworm-slim")
    if os.geteuid() != 0:
        raise ImageError(OFFLINE_BASE, "making the base with debootstrap needs root; run "
                         "`sudo runner images build --offline-base` once")
    mirror = apt_mirror()
    sink.emit(Notice(f"debootstrap {SUITE} from {mirror} (about a minute)"))
    with tempfile.TemporaryDirectory(prefix="runner-base-") as tmp:
        root, tarball = Path(tmp) / "root", Path(tmp) / "root.tar"
        _run(["debootstrap", "--variant=minbase", SUITE, str(root), mirror], "debootstrap")
        _run(["tar", "-C", str(root), "-cf", str(tarball), "."], "tar")
        repo, tag = OFFLINE_BASE.split(":")
        client.api.import_image_from_file(str(tarball), repository=repo, tag=tag,
                                          changes=['CMD ["/bin/bash"]'])
    sink.emit(Notice(f"made base image {OFFLINE_BASE}"))


def _run(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise ImageError(OFFLINE_BASE, f"{what} failed: {' | '.join(tail)}")


def apt_mirror(apt_dir: Path = APT_SOURCES) -> str:
    """The Debian mirror this machine's apt uses (RUNNER_DEBIAN_MIRROR overrides it)."""
    if override := os.environ.get("RUNNER_DEBIAN_MIRROR"):
        return override
    for path in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            fields = dict(re.findall(r"(?m)^([A-Za-z-]+):\s*(.+)$", stanza))
            suites = fields.get("Suites", "").split()
            if "deb" in fields.get("Types", "").split() and any("-" not in s for s in suites):
                return fields["URIs"].split()[0]
    for path in [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            m = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
            if m and "-" not in m.group(2):
                return m.group(1)
    raise ImageError(OFFLINE_BASE, "no Debian mirror found in /etc/apt sources; set "
                     "RUNNER_DEBIAN_MIRROR to one")
