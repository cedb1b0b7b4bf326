"""The API key's bytes out of everything the gateway hands a worker.

The key goes upstream on the Messages API route only, but an upstream may hand it back: a
debugging or company proxy that echoes the request's headers, an error message quoting
them. Every response a worker gets — the API route's, a mirror's, an egress host's — is
written through a ScrubbedResponse: its headers and its body, streamed, lose every copy of
the key, also one split across two chunks. A copy becomes as many ``*`` as it had bytes, so
a response's length and framing stay as the upstream sent them.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

MASK = b"*"


class Scrubber:
    """Feed it a stream's chunks; what comes out holds no copy of ``secret``. Only a tail
    that could begin a copy is held back (until the next chunk, or ``flush``), so a stream
    that never comes close to the secret passes with no delay at all."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.found = 0            # copies removed so far
        self._held = b""

    def feed(self, chunk: bytes) -> bytes:
        if not self.secret:
            return chunk
        data = self._held + bytes(chunk)
        copies = data.count(self.secret)
        if copies:
            self.found += copies
            data = data.replace(self.secret, MASK * len(self.secret))
        keep = _prefix_at_end(data, self.secret)
        self._held = data[len(data) - keep:] if keep else b""
        return data[:len(data) - keep]

    def flush(self) -> bytes:
        held, self._held = self._held, b""
        return held

    def text(self, value: str) -> str:
        """One header value (or name), scrubbed whole."""
        secret = self.secret.decode("latin-1")
        if not secret or secret not in value:
            return value
        self.found += value.count(secret)
        return value.replace(secret, "*" * len(secret))


def _prefix_at_end(data: bytes, secret: bytes) -> int:
    """The length of the longest tail of ``data`` that is a proper prefix of ``secret``."""
    start = max(0, len(data) - len(secret) + 1)
    while True:
        at = data.find(secret[:1], start)
        if at < 0:
            return 0
        if secret.startswith(data[at:]):
            return len(data) - at
        start = at + 1


class ScrubbedResponse(web.StreamResponse):
    """A streamed response whose headers and body go out scrubbed of the key. The routes
    build every response a worker gets with it (``scrubbed`` for a whole one)."""

    def __init__(self, scrubber: Scrubber, *, status: int = 200, reason: str | None = None,
                 headers: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(status=status, reason=reason)
        self.scrubber = scrubber
        for key, value in headers:
            if scrubber.text(key) != key:
                continue                # a header named by the key: not passed at all
            self.headers.add(key, scrubber.text(value))

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        out = self.scrubber.feed(bytes(data))
        if out:
            await super().write(out)

    async def write_eof(self, data: bytes = b"") -> None:
        tail = self.scrubber.feed(data) + self.scrubber.flush() if data else self.scrubber.flush()
        if tail:
            await super().write(tail)
        await super().write_eof()


async def scrubbed(request: web.BaseRequest, response: web.StreamResponse,
                   scrubber: Scrubber) -> web.StreamResponse:
    """A whole response a route made (an error, a page of ours) as it goes out scrubbed:
    any response that is not a ScrubbedResponse already is copied into one."""
    if isinstance(response, ScrubbedResponse) or response.prepared:
        return response
    body = response.body if isinstance(response, web.Response) else None
    copy = ScrubbedResponse(scrubber, status=response.status, reason=response.reason,
                            headers=[(k, v) for k, v in response.headers.items()
                                     if k.lower() != "content-length"])
    raw = body if isinstance(body, bytes | bytearray) else b""
    copy.content_length = len(raw)
    await copy.prepare(request)
    await copy.write_eof(bytes(raw))
    return copy
