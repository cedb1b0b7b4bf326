"""The gateway against real components, no Docker: the real anthropic SDK over the worker's
unix socket, the fake Messages API (or a small SSE upstream here) behind it, real TCP and HTTP
servers on 127.0.0.1 for egress. What the worker gets, what the upstream saw, what the ledger
and the caller's records say."""

from __future__ import annotations

import asyncio
import http.client
import http.server
import json
import os
import socket
import socketserver
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2 as httpx
import pytest
from aiohttp import web

from runner.gateway import SOCKET_NAME, ApiCall, Caller, Connection, Gateway
from runner.records.ledger import Ledger, Usage, default_prices
from tests.fakes.messages_api import FakeMessagesAPI, Reply, text

KEY = "sk-ant-real-key-0123456789"
PLACEHOLDER = "placeholder"
MODEL = "claude-haiku-4-5"


class Records:
    """One caller's on_call/on_connection records (appended from the gateway's thread)."""

    def __init__(self) -> None:
        self.calls: list[ApiCall] = []
        self.connections: list[Connection] = []

    def caller(self, ticket: str, max_tokens: int | None = None) -> Caller:
        return Caller(ticket, max_tokens, self.calls.append, self.connections.append)


def client(sock: Path) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url="http://gateway", api_key=PLACEHOLDER, max_retries=0,
        http_client=httpx.Client(transport=httpx.HTTPTransport(uds=str(sock))))


def ask(sock: Path, ticket: str) -> Any:
    return client(sock).messages.create(
        model=MODEL, max_tokens=100, system=f"Ticket: {ticket}",
        messages=[{"role": "user", "content": "go"}])


def raw_http(sock: Path) -> httpx.Client:
    return httpx.Client(base_url="http://gateway",
                        transport=httpx.HTTPTransport(uds=str(sock)))


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over the worker's socket: it sends an absolute URL as it is given."""

    def __init__(self, sock: Path) -> None:
        super().__init__("gateway", timeout=10)
        self._path = str(sock)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self._path)


def connect(sock: Path, target: str, then: bytes = b"") -> tuple[socket.socket, bytes, bytes]:
    """A CONNECT on the worker's socket: the open socket, the response head, and what came
    behind the head in the same reads (tunnelled bytes)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(str(sock))
    s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode() + then)
    head = b""
    while b"\r\n\r\n" not in head:
        data = s.recv(4096)
        if not data:
            break
        head += data
    head, _, rest = head.partition(b"\r\n\r\n")
    return s, head + b"\r\n\r\n", rest


def refused_connect(sock: Path, target: str) -> tuple[int, str]:
    """A CONNECT the gateway answers with an error: its status and body."""
    conn = UnixHTTPConnection(sock)
    conn.request("CONNECT", target, headers={"Host": target})
    response = conn.getresponse()
    body = response.read().decode()
    conn.close()
    return response.status, body


def recv_exactly(s: socket.socket, n: int, got: bytes = b"") -> bytes:
    while len(got) < n:
        data = s.recv(n - len(got))
        if not data:
            break
        got += data
    return got


@pytest.fixture
def ledger() -> Ledger:
    return Ledger(prices=default_prices())


@pytest.fixture
def fake() -> Iterator[FakeMessagesAPI]:
    usage = [(100, 50, 0, 0), (30, 7, 11, 13), (9, 3, 0, 0)]
    scripts = {t: [Reply([text("ok")], usage=u, stop_reason="end_turn") for u in usage]
               for t in ("T1", "T2")}
    with FakeMessagesAPI(scripts) as api:
        yield api


@pytest.fixture
def echo() -> Iterator[int]:
    """A TCP echo server on 127.0.0.1: its port."""

    class Echo(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            while data := self.request.recv(65536):
                self.request.sendall(data)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


class Site:
    """A plain HTTP server on 127.0.0.1 (a Maven repository, say): what it was asked."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                site.seen.append((self.command, self.path,
                                  {k.lower(): v for k, v in self.headers.items()}, body))
                data = b"<project>pom of " + self.path.encode() + b"</project>"
                self.send_response(200)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]


