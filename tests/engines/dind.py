"""A second, real Docker engine for tests: dockerd in a container of the host's engine.

It is reached over TCP on 127.0.0.1 only and shares no disk with the runner: its
/var/lib/docker is a named volume of the host's engine, so no host path exists in its view.
What it takes on this kind of machine (DESIGN.md, "More checked facts"): ``--privileged`` is
refused (the machine lacks CAP_SYS_RESOURCE), so the engine gets every other capability, no
seccomp/AppArmor confinement, writable /proc/sys, /dev/fuse, every device in its device cgroup
and the host's cgroup tree. Never give the inner dockerd ``--bridge=none``: it deletes the
host's docker0.

Two containers make one engine: a *holder* that owns the network namespace and the published
port, and the *engine* (dockerd) that joins it. Docker picks a new host port each time a
container with a published port starts again, so without the holder an engine killed and
brought back would answer elsewhere; with it, ``url`` stays the same across ``kill()`` and
``start()``, like a build machine that reboots.

Measured here (2 loaded cores): the image build ~24 s once per machine; an engine up in
~2 s; `runner-worker:latest` (426 MB) loaded in 13-18 s; kill and start again ~2.5 s.
When the engine dies, an exec's output stream just ends; the next call raises requests'
ConnectionError (not a docker.errors.DockerException).
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import requests
from docker.models.containers import Container
from docker.utils.socket import frames_iter
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from runner.records.events import EventCollector, EventSink
from runner.sandbox.images import base_image, image_present, stream_build

DOCKERFILE = Path(__file__).resolve().parent / "dockerd" / "Dockerfile"
IMAGE_REPO = "runner-test-dockerd"
LABEL = "runner.test-engine"         # value: the engine's id; tests remove exactly theirs
PORT = "2375/tcp"
# Tried in order; the first whose dockerd comes up is used. overlay2 works here (the
# volume is a plain ext4 directory), the others are for machines where it does not mount.
DRIVERS = ("overlay2", "fuse-overlayfs", "vfs")
CGROUP_ROOT = Path("/sys/fs/cgroup")


class EngineFailed(RuntimeError):
    """The test engine did not come up (the message carries its logs)."""


def engine_image(host: docker.DockerClient, sink: EventSink | None = None) -> str:
    """The engine's image, tagged with its Dockerfile's hash: built once per machine, again
    only when the Dockerfile changes. Built from runner's offline base (made when missing)."""
    tag = f"{IMAGE_REPO}:{hashlib.sha256(DOCKERFILE.read_bytes()).hexdigest()[:16]}"
    if not image_present(host, tag):
        sink = sink or EventCollector()
        base = base_image(host, sink, offline=True)
        stream_build(host, tag, context=DOCKERFILE.parent, target=None,
                     buildargs={"BASE": base}, sink=sink)
    return tag


@dataclass
class RemoteEngine:
    """One running test engine. ``client`` speaks to it over TCP, as a remote backend would."""

    id: str
    host: docker.DockerClient
    image: str
    holder: Container
    container: Container
    volume: str
    driver: str
    url: str
    timings: dict[str, float] = field(default_factory=dict)   # seconds, by step

    _client: docker.DockerClient | None = None

    @property
    def name(self) -> str:
        return self.container.name

    @property
    def client(self) -> docker.DockerClient:
        """docker-py over TCP to this engine (made once it answers: the client asks the
        engine's API version when it is made)."""
        assert self._client is not None, "the engine has not answered yet"
        return self._client

    def load(self, image: str) -> float:
        """Copy ``image`` from the host engine into this one (`docker save | docker load`,
        streamed in chunks, never whole in memory); seconds taken, 0 when already there."""
        wanted = self.host.images.get(image)
        try:
            if self.client.images.get(image).id == wanted.id:
                return 0.0
        except docker.errors.ImageNotFound:
            pass
        started = time.monotonic()
        # save() yields chunks; requests sends a generator body chunked. named: without it
        # the tarball carries no tag and the engine loads an untagged image.
        self.client.images.load(wanted.save(chunk_size=1 << 20, named=image))
        took = time.monotonic() - started
        self.timings[f"load {image}"] = took
        return took

    def kill(self) -> None:
        """The engine dies at once (SIGKILL): its containers die with it (they live in its
        pid namespace); its volume, containers' records and images stay."""
        self.container.kill()
        self.container.wait()

    def start(self, timeout: float = 60) -> None:
        """Bring a killed or stopped engine back, at the same url; wait until it answers."""
        self.container.start()
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 60) -> None:
        """Until the engine answers ping; EngineFailed with its logs if it exits or times out."""
        try:
            for attempt in Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(0.2),
                                    retry=retry_if_exception_type(_NotYet), reraise=True):
                with attempt:
                    self.container.reload()
                    if self.container.status in ("exited", "dead"):
                        raise EngineFailed(f"dockerd ({self.driver}) exited: {self._logs()}")
                    try:
                        client = self._client or docker.DockerClient(base_url=self.url,
                                                                     timeout=60)
                        client.ping()
                        self._client = client
                    except (requests.exceptions.RequestException,
                            docker.errors.DockerException) as e:
                        raise _NotYet(str(e)) from e
        except _NotYet as e:
            raise EngineFailed(f"dockerd ({self.driver}) did not answer at {self.url} within "
                               f"{timeout:.0f}s ({e}): {self._logs()}") from e

    def remove(self) -> None:
        """Remove everything this engine made on the host: its containers (by its label),
        its volume and the cgroups its inner containers left under /<name>."""
        if self._client is not None:
            self._client.close()
        mine = {"label": f"{LABEL}={self.id}"}
        # The engine first: the holder owns the network namespace it is in.
        for container in sorted(self.host.containers.list(all=True, filters=mine),
                                key=lambda c: c.id != self.container.id):
            container.remove(force=True, v=True)
        for volume in self.host.volumes.list(filters=mine):
            volume.remove(force=True)
        remove_cgroups(self.name)

    def _logs(self, tail: int = 40) -> str:
        try:
            return self.container.logs(tail=tail).decode("utf-8", "replace")
        except docker.errors.DockerException as e:
            return f"(no logs: {e})"


class _NotYet(Exception):
    pass


def start_engine(host: docker.DockerClient, *, drivers: Iterable[str] = DRIVERS,
                 timeout: float = 60) -> RemoteEngine:
    """A fresh engine, with the first storage driver of ``drivers`` that comes up."""
    started = time.monotonic()
    image = engine_image(host)
    timings = {"image": time.monotonic() - started}
    failures = []
    for driver in drivers:
        engine = _create(host, image, driver)
        try:
            engine.container.start()
            engine.wait_ready(timeout)
        except (EngineFailed, docker.errors.APIError) as e:
            failures.append(f"{driver}: {e}")
            engine.remove()
            continue
        except BaseException:
            engine.remove()
            raise
        engine.timings.update(timings, start=time.monotonic() - started - timings["image"])
        return engine
    raise EngineFailed("no storage driver worked:\n" + "\n".join(failures))


@contextmanager
def running_engine(host: docker.DockerClient, *, drivers: Iterable[str] = DRIVERS,
                   timeout: float = 60) -> Iterator[RemoteEngine]:
    engine = start_engine(host, drivers=drivers, timeout=timeout)
    try:
        yield engine
    finally:
        engine.remove()


