"""The remote test engine gives what a backend without a shared disk needs, through
docker-py over TCP: hardened containers, stdin streamed into exec (a git bundle made on the
host), a named volume as the only writable storage, archives in and out, no host paths, and
an engine that can be killed and brought back with its containers and volumes.

The last test kills the session's engine and brings it back; it runs last in this file.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
import requests
from docker.models.containers import Container
from docker.types import Mount

from tests.engines.dind import RemoteEngine, exec_with_stdin
from tests.helpers import git, make_repo

pytestmark = pytest.mark.docker

KEEPER = "65534:65534"      # runner's container main process (runner/sandbox/docker/local.py)


@pytest.fixture
def box(remote_engine: RemoteEngine, remote_worker_image: str) -> Iterator[Container]:
    """A worker container hardened as runner's, its /workspace a named volume."""
    client, name = remote_engine.client, f"box-{uuid.uuid4().hex[:8]}"
    volume = client.volumes.create(name)
    container = client.containers.create(
        remote_worker_image, ["sleep", "infinity"], name=name, user=KEEPER, init=True,
        read_only=True, tmpfs={"/tmp": "rw,exec,nosuid,nodev,size=1g"}, cap_drop=["ALL"],
        security_opt=["no-new-privileges:true"], network_mode="none",
        working_dir="/workspace", pids_limit=256, mem_limit="512m", nano_cpus=10**9,
        mounts=[Mount(target="/workspace", source=volume.name, type="volume")])
    container.start()
    yield container
    container.remove(force=True)
    volume.remove(force=True)


def sh(container: Container, script: str, *, user: str = "0:0") -> str:
    code, out = container.exec_run(["sh", "-c", script], user=user)
    assert code == 0, out.decode()
    return out.decode()


def tar_of(files: dict[str, bytes], *, uid: int = 0) -> bytes:
    """A tar of ``files`` owned by ``uid``, their directories too (a directory the tar does
    not list is made by the engine, owned by root)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for parent in sorted({str(p) for name in files for p in Path(name).parents} - {"."}):
            info = tarfile.TarInfo(parent)
            info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o755, uid, uid
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.uid, info.gid = len(data), uid, uid
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_engine_is_another_engine_on_loopback_only(remote_engine: RemoteEngine,
                                                   engine: docker.DockerClient) -> None:
    assert remote_engine.url.startswith("tcp://127.0.0.1:")
    bindings = remote_engine.holder.attrs["HostConfig"]["PortBindings"]["2375/tcp"]
    assert [b["HostIp"] for b in bindings] == ["127.0.0.1"]
    info = remote_engine.client.info()
    assert info["ID"] != engine.info()["ID"]
    assert info["Driver"] == remote_engine.driver


def test_image_is_loaded_once(remote_engine: RemoteEngine, remote_worker_image: str,
                              engine: docker.DockerClient) -> None:
    theirs = remote_engine.client.images.get(remote_worker_image)
    assert theirs.id == engine.images.get(remote_worker_image).id      # tag and id kept
    assert remote_engine.load(remote_worker_image) == 0.0


def test_hardened_container_writes_only_its_volume(box: Container) -> None:
    assert sh(box, "id -u", user="").strip() == "65534"      # the main process's user
    assert box.put_archive("/workspace", tar_of({"up/hello": b"hi\n"}))
    with pytest.raises(docker.errors.APIError, match="read-only"):
        box.put_archive("/", tar_of({"hello": b"hi\n"}))
    stream, _ = box.get_archive("/workspace/up/hello")
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = tar.extractfile("hello")
        assert member is not None and member.read() == b"hi\n"
    out = box.exec_run(["touch", "/etc/x"], user="0:0").output.decode()
    assert "Read-only file system" in out
    limits = sh(box, "cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory/memory.limit_in_bytes")
    assert limits.split() == ["256", str(512 << 20)]     # the inner engine's cgroups work


def test_upload_keeps_the_tars_owners(box: Container) -> None:
    """How a non-root worker gets a writable tree: the volume's own root takes the image's
    /workspace owner (root), but what is uploaded keeps the tar's owners."""
    box.put_archive("/workspace", tar_of({"mine/file": b"x"}, uid=65534))
    assert sh(box, "stat -c %U /workspace /workspace/mine /workspace/mine/file").split() == [
        "root", "nobody", "nobody"]
    sh(box, "touch /workspace/mine/new", user=KEEPER)


