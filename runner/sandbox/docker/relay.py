"""The gateway's relay of a container on a remote Docker engine, reached the way a Pod's is
(relay/tunnel.py): each stream an exec of the engine's, its stdin and stdout carried over the
connection docker-py hijacks for it.

Output comes in the engine's frames (an 8-byte header: the stream, three zero bytes, the
payload's size, big-endian), as the Engine API documents for a stream without a TTY; stdin
goes in raw.
"""

from __future__ import annotations

import select
import socket
import struct
from collections.abc import Sequence
from typing import Any

import docker

CHUNK = 1 << 16
READS = 16               # chunks one receive() takes from the socket at most
SEND_TIMEOUT = 60.0      # seconds a send may wait on an engine that does not read
_HEADER = struct.Struct(">BxxxL")
_STDOUT = 1


class ExecDuplex:
    """One exec's stream both ways (the tunnel's Duplex)."""

    def __init__(self, api: docker.APIClient, container: str, argv: Sequence[str],
                 user: str) -> None:
        exec_id = api.exec_create(container, list(argv), stdin=True, user=user)["Id"]
        self._held: Any = api.exec_start(exec_id, socket=True)   # keeps the response alive
        # A socket.SocketIO over the connection (plain or TLS), or the connection itself.
        self._sock: socket.socket = getattr(self._held, "_sock", self._held)
        self._sock.settimeout(SEND_TIMEOUT)
        self._frames = b""
        self._ended = False

    def fileno(self) -> int:
        return self._sock.fileno()

    def receive(self) -> bytes | None:
        if self._ended:
            return None
        reads = 0
        # What TLS holds decrypted always (a poll would not see it); from the socket, at
        # most READS chunks a call, so that a flood does not grow without bound here.
        while self._pending() or (reads < READS and self._readable()):
            data = self._sock.recv(CHUNK)
            reads += 1
            if not data:
                self._ended = True
                break
            self._frames += data
        out = self._payloads()
        return None if self._ended and not out else out

    def _pending(self) -> bool:
        pending = getattr(self._sock, "pending", None)
        return bool(pending is not None and pending())

    def _readable(self) -> bool:
        ready = select.poll()
        ready.register(self._sock.fileno(), select.POLLIN)
        return bool(ready.poll(0))

    def _payloads(self) -> bytes:
        """Stdout's bytes of the whole frames received; the rest waits for its frame's end."""
        out, at = [], 0
        while len(self._frames) - at >= _HEADER.size:
            stream, size = _HEADER.unpack_from(self._frames, at)
            end = at + _HEADER.size + size
            if end > len(self._frames):
                break
            if stream == _STDOUT:
                out.append(self._frames[at + _HEADER.size:end])
            at = end
        self._frames = self._frames[at:]
        return b"".join(out)

    def send(self, data: bytes) -> None:
        self._sock.sendall(data)

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)     # the engine sees the end at once
        except OSError:
            pass
        self._sock.close()
        close = getattr(self._held, "close", None)
        if close is not None:
            close()


class ContainerRelay:
    """The relay beside a remote container's keeper, reached as ``user`` (the relay's)."""

    def __init__(self, api: docker.APIClient, container: str, name: str, user: str) -> None:
        self.api, self.container, self.user = api, container, user
        self.where = f"container {name}"

    def __call__(self, argv: Sequence[str]) -> ExecDuplex:
        return ExecDuplex(self.api, self.container, argv, self.user)
