"""Nothing the gateway hands a worker holds the key, whatever the upstream sends: an upstream
that echoes the request's headers (the key the gateway put in) in its body, its headers and
an SSE stream that splits the key across chunks; an egress host that sends the key. No
Docker: the worker's side is a client on its unix socket."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from runner.gateway import SOCKET_NAME, Gateway
from runner.records.ledger import Ledger, default_prices
from tests.fakes.echo_upstream import EchoUpstream
from tests.integration.test_gateway import KEY, Records

MASKED = "*" * len(KEY)


def worker(sock: Path) -> httpx.Client:
    return httpx.Client(base_url="http://gateway", timeout=30,
                        transport=httpx.HTTPTransport(uds=str(sock)))


@pytest.fixture
def echo_upstream() -> Iterator[EchoUpstream]:
    with EchoUpstream() as upstream:
        yield upstream


def test_an_upstream_echoing_the_key_hands_the_worker_none_of_it(
        tmp_path: Path, echo_upstream: EchoUpstream) -> None:
    records = Records()
    with Gateway(tmp_path / "gw", ledger=Ledger(prices=default_prices()), egress=[],
                 upstream=echo_upstream.url, api_key=KEY) as gw, \
            gw.serve(records.caller("T1")) as d:
        with worker(d / SOCKET_NAME) as http:
            plain = http.post("/v1/messages", headers={"x-api-key": "placeholder"},
                              json={"model": "m", "max_tokens": 1, "messages": []})
            with http.stream("POST", "/v1/messages", headers={"x-api-key": "placeholder"},
                             json={"model": "m", "stream": True, "messages": []}) as stream:
                streamed = b"".join(stream.iter_raw())
                stream_headers = dict(stream.headers)
    # The upstream did get the key, and echoed it: in a header and in the body.
    assert echo_upstream.seen[0]["x-api-key"] == KEY
    assert plain.status_code == 200
    raw = plain.content.decode() + repr(dict(plain.headers))
    assert KEY not in raw and MASKED in plain.json()["headers"]["x-api-key"]
    assert plain.headers["x-echo-x-api-key"] == MASKED
    assert int(plain.headers["content-length"]) == len(plain.content)   # framing kept
    assert KEY.encode() not in streamed and KEY not in repr(stream_headers)
    assert b"event: echo" in streamed and MASKED.encode() in streamed
    # Said per call: the ticket's log tells of it.
    plain_call, streamed_call = records.calls
    assert plain_call.scrubbed == 2          # the body's copy and the X-Echo header's
    assert streamed_call.scrubbed == 1 and streamed_call.streamed


class KeyedSite:
    """An egress host that somehow holds the key and sends it back, gzip-encoded."""

    def __init__(self) -> None:
        import gzip

        payload = gzip.compress(f"here is {KEY} for you".encode())

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Encoding", "gzip")
                self.send_header("X-Leak", KEY)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]


def test_an_egress_host_sending_the_key_compressed_reaches_the_worker_scrubbed(
        tmp_path: Path) -> None:
    site = KeyedSite()
    records = Records()
    try:
        with Gateway(tmp_path / "gw", ledger=Ledger(prices={}),
                     egress=[f"127.0.0.1:{site.port}"], upstream="http://127.0.0.1:9",
                     api_key=KEY) as gw, gw.serve(records.caller("T1")) as d:
            import socket

            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(d / SOCKET_NAME))
                s.sendall(f"GET http://127.0.0.1:{site.port}/x HTTP/1.1\r\nHost: h\r\n"
                          "Connection: close\r\n\r\n".encode())
                got = b""
                while chunk := s.recv(65536):
                    got += chunk
    finally:
        site.server.shutdown()
        site.server.server_close()
    assert got.startswith(b"HTTP/1.1 200")
    assert KEY.encode() not in got
    assert b"here is " + MASKED.encode() + b" for you" in got   # decoded, then scrubbed
    assert b"content-encoding" not in got.lower()
    [connection] = records.connections
    assert connection.allowed and connection.scrubbed == 2


ECHO_CURL = r"""
api=http://127.0.0.1:3128/v1/messages
curl -s -H "x-api-key: $ANTHROPIC_API_KEY" -H 'content-type: application/json' \
  -D plain-headers.txt -d '{"model": "m", "max_tokens": 1, "messages": []}' $api > plain.json
curl -sN -H "x-api-key: $ANTHROPIC_API_KEY" -H 'content-type: application/json' \
  -d '{"model": "m", "stream": true, "messages": []}' $api > streamed.txt
"""


def test_a_command_tickets_curl_to_an_echoing_upstream_gets_no_key(
        tmp_path: Path, echo_upstream: EchoUpstream, worker_image: str) -> None:
    """What the issue measured, through a real worker: a command ticket's curl to the
    Messages API route, its upstream echoing the headers the gateway sent (the key)."""
    from tests.helpers import git, make_repo, run_json, write_phase

    repo = make_repo(tmp_path / "repo", {"README.md": "x\n"})
    phase = write_phase(tmp_path / "phase.yaml", {
        "name": "echo", "image": worker_image,
        "tickets": [{"id": "C", "agent": "command", "run": ECHO_CURL}]})
    env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": echo_upstream.url}
    proc, doc = run_json("run", str(phase), "--repo", str(repo), env=env)
    assert proc.returncode == 0, proc.stderr
    assert echo_upstream.seen and all(seen["x-api-key"] == KEY for seen in echo_upstream.seen)
    files = {name: git(repo, "show", f"{doc['target']}:{name}")
             for name in ("plain.json", "plain-headers.txt", "streamed.txt")}
    assert all(KEY not in text for text in files.values())
    assert MASKED in files["plain.json"] and MASKED in files["streamed.txt"]
    assert MASKED in files["plain-headers.txt"]          # the X-Echo header, scrubbed
    log = (Path(doc["run_dir"]) / "logs" / "C.log").read_text()
    assert "the API key came back from upstream in the response to POST /v1/messages" in log