def _create(host: docker.DockerClient, image: str, driver: str) -> RemoteEngine:
    id_ = uuid.uuid4().hex[:12]
    name, labels = f"runner-test-engine-{id_}", {LABEL: id_}
    volume = host.volumes.create(name=name, labels=labels).name
    try:
        # create + start, not run: run would try to pull a missing image.
        holder = host.containers.create(
            image, ["sleep", "infinity"], name=f"{name}-net", labels=labels, init=True,
            read_only=True, cap_drop=["ALL"], ports={PORT: ("127.0.0.1", None)})
        holder.start()
        holder.reload()
        url = f"tcp://127.0.0.1:{holder.ports[PORT][0]['HostPort']}"
        config = host.api.create_host_config(
            network_mode=f"container:{holder.id}", init=True,
            cap_add=["ALL"], cap_drop=["SYS_RESOURCE"],      # --privileged is refused here
            security_opt=["seccomp=unconfined", "apparmor=unconfined"],
            devices=["/dev/fuse:/dev/fuse:rwm"], device_cgroup_rules=["a *:* rwm"],
            binds={"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"},
                   volume: {"bind": "/var/lib/docker", "mode": "rw"}},
            # /run fresh at each start, as on a rebooted host: a pid file or containerd
            # socket left by a killed dockerd would stop the next one.
            tmpfs={"/run": "rw,exec"})
        # `--security-opt systempaths=unconfined`: the CLI sends it as these two (docker-py
        # has no argument for them and the engine refuses the option itself).
        config.update(MaskedPaths=[], ReadonlyPaths=[])
        made = host.api.create_container(
            image, name=name, labels=labels, host_config=config,
            command=["dockerd", "--tls=false", f"--storage-driver={driver}",
                     # inner containers' cgroups under /<name>, not the host's /docker
                     f"--cgroup-parent=/{name}", "-H", "tcp://0.0.0.0:2375"])
        return RemoteEngine(id=id_, host=host, image=image, holder=holder,
                            container=host.containers.get(made["Id"]), volume=volume,
                            driver=driver, url=url)
    except BaseException:
        for container in host.containers.list(all=True, filters={"label": f"{LABEL}={id_}"}):
            container.remove(force=True)
        host.volumes.get(volume).remove(force=True)
        raise


def exec_with_stdin(api: docker.APIClient, container: str, argv: Sequence[str],
                    data: Iterable[bytes], *, user: str = "") -> tuple[int | None, bytes, bytes]:
    """Run ``argv`` in ``container`` with ``data`` streamed to its stdin; (exit code, stdout,
    stderr). Works the same over TCP and the local unix socket.

    exec_start(socket=True) hijacks the HTTP connection; writing goes to the raw socket and
    EOF is a half-close (shutdown SHUT_WR), which dockerd turns into the end of stdin. A
    thread writes while this one reads, so a process that talks while it reads cannot
    deadlock against us. If the engine dies, the stream just ends (no exception): the exit
    code then comes from exec_inspect, which raises requests' ConnectionError.
    """
    exec_id = api.exec_create(container, list(argv), stdin=True, user=user)["Id"]
    sock = api.exec_start(exec_id, socket=True)
    raw: socket.socket = sock._sock        # SocketIO over the hijacked connection

    def feed() -> None:
        try:
            for chunk in data:
                raw.sendall(chunk)
        except OSError:      # the process stopped reading (exited): its output says why
            pass
        finally:
            try:
                raw.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    out = {1: bytearray(), 2: bytearray()}
    try:
        for stream, chunk in frames_iter(sock, tty=False):
            out.setdefault(stream, bytearray()).extend(chunk)
    finally:
        # The output ended: the process is gone, so unsent input is moot; unblock the writer.
        try:
            raw.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        writer.join()
        sock.close()
    return api.exec_inspect(exec_id).get("ExitCode"), bytes(out[1]), bytes(out[2])


def remove_cgroups(name: str) -> None:
    """rmdir the (empty, once the engine is gone) cgroups under /<name>, deepest first; a
    cgroup whose last process is still exiting gets a moment."""
    for tree in CGROUP_ROOT.glob(f"*/{name}"):
        dirs = sorted((p for p in tree.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for path in [*dirs, tree]:
            for attempt in Retrying(stop=stop_after_delay(5), wait=wait_fixed(0.1),
                                    retry=retry_if_exception_type(OSError), reraise=True):
                with attempt:
                    try:
                        path.rmdir()
                    except FileNotFoundError:
                        pass
                    except PermissionError:   # not root: nothing this user may clean
                        return
