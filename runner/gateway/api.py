"""The API route: origin-form Messages API requests, forwarded upstream with the real key in
place of the worker's placeholder, streamed back as they arrive, metered into the ledger,
refused before forwarding once a budget is spent."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

import aiohttp
from aiohttp import web
from yarl import URL

from runner.gateway.calls import ApiCall, Caller
from runner.gateway.headers import forwarded
from runner.gateway.scrub import ScrubbedResponse, Scrubber
from runner.gateway.usage import StreamUsage, usage_of_json
from runner.records import Ledger, Usage

# How the real API says credit is exhausted. Not a 429 or 5xx: clients retry those forever.
REFUSED = (400, "invalid_request_error")
MAX_BODY = 32 << 20          # a request body past this gets 413 (the real API's limit)
MAX_METERED = 16 << 20       # of a JSON response, what is kept to read its usage
PREFIX = "runner gateway: "

# (method, path) the Messages API needs; a model id is one path segment, no dot-segments.
_ROUTES = (("POST", re.compile(r"/v1/messages")),
           ("POST", re.compile(r"/v1/messages/count_tokens")),
           ("GET", re.compile(r"/v1/models")),
           ("GET", re.compile(r"/v1/models/[A-Za-z0-9][A-Za-z0-9._:@-]*")))
BILLED = "/v1/messages"      # the one path whose calls are tokens spent
# The worker's auth goes (the real key replaces it); the body's length and encoding are ours.
_DROP = ("host", "content-length", "x-api-key", "authorization", "accept-encoding", "expect")
_DROP_BACK = ("content-length", "content-encoding")


def error(status: int, kind: str, message: str) -> web.Response:
    """An Anthropic-shaped error, as the SDKs and Claude Code parse them."""
    body = {"type": "error", "error": {"type": kind, "message": PREFIX + message}}
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


def is_api_path(method: str, raw_path: str) -> bool:
    # The raw path, not the decoded one: %2e%2e or %2f must not reach the upstream as a path.
    path = raw_path.partition("?")[0]
    return any(method == m and pattern.fullmatch(path) for m, pattern in _ROUTES)


def _model(body: bytes) -> str:
    try:
        data = json.loads(body) if body else None
    except ValueError:
        return ""
    model = data.get("model") if isinstance(data, dict) else None
    return model if isinstance(model, str) else ""


async def _read_body(request: web.BaseRequest) -> bytes | None:
    """The whole request body, or None past MAX_BODY (read no further then)."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        return None
    chunks, size = [], 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class ApiRoute:
    def __init__(self, *, ledger: Ledger, upstream: str, api_key: str | None,
                 session: aiohttp.ClientSession,
                 report: Callable[[Callable[[ApiCall], None], ApiCall], None]) -> None:
        self.ledger = ledger
        self.upstream = upstream
        self._key = api_key
        self.session = session
        self._report = report

    def _refusal(self, caller: Caller) -> str:
        if self.ledger.budget_reached():
            return f"the phase budget of ${self.ledger.budget_usd:g} is spent"
        if caller.max_tokens is not None:
            used = self.ledger.ticket(caller.ticket).usage.tokens
            if used >= caller.max_tokens:
                return (f"token budget exceeded: {used} tokens used of max_tokens "
                        f"{caller.max_tokens}")
        return ""

    async def handle(self, request: web.BaseRequest, caller: Caller,
                     scrubber: Scrubber) -> web.StreamResponse:
        start = time.monotonic()
        method, raw, path = request.method, request.raw_path, request.path

        def refuse(status: int, kind: str, why: str, model: str = "",
                   message: str | None = None) -> web.Response:
            self._report(caller.on_call, ApiCall(method, path, model, status, Usage(),
                                                 time.monotonic() - start, False, why))
            return error(status, kind, message or why)

        if not is_api_path(method, raw):
            why = f"{method} {raw[:200]} is not a Messages API path"
            return refuse(404, "not_found_error", why)
        body = await _read_body(request)
        if body is None:
            response = refuse(413, "request_too_large",
                              f"the request body is over {MAX_BODY >> 20} MiB")
            response.force_close()    # the rest of it is not read
            return response
        model = _model(body)
        why = self._refusal(caller)
        if why:
            return refuse(*REFUSED, why, model)
        if not self._key:
            return refuse(401, "authentication_error", "no API key",
                          model, "the runner has no ANTHROPIC_API_KEY to call the API with")
        return await self._forward(request, caller, body, model, start, scrubber)

    async def _forward(self, request: web.BaseRequest, caller: Caller, body: bytes,
                       model: str, start: float, scrubber: Scrubber) -> web.StreamResponse:
        method, path = request.method, request.path
        headers = forwarded(request.headers, _DROP) + [("x-api-key", self._key or "")]
        status, streamed, answered = 502, False, False
        meter: StreamUsage | None = None
        kept = bytearray()
        try:
            try:
                upstream = await self.session.request(
                    method, URL(self.upstream + request.raw_path, encoded=True),
                    headers=headers, data=body or None, allow_redirects=False)
            except (TimeoutError, aiohttp.ClientError, OSError) as e:
                # aiohttp's messages name the host and the OS error, never headers.
                detail = (str(e) or type(e).__name__).replace(self._key or "\0", "***")
                return error(502, "api_error",
                             f"the Messages API upstream cannot be reached: {detail[:300]}")
            async with upstream:
                status, answered = upstream.status, True
                # Whatever the upstream hands back (a proxy echoing the request's headers
                # would hand back the key) reaches the worker scrubbed of the key.
                response = ScrubbedResponse(scrubber, status=status, reason=upstream.reason,
                                            headers=forwarded(upstream.headers, _DROP_BACK))
                if "Content-Encoding" not in upstream.headers \
                        and upstream.content_length is not None:
                    response.content_length = upstream.content_length
                streamed = upstream.content_type == "text/event-stream"
                meter = StreamUsage() if streamed else None
                await response.prepare(request)
                # Each chunk goes on as it came: an SSE stream is never held back.
                async for chunk in upstream.content.iter_any():
                    if meter is not None:
                        meter.feed(chunk)
                    elif len(kept) < MAX_METERED:
                        kept += chunk
                    await response.write(chunk)
                await response.write_eof()
                return response
        finally:
            # Also when the worker went away mid-stream: what it was sent is spent.
            usage = meter.usage if meter is not None else usage_of_json(bytes(kept))
            if answered and path == BILLED and method == "POST":
                self.ledger.record(ticket=caller.ticket, model=model, usage=usage)
            self._report(caller.on_call, ApiCall(method, path, model, status, usage,
                                                 time.monotonic() - start, streamed,
                                                 scrubbed=scrubber.found))
