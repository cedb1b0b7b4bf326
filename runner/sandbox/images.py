"""The images runner builds from ``images/``, and the offline Debian base they start from.

No registry may be reachable: then the base is made with debootstrap from the machine's own
apt mirror (read from its apt sources, never hard-coded) and imported into Docker.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from runner.errors import ImageError
from runner.records import EventSink, ImageOutput, Notice
from runner.text import last_line, printable

if TYPE_CHECKING:   # docker-py is imported by the functions that talk to the engine
    import docker

IMAGES_DIR = Path(__file__).resolve().parents[2] / "images"
WORKER_DOCKERFILE = IMAGES_DIR / "worker" / "Dockerfile"
BUILDABLE = {"runner-worker:latest": "worker",      # image tag -> stage of WORKER_DOCKERFILE
             "runner-worker-jvm:latest": "worker-jvm"}
STAGE_PARENT = {"worker-jvm": "runner-worker:latest"}   # `FROM worker AS worker-jvm`
UPSTREAM_BASE = "debian:bookworm-slim"
OFFLINE_BASE = "runner-base:bookworm"
SUITE = "bookworm"
RECIPE_LABEL = "runner.recipe"    # the sha256 of the Dockerfile an image was built from
APT_SOURCES = Path("/etc/apt")


def image_present(client: docker.DockerClient, name: str) -> bool:
    import docker.errors

    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.APIError as e:   # a reference this engine refuses (its own rules)
        why = printable(last_line(str(e.explanation or e)))
        raise ImageError(name, f"the Docker engine refuses it ({why}); give an image "
                         "reference it takes") from e


def ensure_image(client: docker.DockerClient, name: str, sink: EventSink) -> None:
    """Make sure ``name`` exists locally, building it when it is one of ours."""
    if image_present(client, name):
        return
    if name not in BUILDABLE:
        raise ImageError(name, "not present, and runner cannot build it; load it with "
                         "`docker load` or use runner-worker:latest")
    build_image(client, name, sink, why="it is missing")


def build_images(sink: EventSink, *, force: bool, offline_base: bool) -> Iterator[str]:
    """Build runner's images on this machine's engine, a parent before those built on it,
    each only when missing or out of date (or ``force``); a line for each one not built."""
    from runner.sandbox.docker.client import docker_client

    client = docker_client()
    for name in BUILDABLE:
        why = build_reason(client, name, force=force, offline_base=offline_base)
        if why is None:
            yield f"{name}: present and up to date (--force rebuilds it)"
            continue
        build_image(client, name, sink, why=why, offline_base=offline_base)


def build_reason(client: docker.DockerClient, name: str, *, force: bool,
                 offline_base: bool = False) -> str | None:
    """Why `runner images build` builds ``name``; None when it is there and up to date."""
    if not image_present(client, name):
        return "it is missing"
    if force:
        return "--force asks for it"
    parent = STAGE_PARENT.get(BUILDABLE[name]) or _base_choice(client, offline_base)
    if image_present(client, parent) and not descends_from(client, name, parent):
        return f"its parent {parent} changed since it was built"
    labels = client.images.get(name).labels or {}
    if labels.get(RECIPE_LABEL) != recipe():
        return f"{WORKER_DOCKERFILE} changed since it was built"
    return None


def recipe() -> str:
    return hashlib.sha256(WORKER_DOCKERFILE.read_bytes()).hexdigest()


def descends_from(client: docker.DockerClient, image: str, parent: str) -> bool:
    """Whether ``image`` was built on ``parent`` as it is now: its layers start with
    parent's (a rebuilt parent has other layers)."""
    mine, theirs = (client.images.get(n).attrs["RootFS"].get("Layers") or []
                    for n in (image, parent))
    return mine[:len(theirs)] == theirs


def build_image(client: docker.DockerClient, name: str, sink: EventSink, *, why: str,
                offline_base: bool = False) -> None:
    """Build one of ours, saying first which and ``why``; its output streams to ``sink``."""
    if not WORKER_DOCKERFILE.is_file():
        raise ImageError(name, f"no Dockerfile at {WORKER_DOCKERFILE}; run runner from its "
                         "source checkout (pip install -e .)")
    sink.emit(Notice(f"building image {name} (stage {BUILDABLE[name]} of {WORKER_DOCKERFILE}) "
                     f"because {why}"))
    base = base_image(client, sink, offline=offline_base)
    stream_build(client, name, context=WORKER_DOCKERFILE.parent, target=BUILDABLE[name],
                 buildargs={"BASE": base}, sink=sink, labels={RECIPE_LABEL: recipe()})
    sink.emit(Notice(f"built image {name} (from {base})"))


# docker build's own bookkeeping between steps: noise in a log.
_BUILD_NOISE = re.compile(r"^\s*(---> |Removing intermediate container |Successfully built )")


def stream_build(client: docker.DockerClient, name: str, *, context: Path, target: str | None,
                 buildargs: dict[str, str], sink: EventSink,
                 labels: dict[str, str] | None = None, dockerfile: str | None = None,
                 archive: IO[bytes] | None = None) -> None:
    """`docker build` of ``context`` tagged ``name`` (or of ``archive``, a context made
    already, whose ``dockerfile`` names the Dockerfile in it): every line it prints (steps,
    RUN output) goes to ``sink`` as ImageOutput as it comes, control characters removed."""
    import docker.errors

    lines = _Lines(skip=_BUILD_NOISE)
    given = (dict(fileobj=archive, custom_context=True) if archive is not None
             else dict(path=str(context)))
    try:
        for chunk in client.api.build(**given, tag=name, target=target, dockerfile=dockerfile,
                                      buildargs=buildargs, rm=True, forcerm=True, pull=False,
                                      labels=labels, decode=True):
            text = chunk.get("stream", "")
            if chunk.get("status") and not chunk.get("progressDetail"):
                # Pulling a FROM image: each layer's steps, not each progress tick.
                text = " ".join(filter(None, [chunk.get("id"), chunk["status"]])) + "\n"
            for line in lines.feed(text):
                sink.emit(ImageOutput(name, line))
            if "error" in chunk:
                for line in lines.flush():
                    sink.emit(ImageOutput(name, line))
                raise ImageError(name, f"build failed: {printable(last_line(chunk['error']))}")
    except docker.errors.APIError as e:
        raise ImageError(name, f"build failed: {e.explanation or e}") from e
    for line in lines.flush():
        sink.emit(ImageOutput(name, line))


class _Lines:
    """Whole lines out of output that arrives in pieces; a carriage return (progress redrawn
    in place) ends a line too. Lines come out printable, blank and ``skip`` ones dropped."""

    def __init__(self, skip: re.Pattern[str] | None = None) -> None:
        self.skip, self._rest = skip, ""

    def feed(self, text: str) -> list[str]:
        *done, self._rest = re.split(r"\r\n|\r|\n", self._rest + text)
        return [line for part in done if (line := self._shown(part))]

    def flush(self) -> list[str]:
        rest, self._rest = self._rest, ""
        return [line] if (line := self._shown(rest)) else []

    def _shown(self, part: str) -> str:
        line = printable(part).rstrip()
        return "" if not line.strip() or (self.skip and self.skip.match(line)) else line


def _base_choice(client: docker.DockerClient, offline: bool) -> str:
    """The base a build would start from now, without pulling or making one."""
    return UPSTREAM_BASE if not offline and image_present(client, UPSTREAM_BASE) else OFFLINE_BASE


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
    sink.emit(Notice(f"making base image {OFFLINE_BASE} because it is missing: debootstrap "
                     f"{SUITE} from {mirror} (about a minute)"))
    with tempfile.TemporaryDirectory(prefix="runner-base-") as tmp:
        root, tarball = Path(tmp) / "root", Path(tmp) / "root.tar"
        run_streamed(["debootstrap", "--variant=minbase", SUITE, str(root), mirror],
                     image=OFFLINE_BASE, sink=sink)
        run_streamed(["tar", "-C", str(root), "-cf", str(tarball), "."],
                     image=OFFLINE_BASE, sink=sink)
        repo, tag = OFFLINE_BASE.split(":")
        client.api.import_image_from_file(str(tarball), repository=repo, tag=tag,
                                          changes=['CMD ["/bin/bash"]'])
    sink.emit(Notice(f"made base image {OFFLINE_BASE}"))


def run_streamed(argv: list[str], *, image: str, sink: EventSink) -> None:
    """Run one step of making ``image`` on the host, each line it prints (stdout and stderr)
    sent to ``sink`` as it comes; a failure is an ImageError with its last lines."""
    tail: deque[str] = deque(maxlen=3)
    lines = _Lines()

    def show(found: list[str]) -> None:
        for line in found:
            tail.append(line)
            sink.emit(ImageOutput(image, line))

    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace")
    except OSError as e:
        raise ImageError(image, f"{argv[0]} could not start: {e}") from e
    with proc:
        assert proc.stdout is not None
        try:
            for piece in proc.stdout:     # a line at a time, as it is written
                show(lines.feed(piece))
            show(lines.flush())
        except BaseException:    # interrupted: do not leave it running behind us
            proc.kill()
            raise
    if proc.returncode != 0:
        raise ImageError(image, f"{argv[0]} failed (exit {proc.returncode}): "
                         + (" | ".join(tail) or "no output"))


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


def copy_image(source: docker.DockerClient, dest: docker.DockerClient, name: str,
               sink: EventSink, *, engine: str) -> None:
    """``name`` into ``dest``, another machine's engine that cannot build it (no runner
    source there) or pull it (perhaps no registry): from ``source``, this machine's, built
    here first when it is one of ours; `docker save | docker load`, streamed. Once per
    engine: an image it already has (the same id) is not sent again."""
    import time

    import docker.errors

    ensure_image(source, name, sink)
    wanted = source.images.get(name)
    try:
        if dest.images.get(name).id == wanted.id:
            return
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.APIError as e:
        raise ImageError(name, f"{engine} refuses it ({e.explanation or e})") from e
    size = (wanted.attrs.get("Size") or 0) / 2**20
    sink.emit(Notice(f"copying image {name} ({size:,.0f} MiB) to {engine}"))
    started = time.monotonic()
    try:
        # named: without it the archive carries no tag, and the engine loads it untagged.
        dest.images.load(wanted.save(chunk_size=1 << 20, named=name))
    except docker.errors.APIError as e:
        raise ImageError(name, f"loading it into {engine} failed: {e.explanation or e}") from e
    sink.emit(Notice(f"copied image {name} to {engine} in {time.monotonic() - started:.1f}s"))