@pytest.fixture
def site() -> Iterator[Site]:
    s = Site()
    yield s
    s.server.shutdown()
    s.server.server_close()


class SseUpstream:
    """A streaming Messages API in aiohttp: message_start and a text delta, then it waits
    until the client says it has them (``release``) before message_delta and message_stop,
    so a gateway that buffered would be caught. Records each request's path and headers."""

    START_USAGE = {"input_tokens": 25, "output_tokens": 1,
                   "cache_creation_input_tokens": 5, "cache_read_input_tokens": 7}
    DELTA_USAGE = {"output_tokens": 42}

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.release = threading.Event()
        self.released_in_time: list[bool] = []
        self.finished = threading.Event()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        self.url = f"http://127.0.0.1:{self.port}"

    async def _start(self) -> int:
        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return site._server.sockets[0].getsockname()[1]   # type: ignore[union-attr]

    @staticmethod
    def _event(kind: str, data: dict[str, Any]) -> bytes:
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.path_qs, {k.lower(): v for k, v in request.headers.items()}))
        body = await request.json()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(self._event("message_start", {"message": {
            "id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": self.START_USAGE}}))
        await response.write(self._event("content_block_start", {
            "index": 0, "content_block": {"type": "text", "text": ""}}))
        await response.write(self._event("content_block_delta", {
            "index": 0, "delta": {"type": "text_delta", "text": "first"}}))
        await asyncio.sleep(0.05)
        await response.write(b"event: ping\ndata: {\"type\": \"ping\"}\n\n")
        released = await asyncio.to_thread(self.release.wait, 10)
        self.released_in_time.append(released)
        try:
            # Split mid-event, as TCP may: the meter must join the pieces.
            delta = self._event("message_delta", {
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": self.DELTA_USAGE})
            await response.write(self._event("content_block_stop", {"index": 0}))
            await response.write(delta[:20])
            await asyncio.sleep(0.05)
            await response.write(delta[20:])
            await response.write(self._event("message_stop", {}))
            await response.write_eof()
        finally:
            self.finished.set()
        return response

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


@pytest.fixture
def sse() -> Iterator[SseUpstream]:
    upstream = SseUpstream()
    yield upstream
    upstream.release.set()
    upstream.close()


def gateway(tmp_path: Path, ledger: Ledger, upstream: str, egress: list[str] | None = None,
            api_key: str | None = KEY) -> Gateway:
    return Gateway(tmp_path / "gw", ledger=ledger, egress=egress or [], upstream=upstream,
                   api_key=api_key)


# --- the API route -------------------------------------------------------------------------

def test_the_upstream_sees_the_real_key_and_usage_is_metered_to_the_sockets_ticket(
        tmp_path: Path, ledger: Ledger, fake: FakeMessagesAPI) -> None:
    one, two = Records(), Records()
    with gateway(tmp_path, ledger, fake.url) as gw, \
            gw.serve(one.caller("T1")) as d1, gw.serve(two.caller("T2")) as d2:
        first = ask(d1 / SOCKET_NAME, "T1")
        # T2's socket speaks for T2, whatever its request says it is.
        ask(d2 / SOCKET_NAME, "T1")
        ask(d2 / SOCKET_NAME, "T2")
    assert first.content[0].text == "ok"
    assert first.usage.input_tokens == 100 and first.usage.output_tokens == 50
    assert len(fake.requests) == 3
    for seen in fake.requests:
        assert seen.headers["x-api-key"] == KEY
        assert "authorization" not in seen.headers
        assert PLACEHOLDER not in json.dumps(seen.headers)
    assert ledger.ticket("T1").usage == Usage(100, 50, 0, 0)
    assert ledger.ticket("T1").calls == 1
    # T2's socket: the fake's second T1 reply, then its first T2 reply.
    assert ledger.ticket("T2").usage == Usage(30, 7, 11, 13) + Usage(100, 50, 0, 0)
    assert ledger.ticket("T2").cost == pytest.approx(
        Usage(130, 57, 11, 13).cost(default_prices()[MODEL]))
    [call] = one.calls
    assert (call.method, call.path, call.model, call.status, call.streamed, call.refused) == \
        ("POST", "/v1/messages", MODEL, 200, False, "")
    assert call.usage == Usage(100, 50, 0, 0) and 0 < call.latency < 10
    assert [c.usage for c in two.calls] == [Usage(30, 7, 11, 13), Usage(100, 50, 0, 0)]
    assert KEY not in repr(one.calls + two.calls)


def test_sse_passes_through_as_it_arrives_and_its_usage_is_metered(
        tmp_path: Path, ledger: Ledger, sse: SseUpstream) -> None:
    records = Records()
    with gateway(tmp_path, ledger, sse.url) as gw, gw.serve(records.caller("T1")) as d:
        kinds = []
        with client(d / SOCKET_NAME).messages.stream(
                model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "go"}],
                extra_query={"beta": "true"}) as stream:
            for event in stream:
                kinds.append(event.type)
                if event.type == "content_block_delta":
                    # The upstream holds the rest back until this: the first events came
                    # through while it was still answering.
                    assert not sse.finished.is_set()
                    sse.release.set()
            final = stream.get_final_message()
    assert sse.released_in_time == [True]
    assert "message_stop" in kinds
    assert final.content[0].text == "first"
    assert final.usage.output_tokens == 42
    path, headers = sse.seen[0]
    assert path == "/v1/messages?beta=true"
    assert headers["x-api-key"] == KEY
    expected = Usage(input=25, output=42, cache_write=5, cache_read=7)
    assert ledger.ticket("T1").usage == expected
    [call] = records.calls
    assert call.streamed and call.status == 200 and call.usage == expected


