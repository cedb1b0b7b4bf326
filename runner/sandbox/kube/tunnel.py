"""The runner's gateway for a Pod, runner's half. The Pod's only network is its own loopback,
and the cluster may have no way to reach this machine, so every connection the worker opens
is carried by an exec stream that runner opens into the Pod's relay (relay.py).

One exec reads the relay's announcements. For each child announced, a JOIN exec (one is kept
started ahead) is given its pid, and runner carries the stream to the ticket's own gateway
socket here. So the key stays on this machine, every call is metered by the gateway as on
Docker, and the Pod's NetworkPolicy still denies everything. A worker that misuses the relay
hurts only its own way out: whatever it sends reaches its own ticket's socket, as data, and
what it opens costs runner at most MAX_CHILDREN streams at a time, JOIN_RATE new ones a
second.
"""

from __future__ import annotations

import re
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubernetes.stream.ws_client import STDOUT_CHANNEL

from runner.gateway import connect_unix
from runner.sandbox.kube.relay import JOIN, MAX_CHILDREN, READ_ANNOUNCEMENTS, RELAY

if TYPE_CHECKING:
    from runner.sandbox.kube.cluster import Cluster

FIRST_BYTES = 30.0     # seconds a joined connection may stay silent before it is dropped
JOIN_RATE = 20.0       # joins a second at most, per Pod (each is an exec on the API server)
SPARE_AGE = 30.0       # seconds a JOIN started ahead is kept (idle streams get cut)
CHUNK = 1 << 16
_PID = re.compile(rb"[0-9]{1,10}")


def announced_pids(pending: bytes, data: bytes) -> tuple[list[bytes], bytes]:
    """The pids in ``data`` (after ``pending``, the last call's unfinished line), and what is
    left unfinished. A line that is not a pid (the reader's heartbeat) is no pid."""
    *lines, rest = (pending + data).split(b"\n")
    return [line for line in lines if _PID.fullmatch(line)], rest[-16:]


class GatewayTunnel:
    """The connections of one Pod's relay carried to ``gateway`` (the ticket's socket here),
    from start() until close()."""

    def __init__(self, cluster: Cluster, pod: str, gateway: Path) -> None:
        self.cluster, self.pod, self.gateway = cluster, pod, gateway
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read, name=f"relay-{pod}", daemon=True)
        self._pending = b""
        self._lock = threading.Lock()
        self._joining: set[bytes] = set()     # pids joined, until their connection ends
        self._slots = threading.BoundedSemaphore(MAX_CHILDREN)
        self._next_join = 0.0                 # monotonic time the next join may start
        self._spare: tuple[Any, float] | None = None   # a JOIN started ahead, and when
        self._refilling = False
        # Why the relay cannot be read now ("" while it can): the sandbox says it in the
        # ticket's log, since the worker only sees its connections refused.
        self.trouble = ""

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

    # --- announcements ----------------------------------------------------------------

    def _read(self) -> None:
        """The announcements, read again after a stream that broke (quickly after one that
        lived a while), until close()."""
        delay = 0.2
        while not self._closed.is_set():
            started = time.monotonic()
            self._pending = b""
            try:
                code = self.cluster.exec(self.pod, ["sh", "-c", READ_ANNOUNCEMENTS],
                                         self._announced, stop=self._closed.is_set,
                                         container=RELAY)
                why = f"its reader exited {code}"
            except Exception as e:      # noqa: BLE001 - the stream broke or the Pod went
                why = f"{e.__class__.__name__}: {str(e)[:200]}"
            if self._closed.is_set():
                return
            lived = time.monotonic() - started > 10
            if lived:
                self.trouble = ""
            elif delay >= 1.6 and not self.trouble:   # again and again, not a cut once
                self.trouble = (f"the gateway's relay in Pod {self.pod} cannot be reached "
                                f"({why}): the worker's connections to it fail")
            delay = 0.2 if lived else min(delay * 2, 5.0)
            self._closed.wait(delay)

    def _announced(self, channel: int, data: bytes) -> None:
        if channel != STDOUT_CHANNEL:
            return
        pids, self._pending = announced_pids(self._pending, data)
        for pid in pids:
            with self._lock:
                if pid in self._joining:       # a child says it again until it is joined
                    continue
                self._joining.add(pid)
            threading.Thread(target=self._join, args=(pid,), daemon=True,
                             name=f"relay-{self.pod}-{pid.decode()}").start()

    # --- joins ------------------------------------------------------------------------

    def _join(self, child: bytes) -> None:
        try:
            with self._slots:
                self._pace()
                if self._closed.is_set():
                    return
                with self._joined(child) as ws:
                    _carry(ws, self.gateway, self._closed)
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

    def _joined(self, child: bytes) -> closing[Any]:
        """A JOIN told ``child``: the spare, while it is young and its stream still open,
        else a new one; a spare started for the next child."""
        with self._lock:
            spare, self._spare = self._spare, None
        self._refill_soon()
        if spare is not None:
            ws, made = spare
            try:
                ws.update(timeout=0)        # a stream cut while it waited says so here
                if ws.is_open() and time.monotonic() - made < SPARE_AGE:
                    ws.write_stdin(child + b"\n")
                    return closing(ws)
            except Exception:      # noqa: BLE001 - a dead spare: a new one instead
                pass
            ws.close()
        ws = self._open_join()
        try:
            ws.write_stdin(child + b"\n")
        except BaseException:
            ws.close()
            raise
        return closing(ws)

    def _open_join(self) -> Any:
        return self.cluster.stream(self.pod, ["sh", "-c", JOIN], container=RELAY, stdin=True)

    def _refill_soon(self) -> None:
        with self._lock:
            if self._refilling or self._spare is not None or self._closed.is_set():
                return
            self._refilling = True
        threading.Thread(target=self._refill, daemon=True, name=f"relay-{self.pod}-spare"
                         ).start()

    def _refill(self) -> None:
        try:
            ws = self._open_join()
        except Exception:      # noqa: BLE001 - the next join opens its own
            ws = None
        with self._lock:
            self._refilling = False
            if ws is not None and self._spare is None and not self._closed.is_set():
                self._spare, ws = (ws, time.monotonic()), None
        if ws is not None:
            ws.close()


def _carry(ws: Any, gateway: Path, closed: threading.Event) -> None:
    """Bytes both ways between the exec stream ``ws`` and a connection to ``gateway``, made
    once the worker has said something, until either end ends. One thread does both: the
    TLS connection under ``ws`` is not for two threads at once."""
    conn: socket.socket | None = None
    started = time.monotonic()
    try:
        while ws.is_open() and not closed.is_set():
            ws.update(timeout=0)      # every frame there is, those TLS holds decrypted too
            data = ws.read_channel(STDOUT_CHANNEL, timeout=0)
            if data:
                if conn is None:
                    conn = connect_unix(gateway, timeout=10)
                conn.sendall(data)
            elif conn is None and time.monotonic() - started > FIRST_BYTES:
                return
            if not ws.is_open():
                return
            for back in _replies(ws, conn):
                if not back:
                    return
                ws.write_stdin(back)
    finally:
        if conn is not None:
            conn.close()


def _replies(ws: Any, conn: socket.socket | None) -> Iterator[bytes]:
    """Waits (a second at most) for either end; what the gateway said meanwhile (b"": it
    hung up)."""
    watched = select.poll()
    watched.register(ws.sock.fileno(), select.POLLIN)
    if conn is not None:
        watched.register(conn.fileno(), select.POLLIN)
    for fd, _ in watched.poll(1000):
        if conn is not None and fd == conn.fileno():
            yield conn.recv(CHUNK)
