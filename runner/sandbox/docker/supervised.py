"""A supervisor's channel over Docker's attach: the container's stdin and stdout, which
only an attached client holds (the container logs nothing: its log driver is none)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import docker
from docker.utils.socket import STDOUT, frames_iter


class AttachStream:
    """The Stream of supervisor/channel.py for one container. Attached before the container
    starts, it holds all the supervisor says; a detach closes the container's stdin for the
    rest of its life (measured), so the stream is held as long as the sandbox is used."""

    def __init__(self, api: docker.APIClient, container_id: str) -> None:
        self._io = api.attach_socket(container_id, params={"stdin": 1, "stdout": 1,
                                                            "stderr": 1, "stream": 1})
        self._socket: socket.socket = getattr(self._io, "_sock", self._io)
        self._socket.settimeout(None)      # a command may be quiet for as long as it likes

    def send(self, data: bytes) -> None:
        self._socket.sendall(data)

    def chunks(self) -> Iterator[bytes]:
        for stream, data in frames_iter(self._io, tty=False):
            if stream == STDOUT:          # its stderr holds nothing the lead reads
                yield data

    def close(self) -> None:
        try:
            self._socket.shutdown(socket.SHUT_RDWR)     # wakes the reader
        except OSError:
            pass
        self._io.close()