def test_a_worker_that_hangs_up_mid_stream_is_metered_for_what_it_got(
        tmp_path: Path, ledger: Ledger, sse: SseUpstream, fake: FakeMessagesAPI) -> None:
    records = Records()
    with gateway(tmp_path, ledger, sse.url) as gw, gw.serve(records.caller("T1")) as d:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(str(d / SOCKET_NAME))
        body = json.dumps({"model": MODEL, "max_tokens": 5, "stream": True,
                           "messages": [{"role": "user", "content": "go"}]}).encode()
        s.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: gateway\r\nContent-Type: "
                  b"application/json\r\nContent-Length: " + str(len(body)).encode()
                  + b"\r\n\r\n" + body)
        got = b""
        while b"text_delta" not in got:
            got += s.recv(4096)
        s.close()
        deadline = time.monotonic() + 10
        while not records.calls and time.monotonic() < deadline:
            time.sleep(0.02)
    [call] = records.calls
    assert call.streamed and call.usage == Usage(25, 1, 5, 7)
    assert ledger.ticket("T1").usage == Usage(25, 1, 5, 7)


def test_the_phase_budget_is_refused_before_forwarding(
        tmp_path: Path, fake: FakeMessagesAPI) -> None:
    ledger = Ledger(prices=default_prices(), budget_usd=0.5)
    ledger.record(ticket="other", model=MODEL, usage=Usage(input=1_000_000))   # $1 spent
    records = Records()
    with gateway(tmp_path, ledger, fake.url) as gw, gw.serve(records.caller("T1")) as d:
        with pytest.raises(anthropic.BadRequestError) as caught:
            ask(d / SOCKET_NAME, "T1")
    assert caught.value.status_code == 400
    assert caught.value.body["error"] == {
        "type": "invalid_request_error",
        "message": "runner gateway: the phase budget of $0.5 is spent"}
    assert fake.requests == []
    [call] = records.calls
    assert call.refused == "the phase budget of $0.5 is spent"
    assert call.status == 400 and call.model == MODEL and call.usage == Usage()
    assert ledger.ticket("T1").calls == 0


