"""The egress route: CONNECT tunnels and absolute-form http requests, to the phase's
`egress:` entries only. A listed name is resolved here, on the host, and every address it
gives must be public (else DNS could point a listed name at the host or the metadata service);
the vetted address itself is what is connected to, never a second lookup."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from yarl import URL

from runner.gateway.allowlist import Allowlist, IPAddress, normal_host, split_hostport
from runner.gateway.calls import Caller, Connection
from runner.gateway.headers import forwarded
from runner.gateway.scrub import ScrubbedResponse, Scrubber

PREFIX = "runner gateway: "
RESOLVE_TIMEOUT = 10.0
CONNECT_TIMEOUT = 30.0
CHUNK = 64 << 10
INBOUND_LIMIT = 1 << 20      # the worker's bytes held for the far side before it is paused
# A forwarded response is decoded before the worker gets it: its encoding and length go.
_DECODED = ("content-encoding", "content-length")
METADATA = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254"))

Report = Callable[[Callable[[Connection], None], Connection], None]


def _text(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=PREFIX + message + "\n")


def not_public(ip: IPAddress) -> str:
    """Why a listed *name* may not lead to ``ip`` ("" when it may)."""
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for kind, test in (("a cloud metadata address", ip in METADATA),
                       ("unspecified", ip.is_unspecified), ("loopback", ip.is_loopback),
                       ("link-local", ip.is_link_local), ("multicast", ip.is_multicast),
                       ("private", ip.is_private), ("reserved", ip.is_reserved),
                       ("not a public address", not ip.is_global)):
        if test:
            return kind
    return ""


@dataclass(frozen=True)
class Vetted:
    addresses: tuple[str, ...] = ()     # to connect to, in order
    status: int = 0                     # when refused: the status and why
    reason: str = ""


class Egress:
    def __init__(self, allowlist: Allowlist, session: aiohttp.ClientSession,
                 report: Report) -> None:
        self.allowlist = allowlist
        self.session = session            # this socket's own: its connections end with it
        self._report = report

    async def vet(self, host: str, port: int) -> Vetted:
        target = _hostport(host, port)
        entry = self.allowlist.match(host, port)
        if entry is None:
            return Vetted(status=403, reason=(
                f"{target} is not in this phase's egress list; add it to egress: in the "
                f"phase file to let workers reach it"))
        if entry.ip is not None:
            return Vetted(addresses=(str(entry.ip),))   # the user listed this very address
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(normal_host(host), port, type=socket.SOCK_STREAM),
                RESOLVE_TIMEOUT)
        except (TimeoutError, OSError) as e:
            why = str(e) or "timed out"
            return Vetted(status=502, reason=f"cannot resolve {host}: {why}")
        addresses = tuple(dict.fromkeys(info[4][0] for info in infos))
        for address in addresses:
            kind = not_public(ipaddress.ip_address(address.partition("%")[0]))
            if kind:
                return Vetted(status=403, reason=(
                    f"{host} resolves to {address} ({kind}), which a listed name may not "
                    f"reach (DNS rebinding); list the IP literal {_hostport(address, port)} "
                    f"in egress: if that is really meant"))
        if not addresses:
            return Vetted(status=502, reason=f"cannot resolve {host}: no address")
        return Vetted(addresses=addresses)

    async def connect(self, request: web.BaseRequest, caller: Caller) -> web.StreamResponse:
        """CONNECT host:port: 200, then bytes both ways until either side closes."""
        start = time.monotonic()
        target = request.raw_path
        try:
            host, port = split_hostport(target, None)
        except ValueError as e:
            self._report(caller.on_connection, Connection(
                "CONNECT", target[:200], 0, False, f"bad CONNECT target: {e}"))
            return _text(400, f"CONNECT needs host:port: {e}")
        vetted = await self.vet(host, port)
        if vetted.status:
            self._report(caller.on_connection,
                         Connection("CONNECT", host, port, False, vetted.reason))
            return _text(vetted.status, vetted.reason)
        opened, address, failure = None, "", ""
        for address in vetted.addresses:
            try:
                opened = await asyncio.wait_for(asyncio.open_connection(address, port),
                                                CONNECT_TIMEOUT)
                break
            except (TimeoutError, OSError) as e:
                why = str(e) or "timed out"
                failure = f"cannot connect to {_hostport(address, port)}: {why}"
        if opened is None:
            self._report(caller.on_connection, Connection(
                "CONNECT", host, port, False, failure, address,
                duration=time.monotonic() - start))
            return _text(502, failure)
        reader, writer = opened
        up = down = 0
        # A tunnel's bytes are not scrubbed: they are the worker's own TLS session with a
        # host that never got the key (only the API route sends it), and holding back a
        # byte that might begin the key could stall a handshake waiting for it.
        response = web.StreamResponse(status=200, reason="Connection established")
        try:
            # A 2xx to CONNECT has no body by definition: aiohttp writes neither a length nor
            # chunking, so what is written next is raw tunnel bytes.
            await response.prepare(request)
            inbound = _Inbound(request.transport)
            # aiohttp treats CONNECT as an upgrade: the bytes after it are held for a parser
            # set on the protocol (as its websockets do), not put on request.content. Its
            # pure-Python parser does put there what came in the CONNECT's own read: first.
            inbound.feed_data(request.content.read_nowait())
            request.protocol.set_parser(inbound)   # type: ignore[arg-type]

            async def upward() -> None:
                nonlocal up
                while data := await inbound.read():
                    up += len(data)
                    writer.write(data)
                    await writer.drain()

            async def downward() -> None:
                nonlocal down
                while data := await reader.read(CHUNK):
                    down += len(data)
                    await response.write(data)

            pumps = [asyncio.ensure_future(upward()), asyncio.ensure_future(downward())]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        except (ConnectionError, OSError):
            pass                          # either side went away: the tunnel is over
        finally:
            writer.close()
            # The connection was the tunnel: no HTTP may follow on it.
            request.protocol.force_close()
            self._report(caller.on_connection, Connection(
                "CONNECT", host, port, True, "", address, up, down,
                time.monotonic() - start))
        return response

    async def forward(self, request: web.BaseRequest, caller: Caller,
                      scrubber: Scrubber) -> web.StreamResponse:
        """An absolute-form http request: sent on to the vetted address, streamed back."""
        start = time.monotonic()
        raw = request.raw_path
        try:
            url = urlsplit(raw)
            host, port = url.hostname or "", url.port or 80
            if url.scheme.lower() != "http" or not host:
                raise ValueError("only http://host[:port]/path is proxied this way; "
                                 "use CONNECT for https")
        except ValueError as e:
            self._report(caller.on_connection,
                         Connection("http", raw[:200], 0, False, f"bad request target: {e}"))
            return _text(400, f"bad request target: {e}")
        vetted = await self.vet(host, port)
        if vetted.status:
            self._report(caller.on_connection,
                         Connection("http", host, port, False, vetted.reason))
            return _text(vetted.status, vetted.reason)
        # What follows the authority, as the worker wrote it (no re-encoding).
        rest = raw[len(url.scheme) + 3 + len(url.netloc):] or "/"
        if not rest.startswith("/"):
            rest = "/" + rest
        # Expect was answered here (server.py); the far side gets the body straight away.
        headers = forwarded(request.headers, ("host", "expect"))
        headers.append(("Host", url.netloc.rpartition("@")[2]))
        body = _Body(request) if request.body_exists else None
        address, failure = "", ""
        upstream = None
        for address in vetted.addresses:
            try:
                upstream = await self.session.request(
                    request.method, URL(f"http://{_hostport(address, port)}{rest}",
                                        encoded=True),
                    headers=headers, data=body.chunks() if body else None,
                    allow_redirects=False)
                break
            except aiohttp.ClientConnectorError as e:
                failure = f"cannot connect to {_hostport(address, port)}: {e.os_error}"
                if body is not None and body.started:
                    break                 # its bytes are gone: no second address
            except (TimeoutError, aiohttp.ClientError, OSError) as e:
                failure = f"{_hostport(address, port)}: {str(e) or type(e).__name__}"
                break
        if upstream is None:
            self._report(caller.on_connection, Connection(
                "http", host, port, False, failure, address,
                body.size if body else 0, 0, time.monotonic() - start))
            return _text(502, failure)
        down = 0
        try:
            async with upstream:
                # Decoded here (the session decompresses), so that the scrub sees the bytes.
                response = ScrubbedResponse(scrubber, status=upstream.status,
                                            reason=upstream.reason,
                                            headers=forwarded(upstream.headers, _DECODED))
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    down += len(chunk)
                    await response.write(chunk)
                await response.write_eof()
                return response
        finally:
            self._report(caller.on_connection, Connection(
                "http", host, port, True, "", address, body.size if body else 0, down,
                time.monotonic() - start, scrubber.found))


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Body:
    """A request body streamed on, counted; ``started`` once a byte was taken."""

    def __init__(self, request: web.BaseRequest) -> None:
        self._content = request.content
        self.size = 0
        self.started = False

    async def chunks(self) -> AsyncIterator[bytes]:
        self.started = True
        async for chunk in self._content.iter_any():
            self.size += len(chunk)
            yield chunk


class _Inbound:
    """The worker's side of a tunnel: aiohttp's protocol feeds it the bytes that arrive
    (``feed_data``/``feed_eof``, the parser interface it calls), ``read`` hands them on.
    Past INBOUND_LIMIT held, the worker's socket is paused until the far side catches up."""

    def __init__(self, transport: asyncio.Transport | None) -> None:
        self._transport = transport
        self._chunks: deque[bytes] = deque()
        self._held = 0
        self._eof = False
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if data:
            self._chunks.append(bytes(data))
            self._held += len(data)
            if self._held > INBOUND_LIMIT and not self._paused and self._transport:
                self._transport.pause_reading()
                self._paused = True
            self._wake()
        return False, b""

    def feed_eof(self) -> None:
        self._eof = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def read(self) -> bytes:
        """The next bytes, b"" once the worker's side is closed."""
        while not self._chunks and not self._eof:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if not self._chunks:
            return b""
        data = self._chunks.popleft()
        self._held -= len(data)
        if self._paused and self._held <= INBOUND_LIMIT // 2 and self._transport:
            self._paused = False
            if not self._transport.is_closing():
                self._transport.resume_reading()
        return data