def test_bundle_streams_into_exec_and_results_come_back(box: Container,
                                                        tmp_path: Path) -> None:
    """The clone is provisioned inside from a bundle on the exec's stdin; the bundle of
    its result comes back through get_archive."""
    repo = make_repo(tmp_path / "repo", {"README.md": "hello\n"})
    (repo / "big.bin").write_bytes(bytes(range(256)) * 16384)   # 4 MB: past socket buffers
    git(repo, "add", "big.bin")
    git(repo, "commit", "-q", "-m", "big")
    bundle = subprocess.Popen(["git", "-C", str(repo), "bundle", "create", "-", "--all"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert bundle.stdout is not None
    # git clone/fetch cannot read a bundle from a pipe (/dev/stdin is not a regular file to
    # them): the bytes land in the volume first.
    code, out, err = exec_with_stdin(
        box.client.api, box.id,
        ["sh", "-c", "cat > /workspace/.base.bundle && git clone -q --branch main "
                     "/workspace/.base.bundle /workspace/clone && git -C /workspace/clone "
                     "rev-parse HEAD"],
        iter(lambda: bundle.stdout.read(1 << 16), b""), user="0:0")
    assert bundle.wait() == 0
    assert (code, err) == (0, b"")
    assert out.decode().strip() == git(repo, "rev-parse", "HEAD")

    sh(box, "cd /workspace/clone && echo more >> README.md && git -c user.name=w "
            "-c user.email=w@example.invalid commit -qam more && "
            "git bundle create -q /workspace/out.bundle main")
    stream, _ = box.get_archive("/workspace/out.bundle")
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = tar.extractfile("out.bundle")
        assert member is not None
        (tmp_path / "out.bundle").write_bytes(member.read())
    git(repo, "fetch", "-q", str(tmp_path / "out.bundle"), "main:refs/heads/back")
    assert git(repo, "log", "-1", "--format=%s", "back") == "more"


def test_host_paths_do_not_exist_there(remote_engine: RemoteEngine, remote_worker_image: str,
                                       tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("host only\n")
    client = remote_engine.client
    with pytest.raises(docker.errors.APIError, match="bind source path does not exist"):
        client.containers.create(remote_worker_image, ["true"],
                                 mounts=[Mount(target="/m", source=str(tmp_path), type="bind")])
    # The old -v form makes the missing directory in the engine's own filesystem: empty.
    seen = client.containers.run(remote_worker_image, ["ls", "-A", "/m"], remove=True,
                                 volumes={str(tmp_path): {"bind": "/m", "mode": "ro"}})
    assert seen == b""


def test_engine_killed_mid_exec_then_brought_back(remote_engine: RemoteEngine,
                                                  box: Container) -> None:
    sh(box, "echo kept > /workspace/kept")
    api, url = remote_engine.client.api, remote_engine.url
    exec_id = api.exec_create(box.id, ["sh", "-c", "echo started; exec sleep 600"])["Id"]
    frames = api.exec_start(exec_id, stream=True, demux=True)
    assert next(frames) == (b"started\n", None)
    killer = threading.Thread(target=remote_engine.kill)
    killer.start()
    # The engine's death is not an error on the output stream: it just ends.
    assert list(frames) == []
    killer.join()
    for call in (lambda: api.exec_inspect(exec_id), remote_engine.client.ping,
                 lambda: api.exec_create(box.id, ["true"])):
        with pytest.raises(requests.exceptions.ConnectionError) as lost:
            call()
        assert not isinstance(lost.value, docker.errors.DockerException)

    remote_engine.start()
    assert remote_engine.url == url                       # same address after coming back
    box.reload()
    assert box.status == "exited"                         # died with the engine, kept
    assert box.name in {v.name for v in remote_engine.client.volumes.list()}
    box.start()
    assert sh(box, "cat /workspace/kept") == "kept\n"