def test_a_tickets_max_tokens_is_refused_once_reached(
        tmp_path: Path, ledger: Ledger, fake: FakeMessagesAPI) -> None:
    records = Records()
    with gateway(tmp_path, ledger, fake.url) as gw, \
            gw.serve(records.caller("T1", max_tokens=150)) as d:
        ask(d / SOCKET_NAME, "T1")            # 150 tokens: at the limit now
        with pytest.raises(anthropic.BadRequestError) as caught:
            ask(d / SOCKET_NAME, "T1")
    message = "token budget exceeded: 150 tokens used of max_tokens 150"
    assert caught.value.body["error"]["message"] == f"runner gateway: {message}"
    assert len(fake.requests) == 1
    assert [c.refused for c in records.calls] == ["", message]


@pytest.mark.parametrize("method, path", [
    ("GET", "/v1/files"), ("POST", "/v1/complete"), ("GET", "/"), ("GET", "/v1/messages"),
    ("GET", "/v1/models/%2e%2e"), ("GET", "/v1/models/..%2Fadmin"),
    ("POST", "/v1/messages/../admin"),
])
def test_other_paths_get_an_anthropic_shaped_404(
        tmp_path: Path, ledger: Ledger, fake: FakeMessagesAPI, method: str, path: str) -> None:
    records = Records()
    with gateway(tmp_path, ledger, fake.url) as gw, gw.serve(records.caller("T1")) as d:
        with raw_http(d / SOCKET_NAME) as http:
            # httpx would tidy the dot-segments away: send the path as written.
            response = http.request(method, "http://gateway/",
                                    extensions={"target": path.encode()})
    assert response.status_code == 404
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == "not_found_error"
    assert error["error"]["message"].startswith("runner gateway: ")
    assert "is not a Messages API path" in error["error"]["message"]
    assert fake.requests == []
    assert records.calls[0].status == 404 and records.calls[0].refused


def test_without_a_key_api_calls_get_a_clear_error(
        tmp_path: Path, ledger: Ledger, fake: FakeMessagesAPI) -> None:
    records = Records()
    with gateway(tmp_path, ledger, fake.url, api_key="") as gw, \
            gw.serve(records.caller("T1")) as d:
        with pytest.raises(anthropic.AuthenticationError) as caught:
            ask(d / SOCKET_NAME, "T1")
    assert "no ANTHROPIC_API_KEY" in caught.value.body["error"]["message"]
    assert fake.requests == []


def test_an_unreachable_upstream_is_a_502(tmp_path: Path, ledger: Ledger) -> None:
    records = Records()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with gateway(tmp_path, ledger, f"http://127.0.0.1:{port}") as gw, \
            gw.serve(records.caller("T1")) as d:
        with pytest.raises(anthropic.InternalServerError) as caught:
            ask(d / SOCKET_NAME, "T1")
    assert caught.value.status_code == 502
    assert caught.value.body["error"]["type"] == "api_error"
    assert "cannot be reached" in caught.value.body["error"]["message"]
    assert KEY not in json.dumps(caught.value.body)
    assert records.calls[0].status == 502
    assert ledger.ticket("T1").calls == 0


def test_a_body_over_the_limit_is_413(
        tmp_path: Path, ledger: Ledger, fake: FakeMessagesAPI) -> None:
    with gateway(tmp_path, ledger, fake.url) as gw, gw.serve(Records().caller("T1")) as d:
        with raw_http(d / SOCKET_NAME) as http:
            response = http.post("/v1/messages", content=b"x" * (33 << 20))
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "request_too_large"
    assert fake.requests == []


# --- egress --------------------------------------------------------------------------------

