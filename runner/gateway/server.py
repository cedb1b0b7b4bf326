"""The gateway's asyncio side: one loop in a daemon thread, one aiohttp low-level server per
worker socket, and the one handler that sends each request down its route by its form."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from runner.gateway.allowlist import Allowlist
from runner.gateway.api import ApiRoute
from runner.gateway.cache import Mirrors
from runner.gateway.cache.mirror import Mirror
from runner.gateway.cache.route import HANDLERS
from runner.gateway.calls import WHOAMI_PATH, Caller
from runner.gateway.egress import Egress
from runner.gateway.scrub import Scrubber, scrubbed
from runner.gateway.sockets import bind_unix
from runner.records import Ledger

T = TypeVar("T")
CLOSE_TIMEOUT = 5.0
# Connections one socket may hold at once: a worker that opens thousands (idle, or never
# finishing a request) must not take the runner's file descriptors from the others.
MAX_CONNECTIONS = 128
# A worker is hostile: what aiohttp would log about its garbage is not the user's terminal's
# business. What the gateway has to say goes through on_call/on_connection.
_QUIET = logging.getLogger("runner.gateway.aiohttp")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False

_SERVER_LIMITS: dict[str, Any] = dict(
    handler_cancellation=True,   # a worker that hangs up cancels its upstream call
    keepalive_timeout=75.0,      # an idle connection is not kept for an hour
    max_line_size=8190, max_field_size=8190, max_headers=128,   # huge headers: 400
    logger=_QUIET, access_log=None,
)


_LOG = logging.getLogger("runner.gateway")


def _report(callback: Callable[[T], None], record: T) -> None:
    """A caller's callback; one that raises must not take the gateway's loop with it, nor
    go unseen (it is runner's own bug: said on stderr)."""
    try:
        callback(record)
    except Exception:     # noqa: BLE001 - ours to fix, the gateway goes on
        _LOG.exception("runner gateway: recording %s failed", type(record).__name__)


class _Refused(asyncio.Protocol):
    """A connection past MAX_CONNECTIONS: closed at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class Served:
    """One worker's socket: its server, its own egress session, its requests in flight."""

    def __init__(self, caller: Caller, web_server: web.Server, egress: aiohttp.ClientSession,
                 server: asyncio.AbstractServer) -> None:
        self.caller = caller
        self.web_server = web_server
        self.egress = egress
        self.server = server
        self.tasks: set[asyncio.Task[Any]] = set()


class GatewayLoop:
    def __init__(self, *, ledger: Ledger, allowlist: Allowlist, upstream: str,
                 api_key: str | None, mirrors: Mirrors | None = None) -> None:
        self.ledger = ledger
        self.allowlist = allowlist
        self.upstream = upstream
        self._key = api_key
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="runner-gateway",
                                        daemon=True)
        self._served: set[Served] = set()
        self._api: ApiRoute | None = None
        self._mirrors = mirrors
        self._mirror: Mirror | None = None

    def _call(self, coro: Any, timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self._thread.start()
        self._call(self._start())

    async def _start(self) -> None:
        # trust_env: the runner's own proxy settings apply to its API calls, as they do for
        # the SDK. Decompressed here so usage can be read; the worker gets plain bytes.
        session = aiohttp.ClientSession(
            trust_env=True, timeout=aiohttp.ClientTimeout(total=None, sock_connect=30,
                                                           sock_read=600))
        self._api = ApiRoute(ledger=self.ledger, upstream=self.upstream, api_key=self._key,
                             session=session, report=_report)
        if self._mirrors is not None:
            # Upstreams over TLS with this machine's trust store and proxy settings, as its
            # own pip or cargo would reach them; nothing of a worker's request goes along.
            self._mirror = Mirror(self._mirrors, aiohttp.ClientSession(
                trust_env=True, timeout=aiohttp.ClientTimeout(total=None, sock_connect=30,
                                                               sock_read=300)), _report,
                HANDLERS)

    def stop(self) -> None:
        try:
            self._call(self._stop(), CLOSE_TIMEOUT * 2)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(CLOSE_TIMEOUT)
            if not self._thread.is_alive():
                self.loop.close()

    async def _stop(self) -> None:
        await asyncio.gather(*(self._close(s) for s in list(self._served)),
                             return_exceptions=True)
        if self._api is not None:
            await self._api.session.close()
        if self._mirror is not None:
            await self._mirror.session.close()

    def distribution(self, url: str, sha256: str | None) -> Path:
        if self._mirror is None:
            raise RuntimeError("the phase has no cache")
        from runner.gateway.cache.mirror import Unavailable

        try:
            path, _ = self._call(self._mirror.distribution(url, sha256), 3600)
        except Unavailable as e:
            raise RuntimeError(e.reason) from e
        return path

    def open(self, directory: Path, name: str, caller: Caller) -> Served:
        sock = bind_unix(directory, name)
        try:
            return self._call(self._open(sock, caller))
        except BaseException:
            sock.close()
            raise

    async def _open(self, sock: socket.socket, caller: Caller) -> Served:
        assert self._api is not None
        api, mirror = self._api, self._mirror
        # Egress never uses the host's proxy settings: it connects to vetted addresses.
        # Bytes come back decompressed, so that the key's scrub sees them (scrub.py).
        session = aiohttp.ClientSession(
            trust_env=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=600))
        egress = Egress(self.allowlist, session, _report)
        key = (self._key or "").encode()
        served: Served | None = None

        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            task = asyncio.current_task()
            assert task is not None and served is not None
            served.tasks.add(task)
            scrubber = Scrubber(key)
            try:
                return await scrubbed(request, await route(request, scrubber), scrubber)
            finally:
                served.tasks.discard(task)

        async def route(request: web.BaseRequest, scrubber: Scrubber) -> web.StreamResponse:
            if request.method == "GET" and request.raw_path == WHOAMI_PATH:
                # The self-test asks: is this the worker's own socket?
                return web.Response(text=f"{caller.ticket}\n")
            if request.headers.get("Expect", "").lower() == "100-continue" \
                    and request.version >= (1, 1):
                # What aiohttp's router would do; its low-level server leaves it to us.
                await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            if request.method == "CONNECT":
                return await egress.connect(request, caller)
            if mirror is not None and (path := mirror.own_path(request.raw_path)):
                return await mirror.handle(request, path, caller, scrubber)
            if request.raw_path.startswith("/"):
                return await api.handle(request, caller, scrubber)
            if request.raw_path[:7].lower() == "http://":
                return await egress.forward(request, caller, scrubber)
            return web.Response(status=400, text="runner gateway: expected an API path, "
                                                 "CONNECT host:port or http://…\n")

        web_server = web.Server(handle, **_SERVER_LIMITS)

        def protocol() -> asyncio.Protocol:
            if len(web_server.connections) >= MAX_CONNECTIONS:
                return _Refused()
            return web_server()

        server = await self.loop.create_unix_server(protocol, sock=sock)
        served = Served(caller, web_server, session, server)
        self._served.add(served)
        return served

    def close(self, served: Served) -> None:
        if served in self._served and self.loop.is_running():   # else stop() closed it
            self._call(self._close(served), CLOSE_TIMEOUT * 2)

    async def _close(self, served: Served) -> None:
        """Stop accepting, end every open connection of this socket (tunnels and streams
        too), then its egress session."""
        self._served.discard(served)
        served.server.close()
        for handler in list(served.web_server.connections):
            handler.force_close()
        for task in list(served.tasks):
            task.cancel()
        try:
            await asyncio.wait_for(served.web_server.shutdown(0.5), CLOSE_TIMEOUT)
            await asyncio.wait_for(served.server.wait_closed(), CLOSE_TIMEOUT)
        except TimeoutError:
            pass
        await served.egress.close()
