"""The dependency cache on disk: artifacts content-addressed by their sha256, and the last
good index page of each project, as only the gateway writes them.

A blob is written to a temporary file of the writing process, hashed as it is written, and
renamed into place (after an fsync) only once its hash is the one the ecosystem published:
a runner killed mid-download leaves a temporary file, never a half artifact under a name a
reader would take. Temporary files of processes that are gone are removed when a store
opens. Reading a blob touches its mtime, so pruning to ``max`` takes the least recently
used first. An artifact known by another digest (npm's sha512, a Maven sha1, Go's h1) is
found by it too: its commit files a note of that digest's sha256. One download per artifact
across every gateway on the machine: a writer holds the artifact's lock file (flock) while it
fetches. Pure Python: `runner cache` reads it without the gateway.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import secrets
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.errors import InputError

_HEX = re.compile(r"[0-9a-f]{64}")
_DIGEST = {"sha256": _HEX, "sha1": re.compile(r"[0-9a-f]{40}"),
           "sha512": re.compile(r"[0-9a-f]{128}"),
           "h1": re.compile(r"h1:[A-Za-z0-9+/]{43}=")}      # Go's, of a zip's files
_INDEX_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,199}")


class HashMismatch(Exception):
    """What was downloaded is not what the ecosystem published: it is not kept."""


@dataclass(frozen=True)
class Usage:
    artifacts: int
    artifact_bytes: int
    indexes: int
    index_bytes: int

    @property
    def bytes(self) -> int:
        return self.artifact_bytes + self.index_bytes


DigestOfFile = Callable[[Path], str]


class BlobWriter:
    """One artifact being written: feed it chunks, then ``commit``, which checks it against
    the digest its ecosystem published (``algorithm``: sha256, or sha1 where that is all a
    Maven repository gives; or one ``digest_of_file`` computes of the whole file, as Go's
    of a zip's contents) and files it under its sha256."""

    def __init__(self, store: Store, algorithm: str, digest: str,
                 digest_of_file: DigestOfFile | None = None) -> None:
        self.store, self.algorithm, self.digest = store, algorithm, digest
        self.path = store.tmp / f"{os.getpid()}-{secrets.token_hex(6)}"
        self._file = open(self.path, "xb")
        self._digest_of_file = digest_of_file
        self._hashes = {"sha256": hashlib.sha256()}
        if digest_of_file is None:
            self._hashes[algorithm] = hashlib.new(algorithm)
        self.size = 0
        self.sha256 = ""

    def write(self, chunk: bytes) -> None:
        for digest in self._hashes.values():
            digest.update(chunk)
        self._file.write(chunk)
        self.size += len(chunk)

    def commit(self) -> Path:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        got = self._computed()
        if got != self.digest:
            self.discard()
            raise HashMismatch(f"{self.algorithm} {got} where {self.digest} was published")
        self.sha256 = self._hashes["sha256"].hexdigest()
        final = self.store.blob_path(self.sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path, final)
        _fsync_dir(final.parent)
        if self.algorithm != "sha256":
            self.store.save_index(_ALIASES, _alias(self.algorithm, self.digest),
                                  self.sha256.encode(), {"algorithm": self.algorithm})
        return final

    def _computed(self) -> str:
        if self._digest_of_file is None:
            return self._hashes[self.algorithm].hexdigest()
        try:
            return self._digest_of_file(self.path)
        except (OSError, ValueError, zipfile.BadZipFile) as e:   # not what it claims to be
            self.discard()
            raise HashMismatch(f"no {self.algorithm} can be had of it ({e})") from e

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)