def test_connect_to_a_listed_ip_tunnels_bytes_both_ways(
        tmp_path: Path, ledger: Ledger, fake: FakeMessagesAPI, echo: int) -> None:
    records = Records()
    with gateway(tmp_path, ledger, fake.url, [f"127.0.0.1:{echo}"]) as gw, \
            gw.serve(records.caller("T1")) as d:
        # Bytes sent right behind the CONNECT (no wait for the 200) arrive too.
        s, head, rest = connect(d / SOCKET_NAME, f"127.0.0.1:{echo}", then=b"early;")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"Transfer-Encoding" not in head and b"Content-Length" not in head
        assert recv_exactly(s, 6, rest) == b"early;"
        payload = os.urandom(3 << 20)      # past the pause limit: flow control both ways
        sender = threading.Thread(target=s.sendall, args=(payload,))
        sender.start()
        assert recv_exactly(s, len(payload)) == payload
        sender.join()
        s.close()
        deadline = time.monotonic() + 10
        while not records.connections and time.monotonic() < deadline:
            time.sleep(0.02)
    [record] = records.connections
    assert (record.kind, record.host, record.port, record.allowed, record.reason,
            record.address) == ("CONNECT", "127.0.0.1", echo, True, "", "127.0.0.1")
    assert record.bytes_up == record.bytes_down == len(payload) + 6
    assert record.duration > 0


def test_absolute_form_http_to_a_listed_ip_is_forwarded(
        tmp_path: Path, ledger: Ledger, fake: FakeMessagesAPI, site: Site) -> None:
    records = Records()
    target = f"127.0.0.1:{site.port}"
    with gateway(tmp_path, ledger, fake.url, [target]) as gw, \
            gw.serve(records.caller("T1")) as d:
        conn = UnixHTTPConnection(d / SOCKET_NAME)
        conn.request("GET", f"http://{target}/maven2/a/b/1.0/b-1.0.pom?x=1",
                     headers={"Proxy-Authorization": "Basic c2VjcmV0", "X-Mine": "kept"})
        response = conn.getresponse()
        body = response.read()
        conn.request("POST", f"http://{target}/upload", body=b"payload bytes")
        posted = conn.getresponse()
        posted.read()
        conn.close()
    assert response.status == 200 and posted.status == 200
    assert body == b"<project>pom of /maven2/a/b/1.0/b-1.0.pom?x=1</project>"
    (method, path, headers, _), (_, _, _, sent) = site.seen
    assert (method, path) == ("GET", "/maven2/a/b/1.0/b-1.0.pom?x=1")
    assert headers["host"] == target and headers["x-mine"] == "kept"
    assert "proxy-authorization" not in headers and "x-api-key" not in headers
    assert sent == b"payload bytes"
    first, second = records.connections
    assert (first.kind, first.host, first.port, first.allowed, first.address) == \
        ("http", "127.0.0.1", site.port, True, "127.0.0.1")
    assert first.bytes_down == len(body) and second.bytes_up == len(b"payload bytes")


def test_unlisted_hosts_get_403_naming_them(
        tmp_path: Path, ledger: Ledger, fake: FakeMessagesAPI, site: Site) -> None:
    records = Records()
    fake_port = int(fake.url.rsplit(":", 1)[1])
    with gateway(tmp_path, ledger, fake.url, ["maven.corp.example"]) as gw, \
            gw.serve(records.caller("T1")) as d:
        status, body = refused_connect(d / SOCKET_NAME, "example.com:443")
        # The upstream's own address is egress like any other: not listed, not reached.
        status2, body2 = refused_connect(d / SOCKET_NAME, f"127.0.0.1:{fake_port}")
        conn = UnixHTTPConnection(d / SOCKET_NAME)
        conn.request("GET", f"http://127.0.0.1:{site.port}/x")
        response = conn.getresponse()
        body3 = response.read().decode()
        conn.close()
    assert status == 403
    assert body == ("runner gateway: example.com:443 is not in this phase's egress list; add "
                    "it to egress: in the phase file to let workers reach it\n")
    assert status2 == 403 and f"127.0.0.1:{fake_port} is not in" in body2
    assert response.status == 403 and f"127.0.0.1:{site.port} is not in" in body3
    assert site.seen == [] and fake.requests == []
    assert [(c.kind, c.host, c.allowed) for c in records.connections] == [
        ("CONNECT", "example.com", False), ("CONNECT", "127.0.0.1", False),
        ("http", "127.0.0.1", False)]
    assert all("egress list" in c.reason for c in records.connections)


