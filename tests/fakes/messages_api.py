"""A fake Anthropic Messages API over real HTTP on 127.0.0.1, for real clients to talk to:
the anthropic SDK (runner's anthropic agent, the review) and the Claude Code binary.

Each ticket gets a scripted conversation (found by the `Ticket: <id>` line of the system
prompt; a review of it by `Review of ticket: <id>`, scripted as `review:<id>`): a list of
replies and failures served in order. Every request is recorded.

Claude Code's side of the protocol:
- It streams (`stream: true`): such a request is answered with server-sent events as the
  Messages API sends them (message_start with the input usage, per block content_block_start
  / _delta / _stop, text as text_delta, tool input as input_json_delta pieces, message_delta
  with the stop reason and the cumulative usage, message_stop).
- It also makes requests that are not the ticket's conversation (a HEAD of /api/hello,
  count_tokens, a message without tools or without a ticket line): they are answered
  generically and kept in ``side_requests``; they never consume a script.
- A scripted tool is named the way Claude Code calls it (`Bash`, `Write`, `Edit`, `Read`).
  A streamed request must offer it in its `tools`, else the fake answers 400 and records the
  mistake in ``problems`` (leaving the `with` block then fails the test): a tool Claude Code
  renamed shows as that, not as a ticket that did nothing.
- Claude Code retries 429 and 5xx itself (10 times, honouring retry-after) and re-sends a
  request refused with 400 up to five more times, with fewer betas each time, before it gives
  up: a scripted Fail(400) is consumed by the first of those. A streamed request past the end
  of its script gets a 400 (not a 500) so a test's mistake ends in a second, not in minutes.
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


def done(words: str = "Done.", usage: tuple[int, int, int, int] = (100, 20, 0, 0)) -> Reply:
    """The model's last turn: text, no tools."""
    return Reply([text(words)], usage=usage, stop_reason="end_turn")


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
    path: str = "/v1/messages"
    method: str = "POST"
    reply: list[dict[str, Any]] | None = None    # the content the fake answered with

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or [])

    @property
    def tools(self) -> list[str]:
        return [t.get("name", "") for t in self.body.get("tools") or [] if isinstance(t, dict)]

    def texts(self, role: str = "user") -> list[str]:
        """Every text in the messages of ``role``, in order (tool results' texts too)."""
        found: list[str] = []
        for message in self.messages:
            if message.get("role") == role:
                found.extend(_texts(message.get("content")))
        return found

    def last_user_text(self) -> str:
        """What the newest user message says (a resumed session's new prompt)."""
        users = [m for m in self.messages if m.get("role") == "user"]
        return "\n".join(_texts(users[-1].get("content"))) if users else ""

    def tool_use_ids(self) -> list[str]:
        return [block["id"] for message in self.messages if message.get("role") == "assistant"
                for block in _blocks(message.get("content")) if block.get("type") == "tool_use"]

    def continues(self, earlier: Recorded) -> bool:
        """This request carries ``earlier``'s conversation: its tool calls and its prompts
        (what a resumed session sends)."""
        ids = set(self.tool_use_ids())
        mine = "\n".join(self.texts())
        return (set(earlier.tool_use_ids()) <= ids
                and all(t in mine for t in earlier.texts() if not t.startswith("<system")))


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content or [] if isinstance(b, dict)]


def _texts(content: Any) -> list[str]:
    found: list[str] = []
    for block in _blocks(content):
        if block.get("type") == "text":
            found.append(str(block.get("text", "")))
        elif block.get("type") == "tool_result":
            found.extend(_texts(block.get("content")))
    return found