class Store:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs" / "sha256"
        self.indexes = self.root / "indexes"
        self.tmp = self.root / "tmp"
        self.locks = self.root / "locks"

    def open(self) -> Store:
        """Make its folders (runner's alone: 0700) and remove what dead writers left."""
        for folder in (self.blobs, self.indexes, self.tmp, self.locks):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.root.chmod(0o700)
        for leftover in self.tmp.iterdir():
            pid = leftover.name.partition("-")[0]
            if not pid.isdigit() or not _alive(int(pid)):
                leftover.unlink(missing_ok=True)
        return self

    # -- artifacts ------------------------------------------------------------------------

    def blob_path(self, sha256: str) -> Path:
        if not _HEX.fullmatch(sha256):
            raise ValueError(f"not a sha256: {sha256[:80]!r}")
        return self.blobs / sha256[:2] / sha256

    def blob(self, sha256: str) -> Path | None:
        """The artifact of this hash when the store has it (touched: recently used)."""
        path = self.blob_path(sha256)
        try:
            os.utime(path)
        except FileNotFoundError:
            return None
        return path

    def find(self, algorithm: str, digest: str) -> Path | None:
        """The artifact whose ``algorithm`` digest is ``digest``, when the store has it."""
        if algorithm == "sha256":
            return self.blob(digest)
        note = self.load_index(_ALIASES, _alias(algorithm, digest))
        return self.blob(note[0].decode()) if note and _HEX.fullmatch(note[0].decode()) \
            else None

    def try_lock(self, algorithm: str, digest: str) -> int | None:
        """The artifact's download lock, taken (an fd to pass to ``unlock``), or None while
        another writer, of this process or another, holds it."""
        fd = os.open(self.locks / _alias(algorithm, digest), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    @staticmethod
    def unlock(fd: int) -> None:
        os.close(fd)                      # closing the only fd releases the flock

    def writer(self, digest: str, *, algorithm: str = "sha256",
               digest_of_file: DigestOfFile | None = None) -> BlobWriter:
        """A new artifact whose ``algorithm`` digest must be ``digest`` (a sha256, but for
        a Maven artifact whose repository publishes a sha1 alone, or a Go module's h1)."""
        if not _DIGEST[algorithm].fullmatch(digest):
            raise ValueError(f"not a {algorithm}: {digest[:80]!r}")
        return BlobWriter(self, algorithm, digest, digest_of_file)

    # -- index pages ----------------------------------------------------------------------

    def _index_path(self, ecosystem: str, name: str) -> Path:
        if not _INDEX_NAME.fullmatch(ecosystem) or not _INDEX_NAME.fullmatch(name):
            raise ValueError(f"not an index name: {ecosystem}/{name}"[:120])
        return self.indexes / ecosystem / name

    def save_index(self, ecosystem: str, name: str, body: bytes, meta: dict[str, Any]) -> None:
        """The last good index page of ``name`` (what a later fetch falls back to)."""
        path = self._index_path(ecosystem, name)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        record = json.dumps({"meta": meta, "saved": time.time()}).encode() + b"\n" + body
        tmp = self.tmp / f"{os.getpid()}-{secrets.token_hex(6)}"
        with open(tmp, "xb") as out:
            out.write(record)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)

    def load_index(self, ecosystem: str, name: str) -> tuple[bytes, dict[str, Any]] | None:
        try:
            raw = self._index_path(ecosystem, name).read_bytes()
        except FileNotFoundError:
            return None
        head, _, body = raw.partition(b"\n")
        try:
            record = json.loads(head)
            meta = {**record["meta"], "saved": float(record["saved"])}
        except (ValueError, KeyError, TypeError):
            return None                   # not ours: never served
        return body, meta

    # -- size -----------------------------------------------------------------------------

    def _entries(self) -> Iterator[tuple[Path, os.stat_result]]:
        for top in (self.blobs, self.indexes):
            for path in top.glob("*/*"):
                try:
                    yield path, path.stat()
                except FileNotFoundError:
                    continue

    def usage(self) -> Usage:
        counts = {self.blobs: [0, 0], self.indexes: [0, 0]}
        for path, st in self._entries():
            count = counts[path.parent.parent]
            count[0] += 1
            count[1] += st.st_size
        (a, ab), (i, ib) = counts[self.blobs], counts[self.indexes]
        return Usage(artifacts=a, artifact_bytes=ab, indexes=i, index_bytes=ib)

    def prune(self, max_bytes: int) -> tuple[int, int]:
        """Remove the least recently used entries until the store holds ``max_bytes`` at
        most; returns (entries, bytes) removed."""
        entries = sorted(self._entries(), key=lambda e: e[1].st_mtime)
        total = sum(st.st_size for _, st in entries)
        removed = freed = 0
        for path, st in entries:
            if total <= max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= st.st_size
            removed, freed = removed + 1, freed + st.st_size
        return removed, freed


_ALIASES = "digests"


def _alias(algorithm: str, digest: str) -> str:
    """A file name for an artifact's digest of any kind (Go's h1 holds '/' and '=')."""
    return hashlib.sha256(f"{algorithm}:{digest}".encode()).hexdigest()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def default_cache_dir() -> Path:
    """Where the cache lives unless the phase says: the user's cache folder."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "runner" / "deps"


def store_at(path: Path) -> Store:
    try:
        return Store(path).open()
    except OSError as e:
        raise InputError(f"the dependency cache at {path} cannot be used ({e.strerror}): "
                         "set cache.dir in the phase file to a folder runner may write") from e