def test_a_listed_name_resolving_to_loopback_is_refused_but_the_listed_ip_works(
        tmp_path: Path, ledger: Ledger, fake: FakeMessagesAPI, echo: int) -> None:
    records = Records()
    with gateway(tmp_path, ledger, fake.url, [f"localhost:{echo}"]) as gw, \
            gw.serve(records.caller("T1")) as d:
        status, body = refused_connect(d / SOCKET_NAME, f"localhost:{echo}")
    assert status == 403
    assert "(loopback)" in body and "DNS rebinding" in body
    assert f"list the IP literal 127.0.0.1:{echo} in egress:" in body \
        or f"list the IP literal [::1]:{echo} in egress:" in body
    [record] = records.connections
    assert not record.allowed and "DNS rebinding" in record.reason

    records = Records()
    with gateway(tmp_path, ledger, fake.url, [f"127.0.0.1:{echo}"]) as gw, \
            gw.serve(records.caller("T1")) as d:
        s, head, rest = connect(d / SOCKET_NAME, f"127.0.0.1:{echo}")
        s.sendall(b"ping")
        assert recv_exactly(s, 4, rest) == b"ping"
        s.close()
    assert head.startswith(b"HTTP/1.1 200 ")


def test_closing_a_callers_socket_ends_its_open_tunnels(
        tmp_path: Path, ledger: Ledger, fake: FakeMessagesAPI, echo: int) -> None:
    records = Records()
    with gateway(tmp_path, ledger, fake.url, [f"127.0.0.1:{echo}"]) as gw:
        with gw.serve(records.caller("T1")) as d:
            s, head, rest = connect(d / SOCKET_NAME, f"127.0.0.1:{echo}")
            assert head.startswith(b"HTTP/1.1 200 ")
            s.sendall(b"x")
            assert recv_exactly(s, 1, rest) == b"x"
        assert not d.exists()
        assert s.recv(10) == b""          # the gateway hung up on it
        s.close()
    [record] = records.connections
    assert record.allowed and record.bytes_up == 1


# --- robustness, the socket itself ---------------------------------------------------------

def test_garbage_on_one_socket_does_not_stop_another(
        tmp_path: Path, ledger: Ledger, fake: FakeMessagesAPI) -> None:
    hostile, good = Records(), Records()
    with gateway(tmp_path, ledger, fake.url) as gw, \
            gw.serve(hostile.caller("T1")) as bad, gw.serve(good.caller("T2")) as ok:
        sock = str(bad / SOCKET_NAME)
        attacks = [b"\x00\xff\xfe garbage\r\n\r\n" * 100,
                   b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
                   b"GET / HTTP/1.1\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(500))
                   + b"\r\n",
                   b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab",
                   b"CONNECT nowhere HTTP/1.1\r\nHost: nowhere\r\n\r\n",
                   b"GET ftp://x/ HTTP/1.1\r\nHost: x\r\n\r\n"]
        stuck = []
        for attack in attacks:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            s.connect(sock)
            s.sendall(attack)
            stuck.append(s)               # left open, some mid-request
        for s in stuck[:3]:
            assert s.recv(100).split(b"\r\n")[0].endswith(b" 400 Bad Request")
        # The good worker is served meanwhile, and the hostile one's next request too.
        assert ask(ok / SOCKET_NAME, "T2").usage.input_tokens == 100
        assert ask(bad / SOCKET_NAME, "T1").usage.input_tokens == 100
        for s in stuck:
            s.close()
    assert [c.refused for c in good.calls] == [""]


