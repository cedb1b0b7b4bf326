"""The runner's gateway for a sandbox that cannot reach this machine, runner's half. The
sandbox's only network is its own loopback, and its engine may have no way to reach this
machine, so every connection the worker opens is carried by an exec stream that runner opens
into the sandbox's relay (script.py): a Pod's pods/exec websocket, a remote Docker engine's
exec, each behind ``Relay``.

One exec reads the relay's announcements. For each child announced, a JOIN exec (one is kept
started ahead) is given its pid, and runner carries the stream to the ticket's own gateway
socket here. So the key stays on this machine, every call is metered by the gateway as on a
local engine, and the sandbox's network stays none. A worker that misuses the relay hurts
only its own way out: whatever it sends reaches its own ticket's socket, as data, and what it
opens costs runner at most MAX_CHILDREN streams at a time, JOIN_RATE new ones a second.
"""

from __future__ import annotations

import re
import select
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from runner.gateway import connect_unix
from runner.sandbox.relay.script import JOIN, MAX_CHILDREN, READ_ANNOUNCEMENTS

FIRST_BYTES = 30.0     # seconds a joined connection may stay silent before it is dropped
JOIN_RATE = 20.0       # joins a second at most, per sandbox (each is an exec on its engine)
SPARE_AGE = 30.0       # seconds a JOIN started ahead is kept (idle streams get cut)
CHUNK = 1 << 16
_PID = re.compile(rb"[0-9]{1,10}")