class FakeMessagesAPI:
    def __init__(self, scripts: dict[str, list[Reply | Fail]]) -> None:
        self.scripts = {ticket: list(steps) for ticket, steps in scripts.items()}
        self.requests: list[Recorded] = []          # the tickets' conversations
        self.side_requests: list[Recorded] = []     # everything else a client asked
        self.problems: list[str] = []               # scripts that do not fit the requests
        self.sent_usage: dict[str, list[tuple[int, int, int, int]]] = {}
        self._served_ids: set[str] = set()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeMessagesAPI:
        self._thread.start()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self.problems and exc_type is None:
            raise AssertionError("the fake Messages API was asked what its scripts do not "
                                 "fit: " + "; ".join(self.problems))

    def requests_for(self, ticket: str) -> list[Recorded]:
        return [r for r in self.requests if r.ticket == ticket]

    def _record_side(self, recorded: Recorded) -> None:
        with self._lock:
            self.side_requests.append(recorded)

    def _next(self, recorded: Recorded) -> Reply | Fail:
        with self._lock:
            self.requests.append(recorded)
            ticket = recorded.ticket
            steps = self.scripts.get(ticket)
            if not steps:
                # Claude Code retries a 500 ten times over three minutes, a 400 at once.
                status = 400 if recorded.body.get("stream") else 500
                return Fail(status, f"the fake has no more replies for ticket {ticket!r}",
                            kind="invalid_request_error" if status == 400 else "api_error")
            step = steps[0]
            if isinstance(step, Reply) and recorded.body.get("stream"):
                offered = set(recorded.tools)
                missing = [b["name"] for b in step.content
                           if b.get("type") == "tool_use" and b["name"] not in offered]
                if missing:
                    problem = (f"ticket {ticket}: the script calls {', '.join(missing)}, which "
                               f"the request does not offer (its tools: "
                               f"{', '.join(sorted(offered)) or 'none'})")
                    self.problems.append(problem)
                    return Fail(400, problem, kind="invalid_request_error")
            steps.pop(0)
            if isinstance(step, Reply):
                step = Reply(self._fresh_ids(step.content), step.usage, step.stop_reason)
                recorded.reply = step.content
                self.sent_usage.setdefault(ticket, []).append(step.usage)
            return step

    def _fresh_ids(self, content: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Tool ids are unique across everything served, even for a Reply scripted twice."""
        blocks = []
        for block in content:
            if block.get("type") == "tool_use":
                if block["id"] in self._served_ids:
                    block = {**block, "id": f"toolu_{next(_ids):04d}"}
                self._served_ids.add(block["id"])
            blocks.append(block)
        return blocks

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:   # keep test output quiet
                pass

            def _headers(self) -> dict[str, str]:
                return {k.lower(): v for k, v in self.headers.items()}

            def do_HEAD(self) -> None:    # Claude Code's connectivity check (/api/hello)
                fake._record_side(Recorded("", self._headers(), {}, self.path, "HEAD"))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                fake._record_side(Recorded("", self._headers(), {}, self.path, "GET"))
                self._send(404, {"type": "error", "error": {
                    "type": "not_found_error", "message": f"the fake has no {self.path}"}})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0)))
                                  or b"{}")
                key = _ticket_of(body)
                recorded = Recorded(key or "", self._headers(), body, self.path)
                path = self.path.split("?", 1)[0]
                if path == "/v1/messages/count_tokens":
                    fake._record_side(recorded)
                    self._send(200, {"input_tokens": len(json.dumps(body)) // 4})
                    return
                if path != "/v1/messages":
                    fake._record_side(recorded)
                    self._send(404, {"type": "error", "error": {
                        "type": "not_found_error", "message": f"the fake has no {path}"}})
                    return
                if key is None or (body.get("stream") and not body.get("tools")):
                    # Not the ticket's conversation: a title, a quota check, a summary.
                    fake._record_side(recorded)
                    self._answer(body, Reply([text("ok")], (10, 1, 0, 0), "end_turn"))
                    return
                step = fake._next(recorded)
                if isinstance(step, Fail):
                    self._send(step.status, {"type": "error", "error": {
                        "type": step.kind, "message": step.message}}, step.headers)
                    return
                self._answer(body, step)

            def _answer(self, body: dict[str, Any], step: Reply) -> None:
                message = {"id": f"msg_{next(_ids):04d}", "type": "message",
                           "role": "assistant", "model": body.get("model", "?")}
                if body.get("stream"):
                    self._stream(message, step)
                    return
                self._send(200, {**message, "content": step.content,
                                 "stop_reason": step.stop_reason, "stop_sequence": None,
                                 "usage": _usage(step.usage)})

            def _stream(self, message: dict[str, Any], step: Reply) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                start_usage = {**_usage(step.usage), "output_tokens": 1}
                self._event("message_start", {"type": "message_start", "message": {
                    **message, "content": [], "stop_reason": None, "stop_sequence": None,
                    "usage": start_usage}})
                self._event("ping", {"type": "ping"})
                for index, block in enumerate(step.content):
                    if block["type"] == "tool_use":
                        start = {**block, "input": {}}
                        raw = json.dumps(block["input"])
                        half = len(raw) // 2      # two pieces: clients must join them
                        deltas = [{"type": "input_json_delta", "partial_json": piece}
                                  for piece in (raw[:half], raw[half:])]
                    else:
                        start = {"type": "text", "text": ""}
                        words = block.get("text", "")
                        half = len(words) // 2
                        deltas = [{"type": "text_delta", "text": piece}
                                  for piece in (words[:half], words[half:]) if piece]
                    self._event("content_block_start", {"type": "content_block_start",
                                                        "index": index, "content_block": start})
                    for delta in deltas:
                        self._event("content_block_delta", {"type": "content_block_delta",
                                                            "index": index, "delta": delta})
                    self._event("content_block_stop", {"type": "content_block_stop",
                                                       "index": index})
                # message_delta's usage is cumulative: the final counts of the whole message.
                self._event("message_delta", {"type": "message_delta", "delta": {
                    "stop_reason": step.stop_reason, "stop_sequence": None},
                    "usage": _usage(step.usage)})
                self._event("message_stop", {"type": "message_stop"})
                self.close_connection = True

            def _event(self, name: str, data: dict[str, Any]) -> None:
                self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()

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


def _ticket_of(body: dict[str, Any]) -> str | None:
    """Whose conversation a request is, from its system prompt; None if it names none."""
    system = body.get("system") or ""
    if isinstance(system, list):
        system = "\n".join(str(b.get("text", "")) for b in system if isinstance(b, dict))
    found = re.search(r"^(Ticket|Review of ticket): (\S+)", str(system), re.M)
    if not found:
        return None
    return found.group(2) if found.group(1) == "Ticket" else f"review:{found.group(2)}"


def _usage(usage: tuple[int, int, int, int]) -> dict[str, int]:
    return {"input_tokens": usage[0], "output_tokens": usage[1],
            "cache_creation_input_tokens": usage[2], "cache_read_input_tokens": usage[3]}
