"""Files of this machine that a sandbox on a remote Docker engine mounts (the Claude Code
binary, 0.4 GB): sent to the engine once, not once per sandbox.

Each file lives in a volume named by the sha256 of its content, kept across runs (labelled
``runner.file``, never with a run), so a second run, and every sandbox after the first, finds
it there. It is sent as a part file and moved into place only once the engine's own sha256sum
agrees; a run checks the copy it finds the same way once, before its first sandbox mounts it
(read-only, at the file's directory).
"""

from __future__ import annotations

import io
import posixpath
import secrets
import tarfile
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO

import docker
import docker.errors
from docker.models.containers import Container
from docker.types import Mount as DockerMount

from runner.errors import EnvironmentProblem
from runner.sandbox import Mount, SandboxSpec
from runner.sandbox.docker.client import engine_must_answer
from runner.sandbox.provisioning import file_sha256

FILE_LABEL = "runner.file"     # on a volume: the sha256 of the one file it holds
INSIDE = "/carried"            # where a helper container sees the volume
STALE_PARTS = 60               # minutes after which a part file left by a fill is removed

# $1: the file's name, $2: its sha256. Exit 0: the volume holds it, whole.
_CHECK = 'echo "$2  ' + INSIDE + '/$1" | sha256sum -c --status'
# $3: the part file sent. It takes the name only if whole (several runs may fill at once:
# each sends its own part, and each rename leaves the same bytes).
_PLACE = (f'cd {INSIDE} && echo "$2  $3" | sha256sum -c --status && mv -f "$3" "$1" && '
          f'find {INSIDE} -maxdepth 1 -name ".part-*" -mmin +{STALE_PARTS} -delete; '
          f'{_CHECK}')


class CarriedFiles:
    """The volumes holding a run's carried files on one engine, checked once per run."""

    def __init__(self, client: docker.DockerClient, run_id: str) -> None:
        self.client, self.run_id = client, run_id
        self._ready: set[str] = set()          # volumes checked by this run
        self._lock = threading.Lock()          # one fill at a time: the others wait for it

    def mount(self, file: Mount, spec: SandboxSpec) -> DockerMount:
        """``file``'s volume, made and filled if the engine lacks it, read-only at the
        file's directory (which holds nothing else)."""
        with self._lock:
            digest = file_sha256(file.source)
            volume = f"runner-file-{digest[:32]}"
            if volume not in self._ready:
                self._fill(volume, digest, file, spec)
                self._ready.add(volume)
        return DockerMount(target=posixpath.dirname(file.target), source=volume,
                           type="volume", read_only=True)

    def _fill(self, volume: str, digest: str, file: Mount, spec: SandboxSpec) -> None:
        name = posixpath.basename(file.target)
        with engine_must_answer():
            self.client.volumes.create(volume, labels={FILE_LABEL: digest})
            if self._helper(spec, volume, _CHECK, name, digest, start=True) == 0:
                return
            part = f".part-{secrets.token_hex(4)}"
            helper = self._helper(spec, volume, _PLACE, name, digest, part, start=False)
            assert isinstance(helper, Container)
            try:
                with file.source.open("rb") as data:
                    put_file(helper, INSIDE, part, data, mode=0o555)
                helper.start()
                code = helper.wait().get("StatusCode")
            finally:
                helper.remove(force=True)
        if code != 0:
            raise EnvironmentProblem(f"{file.source} did not arrive whole in volume {volume} "
                                     f"of the engine (its sha256 there is not {digest})")

    def _helper(self, spec: SandboxSpec, volume: str, script: str, *args: str,
                start: bool) -> Container | int:
        """A container of ``spec``'s image that runs ``script`` over the volume: its exit
        code when started at once, else the container, made and not started."""
        options = dict(
            image=spec.image, command=["sh", "-c", script, "carry", *args], entrypoint=[],
            user="0:0", network_mode="none", read_only=True, cap_drop=["ALL"],
            security_opt=["no-new-privileges:true"],
            labels={"runner.run": self.run_id, "runner.carry": volume},
            mounts=[DockerMount(target=INSIDE, source=volume, type="volume")])
        if not start:
            return self.client.containers.create(**options)
        try:
            self.client.containers.run(**options, remove=True)
            return 0
        except docker.errors.ContainerError as e:
            return int(e.exit_status)


def put_file(container: Container, folder: str, name: str, data: BinaryIO, *,
             uid: int = 0, gid: int = 0, mode: int = 0o600) -> None:
    """One file into ``folder`` of ``container`` (a volume: a read-only root takes none),
    owned by ``uid``, streamed from ``data`` through a tar in a temporary file; the folders
    of ``name`` are made ``uid``'s."""
    with tempfile.TemporaryFile() as archive:
        with tarfile.open(fileobj=archive, mode="w") as tar:
            for parent in reversed(Path(name).parents[:-1]):
                made = tarfile.TarInfo(str(parent))
                made.type, made.mode, made.uid, made.gid = tarfile.DIRTYPE, 0o700, uid, gid
                tar.addfile(made)
            info = tarfile.TarInfo(name)
            info.size = data.seek(0, io.SEEK_END)
            data.seek(0)
            info.uid, info.gid, info.mode = uid, gid, mode
            tar.addfile(info, data)
        archive.seek(0)
        with engine_must_answer():
            if not container.put_archive(folder, archive):
                raise EnvironmentProblem(f"could not upload {name} into {container.name}")