class Duplex(Protocol):
    """One exec into the relay: its stdin and its stdout, as bytes."""

    def fileno(self) -> int:
        """What to poll for its output."""
        ...

    def receive(self) -> bytes | None:
        """The output that has come (b"": none yet), without waiting; None once it ended.
        Everything the stream holds is taken, so a poll after b"" waits for new bytes."""
        ...

    def send(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class Relay(Protocol):
    """Where one sandbox's relay is: ``where`` names it in a sentence ("Pod p", "container
    c"); calling it starts ``argv`` there, as the relay's user, with stdin."""

    where: str

    def __call__(self, argv: Sequence[str]) -> Duplex: ...


def announced_pids(pending: bytes, data: bytes) -> tuple[list[bytes], bytes]:
    """The pids in ``data`` (after ``pending``, the last call's unfinished line), and what is
    left unfinished. A line that is not a pid (the reader's heartbeat) is no pid."""
    *lines, rest = (pending + data).split(b"\n")
    return [line for line in lines if _PID.fullmatch(line)], rest[-16:]


class GatewayTunnel:
    """The connections of one sandbox's relay carried to ``gateway`` (the ticket's socket
    here), from start() until close()."""

    def __init__(self, relay: Relay, gateway: Path,
                 say: Callable[[str], None] = lambda _line: None) -> None:
        self.relay, self.gateway, self.say = relay, gateway, say
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read, name=f"relay-{relay.where}",
                                        daemon=True)
        self._pending = b""
        self._lock = threading.Lock()
        self._joining: set[bytes] = set()     # pids joined, until their connection ends
        self._slots = threading.BoundedSemaphore(MAX_CHILDREN)
        self._next_join = 0.0                 # monotonic time the next join may start
        self._spare: tuple[Duplex, float] | None = None   # a JOIN started ahead, and when
        self._refilling = False
        # Why the relay cannot be read now ("" while it can): said in the ticket's log
        # (tell_trouble), since the worker only sees its connections refused.
        self.trouble = ""
        self._told = ""

    def start(self) -> GatewayTunnel:
        self._reader.start()
        self._refill_soon()
        return self

    def close(self) -> None:
        """No more connections; each one carried ends within a poll (or, stuck writing to
        an end that does not read, within the socket timeout)."""
        self._closed.set()
        self._reader.join(5)
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            spare[0].close()

    def tell_trouble(self, say: Callable[[str], None]) -> None:
        """Why the worker's way out failed, once, after the command it failed: never in a
        command's own output, which runner may read."""
        trouble = self.trouble
        if trouble and trouble != self._told:
            say(f"runner: {trouble}")
        self._told = trouble

    # --- announcements ----------------------------------------------------------------

    def _read(self) -> None:
        """The announcements, read again after a stream that broke (quickly after one that
        lived a while), until close()."""
        delay = 0.2
        while not self._closed.is_set():
            started = time.monotonic()
            self._pending = b""
            try:
                why = self._read_once()
            except Exception as e:      # noqa: BLE001 - the stream broke or the sandbox went
                why = f"{e.__class__.__name__}: {str(e)[:200]}"
            if self._closed.is_set():
                return
            lived = time.monotonic() - started > 10
            if lived:           # a stream that broke after a while: a cut, said once
                self.trouble = ""
                self.say(f"the stream of the gateway's relay in {self.relay.where} broke "
                         f"({why}); it is opened again")
            elif delay >= 1.6 and not self.trouble:   # again and again, not a cut once
                self.trouble = (f"the gateway's relay in {self.relay.where} cannot be reached "
                                f"({why}): the worker's connections to it fail")
            delay = 0.2 if lived else min(delay * 2, 5.0)
            self._closed.wait(delay)

    def _read_once(self) -> str:
        """One reader's announcements, until its stream ends (why) or close()."""
        stream = self.relay(["sh", "-c", READ_ANNOUNCEMENTS])
        try:
            while not self._closed.is_set():
                data = stream.receive()
                if data is None:
                    return "its reader's stream ended"
                if data:
                    self._announced(data)
                else:
                    _wait(stream, None, 1.0)
            return "closed"
        finally:
            stream.close()

    def _announced(self, data: bytes) -> None:
        pids, self._pending = announced_pids(self._pending, data)
        for pid in pids:
            with self._lock:
                if pid in self._joining:       # a child says it again until it is joined
                    continue
                self._joining.add(pid)
            threading.Thread(target=self._join, args=(pid,), daemon=True,
                             name=f"relay-{self.relay.where}-{pid.decode()}").start()

    # --- joins ------------------------------------------------------------------------

    def _join(self, child: bytes) -> None:
        try:
            with self._slots:
                self._pace()
                if self._closed.is_set():
                    return
                stream = self._joined(child)
                try:
                    _carry(stream, self.gateway, self._closed)
                finally:
                    stream.close()
        except Exception:      # noqa: BLE001 - either end went: the connection ends, and
            pass               # the child, unjoined, gives up on its own
        finally:
            with self._lock:
                self._joining.discard(child)

    def _pace(self) -> None:
        """Until this join's turn: JOIN_RATE a second."""
        with self._lock:
            start = max(time.monotonic(), self._next_join)
            self._next_join = start + 1 / JOIN_RATE
        self._closed.wait(max(0.0, start - time.monotonic()))

    def _joined(self, child: bytes) -> Duplex:
        """A JOIN told ``child``: the spare, while it is young and its stream still open,
        else a new one; a spare started for the next child."""
        with self._lock:
            spare, self._spare = self._spare, None
        self._refill_soon()
        if spare is not None:
            stream, made = spare
            try:
                # A stream cut while it waited says so here (it printed nothing yet).
                if time.monotonic() - made < SPARE_AGE and stream.receive() is not None:
                    stream.send(child + b"\n")
                    return stream
            except Exception:      # noqa: BLE001 - a dead spare: a new one instead
                pass
            stream.close()
        stream = self.relay(["sh", "-c", JOIN])
        try:
            stream.send(child + b"\n")
        except BaseException:
            stream.close()
            raise
        return stream

    def _refill_soon(self) -> None:
        with self._lock:
            if self._refilling or self._spare is not None or self._closed.is_set():
                return
            self._refilling = True
        threading.Thread(target=self._refill, daemon=True,
                         name=f"relay-{self.relay.where}-spare").start()

    def _refill(self) -> None:
        stream: Duplex | None
        try:
            stream = self.relay(["sh", "-c", JOIN])
        except Exception:      # noqa: BLE001 - the next join opens its own
            stream = None
        with self._lock:
            self._refilling = False
            if stream is not None and self._spare is None and not self._closed.is_set():
                self._spare, stream = (stream, time.monotonic()), None
        if stream is not None:
            stream.close()


def _carry(stream: Duplex, gateway: Path, closed: threading.Event) -> None:
    """Bytes both ways between the exec ``stream`` and a connection to ``gateway``, made
    once the worker has said something, until either end ends. One thread does both: a TLS
    connection under the stream is not for two threads at once."""
    conn: socket.socket | None = None
    started = time.monotonic()
    try:
        while not closed.is_set():
            data = stream.receive()
            if data is None:
                return
            if data:
                if conn is None:
                    conn = connect_unix(gateway, timeout=10)
                conn.sendall(data)
            elif conn is None and time.monotonic() - started > FIRST_BYTES:
                return
            if _wait(stream, conn, 1.0):
                back = conn.recv(CHUNK) if conn is not None else b""
                if not back:
                    return
                stream.send(back)
    finally:
        if conn is not None:
            conn.close()


def _wait(stream: Duplex, conn: socket.socket | None, seconds: float) -> bool:
    """Until either end has something (``seconds`` at most); whether the gateway's did."""
    watched = select.poll()
    watched.register(stream.fileno(), select.POLLIN)
    if conn is not None:
        watched.register(conn.fileno(), select.POLLIN)
    return any(conn is not None and fd == conn.fileno()
               for fd, _ in watched.poll(int(seconds * 1000)))