def test_socket_permissions_and_serve_exit_removes_the_directory(
        tmp_path: Path, ledger: Ledger, fake: FakeMessagesAPI) -> None:
    with gateway(tmp_path, ledger, fake.url) as gw:
        root = tmp_path / "gw"
        assert stat.S_IMODE(root.stat().st_mode) == 0o700
        with gw.serve(Records().caller("a-ticket-id-that-is-rather-long" * 3)) as d1, \
                gw.serve(Records().caller("T2")) as d2:
            assert (d1.parent, d1.name, d2.name) == (root, "w1", "w2")
            assert stat.S_IMODE(d1.stat().st_mode) == 0o711
            sock = d1 / SOCKET_NAME
            assert stat.S_ISSOCK(sock.stat().st_mode)
            assert stat.S_IMODE(sock.stat().st_mode) == 0o666
            assert os.listdir(d1) == [SOCKET_NAME]
        assert not d1.exists() and not d2.exists()
    assert not root.exists()


def test_a_directory_path_longer_than_sun_path_works(
        tmp_path: Path, ledger: Ledger, fake: FakeMessagesAPI) -> None:
    deep = tmp_path / ("d" * 100) / ("e" * 100)
    deep.mkdir(parents=True)
    records = Records()
    with Gateway(deep / "gateway", ledger=ledger, egress=[], upstream=fake.url,
                 api_key=KEY) as gw, gw.serve(records.caller("T1")) as d:
        sock = d / SOCKET_NAME
        assert len(str(sock)) > 200 and sock.exists()
        # A client connects through a short path too: the worker's mount is short.
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert ask(Path(f"/proc/self/fd/{fd}/{SOCKET_NAME}"), "T1").usage.output_tokens \
                == 50
        finally:
            os.close(fd)
    assert records.calls[0].status == 200


def test_a_worker_holding_too_many_connections_is_cut_off_not_the_others(
        tmp_path: Path, ledger: Ledger, fake: FakeMessagesAPI) -> None:
    from runner.gateway.server import MAX_CONNECTIONS

    with gateway(tmp_path, ledger, fake.url) as gw, \
            gw.serve(Records().caller("T1")) as bad, gw.serve(Records().caller("T2")) as ok:
        held = []
        for _ in range(MAX_CONNECTIONS):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(bad / SOCKET_NAME))
            s.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n")   # never finished
            held.append(s)
        time.sleep(0.2)
        extra = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        extra.settimeout(5)
        extra.connect(str(bad / SOCKET_NAME))
        assert extra.recv(10) == b""      # closed at once
        extra.close()
        assert ask(ok / SOCKET_NAME, "T2").usage.input_tokens == 100
        for s in held:
            s.close()
        time.sleep(0.2)
        assert ask(bad / SOCKET_NAME, "T1").usage.input_tokens == 100


def test_expect_100_continue_is_answered(
        tmp_path: Path, ledger: Ledger, fake: FakeMessagesAPI, site: Site) -> None:
    target = f"127.0.0.1:{site.port}"
    with gateway(tmp_path, ledger, fake.url, [target]) as gw, \
            gw.serve(Records().caller("T1")) as d:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(str(d / SOCKET_NAME))
        s.sendall(f"POST http://{target}/up HTTP/1.1\r\nHost: {target}\r\nContent-Length: 4"
                  f"\r\nExpect: 100-continue\r\n\r\n".encode())
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"body")
        answer = s.recv(4096)
        s.close()
    assert answer.startswith(b"HTTP/1.1 200 ")
    [(method, path, headers, body)] = site.seen
    assert (method, path, body) == ("POST", "/up", b"body") and "expect" not in headers


def test_stopping_the_gateway_closes_the_sockets_still_served(
        tmp_path: Path, ledger: Ledger, fake: FakeMessagesAPI, echo: int) -> None:
    gw = gateway(tmp_path, ledger, fake.url, [f"127.0.0.1:{echo}"]).__enter__()
    served = gw.serve(Records().caller("T1"))
    d = served.__enter__()
    s, head, _ = connect(d / SOCKET_NAME, f"127.0.0.1:{echo}")
    assert head.startswith(b"HTTP/1.1 200 ")
    start = time.monotonic()
    gw.__exit__(None, None, None)
    assert s.recv(10) == b""
    served.__exit__(None, None, None)     # after the gateway: nothing left to close
    assert time.monotonic() - start < 5
    assert not (tmp_path / "gw").exists()
    s.close()
