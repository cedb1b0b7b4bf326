"""The lead's end of a supervisor's channel: requests out, frames in (inside.py says the
format), any number of commands at once, each answered by its own id."""

from __future__ import annotations

import binascii
import queue
import struct
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Protocol

FRAME = struct.Struct(">cII")
_LOST = (b"", b"")     # what every waiting command gets when the channel goes


class ChannelLost(Exception):
    """The channel closed or spoke nonsense: the sandbox stopped, or its supervisor did."""


class NotStarted(Exception):
    """The supervisor could not start the command (no pid or memory left): nothing ran."""


class Stream(Protocol):
    """A byte stream to a supervisor's stdin and from its stdout, held by the lead alone."""

    def send(self, data: bytes) -> None: ...

    def chunks(self) -> Iterator[bytes]: ...     # its stdout as it comes, until it closes

    def close(self) -> None: ...


class Channel:
    def __init__(self, stream: Stream) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._waiting: dict[int, queue.SimpleQueue[tuple[bytes, bytes]]] = {}
        self._next = 1
        self.lost = False
        self._reader = threading.Thread(target=self._read, daemon=True,
                                        name="supervisor-channel")
        self._reader.start()

    def run(self, argv: Sequence[str], *, cwd: str, env: Mapping[str, str],
            take: Callable[[int, bytes], None]) -> int:
        """Run ``argv`` as the worker, its output to ``take`` as it comes; its exit code."""
        answers = self._ask([cwd, str(len(argv)), *argv,
                             *(f"{key}={value}" for key, value in env.items())])
        while True:
            kind, data = answers.get()
            if kind == b"o":
                take(1, data)
            elif kind == b"e":
                take(2, data)
            elif kind == b"x":
                return int(data)
            elif kind == b"f":
                raise NotStarted(data.decode("utf-8", "replace"))
            else:
                raise ChannelLost("the supervisor's channel closed")

    def ping(self, timeout: float) -> bool:
        """Whether the supervisor answers within ``timeout`` seconds."""
        try:
            answers = self._ask(["/", "0"])
            return answers.get(timeout=timeout)[0] == b"x"
        except (ChannelLost, queue.Empty):
            return False

    def close(self) -> None:
        self._stream.close()
        self._lose()

    def _ask(self, fields: list[str]) -> queue.SimpleQueue[tuple[bytes, bytes]]:
        answers: queue.SimpleQueue[tuple[bytes, bytes]] = queue.SimpleQueue()
        with self._lock:
            if self.lost:
                raise ChannelLost("the supervisor's channel closed")
            ident, self._next = self._next, self._next + 1
            self._waiting[ident] = answers
            payload = b"\0".join(field.encode("utf-8", "surrogateescape")
                                 for field in [str(ident), *fields])
            try:
                self._stream.send(binascii.b2a_base64(payload, newline=True))
            except OSError as e:
                del self._waiting[ident]
                raise ChannelLost(f"cannot write to the supervisor ({e})") from e
        return answers

    def _read(self) -> None:
        buffer = b""
        try:
            for chunk in self._stream.chunks():
                buffer += chunk
                while len(buffer) >= FRAME.size:
                    kind, ident, size = FRAME.unpack_from(buffer)
                    if len(buffer) < FRAME.size + size:
                        break
                    data = buffer[FRAME.size:FRAME.size + size]
                    buffer = buffer[FRAME.size + size:]
                    if not self._deliver(kind, ident, data):
                        return
        except (OSError, ValueError):     # ValueError: closed here meanwhile
            pass
        finally:
            self._stream.close()
            self._lose()

    def _deliver(self, kind: bytes, ident: int, data: bytes) -> bool:
        if ident == 0:      # it could not read a request of ours: nothing more is sure
            return False
        with self._lock:
            answers = self._waiting.get(ident)
            if kind in (b"x", b"f"):
                self._waiting.pop(ident, None)
        if answers is not None:
            answers.put((kind, data))
        return True

    def _lose(self) -> None:
        with self._lock:
            self.lost = True
            waiting, self._waiting = self._waiting, {}
        for answers in waiting.values():
            answers.put(_LOST)
