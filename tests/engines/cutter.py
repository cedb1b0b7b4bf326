"""A TCP proxy of the tests' own between runner and an engine (the test cluster's API server,
the test Docker engine), that breaks streams on command while the engine stays up: what a
load balancer's idle timeout or an API server rolling does to a real one.

It carries each connection as it is, but for TLS: for an HTTPS upstream it ends the client's
TLS with a throwaway certificate of its own (the test cluster's kubeconfig skips
verification) and speaks TLS to the upstream, so that it can see which connections were
upgraded (a request head saying ``Upgrade:``: an exec or attach stream, a websocket) and what
comes back on them. Commands:

- ``cut_when(marker)``: the next upgraded connection on which the engine sends ``marker``
  (a line a ticket's script prints, a git bundle's signature) is closed at once, both ways;
- ``cut_after_sent(size)``: the next upgraded connection on which runner has sent more than
  ``size`` bytes (an upload: what a client sends on a websocket is masked, so it is told by
  its size, not its bytes) is closed;
- ``drop(seconds)``: every connection is closed, and new ones are closed as they come, for
  that long (the engine gone, as far as runner can tell).

Each cut is recorded (``cuts``: the request line of the stream it closed).
"""

from __future__ import annotations

import asyncio
import re
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

UPGRADE = re.compile(rb"\r\nupgrade:", re.IGNORECASE)
REQUEST_LINE = re.compile(rb"(?:GET|POST|PUT|DELETE|HEAD|PATCH) (\S{1,300}) HTTP/1\.1\r\n")


@dataclass
class _Carried:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    upgraded: bool = False
    request: str = ""
    sent: int = 0            # bytes runner sent since its upgrade (and the request's head)
    tail: bytes = b""        # the end of what the engine sent: a marker split in two

    def close(self) -> None:
        for end in (self.client, self.upstream):
            end.transport.abort()


@dataclass
class CuttingProxy:
    """The proxy, on 127.0.0.1:``port``, its loop on a thread of its own (asyncio: TLS on
    both ends of each connection)."""

    upstream: tuple[str, int]
    tls: bool = False
    cuts: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._open: list[_Carried] = []
        self._markers: list[bytes] = []
        self._sizes: list[int] = []
        self._dropped_until = 0.0
        self._server_tls: ssl.SSLContext | None = None
        self._client_tls: ssl.SSLContext | None = None
        if self.tls:
            self._server_tls = _throwaway_context()
            self._client_tls = ssl.create_default_context()
            self._client_tls.check_hostname = False
            self._client_tls.verify_mode = ssl.CERT_NONE
        self._loop = asyncio.new_event_loop()
        listening = threading.Event()
        threading.Thread(target=self._serve, args=(listening,), daemon=True,
                         name="cutter").start()
        listening.wait(10)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'tcp'}://127.0.0.1:{self.port}"

    def cut_when(self, marker: bytes) -> None:
        with self._lock:
            self._markers.append(marker)

    def cut_after_sent(self, size: int) -> None:
        with self._lock:
            self._sizes.append(size)

    def drop(self, seconds: float) -> None:
        with self._lock:
            self._dropped_until = time.monotonic() + seconds
            carried, self._open = self._open, []
        for one in carried:
            self._loop.call_soon_threadsafe(one.close)

    @property
    def dropping(self) -> bool:
        return time.monotonic() < self._dropped_until

    def close(self) -> None:
        self.drop(0)
        self._loop.call_soon_threadsafe(self._loop.stop)

    def _serve(self, listening: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(
            self._carry, "127.0.0.1", 0, ssl=self._server_tls))
        self.port = server.sockets[0].getsockname()[1]
        listening.set()
        self._loop.run_forever()

    async def _carry(self, client_in: asyncio.StreamReader,
                     client_out: asyncio.StreamWriter) -> None:
        if self.dropping:
            client_out.transport.abort()
            return
        try:
            upstream_in, upstream_out = await asyncio.wait_for(asyncio.open_connection(
                *self.upstream, ssl=self._client_tls), 10)
        except (TimeoutError, OSError, ssl.SSLError):
            client_out.transport.abort()
            return
        one = _Carried(client_out, upstream_out)
        with self._lock:
            self._open.append(one)
        try:
            await asyncio.gather(self._pump(one, client_in, upstream_out, outward=True),
                                 self._pump(one, upstream_in, client_out, outward=False))
        finally:
            with self._lock:
                if one in self._open:
                    self._open.remove(one)
            one.close()

    async def _pump(self, one: _Carried, source: asyncio.StreamReader,
                    sink: asyncio.StreamWriter, *, outward: bool) -> None:
        """Bytes one way: the client's to the engine (``outward``) or back."""
        try:
            while data := await source.read(1 << 16):
                if outward:
                    self._looked_at_request(one, data)
                if one.upgraded and (self._oversent(one, data) if outward
                                     else self._marked(one, data)):
                    self.cuts.append(one.request)
                    break
                sink.write(data)
                await sink.drain()
        except (OSError, ssl.SSLError):
            pass
        one.close()

    @staticmethod
    def _looked_at_request(one: _Carried, data: bytes) -> None:
        if one.upgraded:
            return
        if found := REQUEST_LINE.search(data):
            one.request = found.group(0).decode("ascii", "replace").strip()
        if UPGRADE.search(data):
            one.upgraded = True
            one.sent = 0

    def _oversent(self, one: _Carried, data: bytes) -> bool:
        one.sent += len(data)
        with self._lock:
            for size in self._sizes:
                if one.sent > size:
                    self._sizes.remove(size)
                    return True
        return False

    def _marked(self, one: _Carried, data: bytes) -> bool:
        seen = one.tail + data
        with self._lock:
            for marker in self._markers:
                if marker in seen:
                    self._markers.remove(marker)
                    return True
            longest = max((len(m) for m in self._markers), default=1)
        one.tail = seen[-(longest - 1):] if longest > 1 else b""
        return False


def _throwaway_context() -> ssl.SSLContext:
    """A server context with a self-signed certificate made now (openssl, Debian's)."""
    folder = Path(tempfile.mkdtemp(prefix="runner-cutter-"))
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context
