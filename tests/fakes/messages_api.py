"""A fake Anthropic Messages API over real HTTP on 127.0.0.1, for the real SDK to talk to.

Each ticket gets a scripted conversation (found by the `Ticket: <id>` line of the system
prompt; a review of it by `Review of ticket: <id>`, scripted as `review:<id>`): a list of
replies and failures served in order. Every request is recorded.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_ids = itertools.count(1)


def tool(name: str, **args: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": f"toolu_{next(_ids):04d}", "name": name, "input": args}


def text(words: str) -> dict[str, Any]:
    return {"type": "text", "text": words}


@dataclass(frozen=True)
class Reply:
    content: list[dict[str, Any]]
    usage: tuple[int, int, int, int] = (100, 50, 0, 0)   # input, output, cache write, read
    stop_reason: str = "tool_use"


@dataclass(frozen=True)
class Fail:
    status: int
    message: str
    kind: str = "api_error"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Recorded:
    ticket: str
    headers: dict[str, str]
    body: dict[str, Any]


class FakeMessagesAPI:
    def __init__(self, scripts: dict[str, list[Reply | Fail]]) -> None:
        self.scripts = {ticket: list(steps) for ticket, steps in scripts.items()}
        self.requests: list[Recorded] = []
        self.sent_usage: dict[str, list[tuple[int, int, int, int]]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeMessagesAPI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def requests_for(self, ticket: str) -> list[Recorded]:
        return [r for r in self.requests if r.ticket == ticket]

    def _next(self, ticket: str, headers: dict[str, str], body: dict[str, Any]):
        with self._lock:
            self.requests.append(Recorded(ticket, headers, body))
            steps = self.scripts.get(ticket)
            if not steps:
                return Fail(500, f"the fake has no more replies for ticket {ticket!r}")
            step = steps.pop(0)
            if isinstance(step, Reply):
                self.sent_usage.setdefault(ticket, []).append(step.usage)
            return step

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:   # keep test output quiet
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                system = body.get("system") or ""
                if isinstance(system, list):
                    system = " ".join(block.get("text", "") for block in system)
                found = re.search(r"^(Ticket|Review of ticket): (\S+)", system, re.M)
                key = "?" if not found else (
                    found.group(2) if found.group(1) == "Ticket" else f"review:{found.group(2)}")
                step = fake._next(key,
                                  {k.lower(): v for k, v in self.headers.items()}, body)
                if isinstance(step, Fail):
                    self._send(step.status, {"type": "error", "error": {
                        "type": step.kind, "message": step.message}}, step.headers)
                    return
                cache_write, cache_read = step.usage[2], step.usage[3]
                self._send(200, {
                    "id": f"msg_{next(_ids):04d}", "type": "message", "role": "assistant",
                    "model": body["model"], "content": step.content,
                    "stop_reason": step.stop_reason, "stop_sequence": None,
                    "usage": {"input_tokens": step.usage[0], "output_tokens": step.usage[1],
                              "cache_creation_input_tokens": cache_write,
                              "cache_read_input_tokens": cache_read}})

            def _send(self, status: int, payload: dict[str, Any],
                      headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler
