"""Which request and response headers a forwarding hop passes on."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

# RFC 9110 7.6.1: meant for one hop only; proxy-* are the worker's to its proxy (us).
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate",
    "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
})


class _Headers(Protocol):
    def items(self) -> Iterable[tuple[str, str]]: ...
    def getall(self, key: str, default: list[str]) -> list[str]: ...


def forwarded(headers: _Headers, drop: Iterable[str] = ()) -> list[tuple[str, str]]:
    """``headers`` without hop-by-hop ones (also those the Connection header names) and
    ``drop`` (lower case); repeated headers kept, in order."""
    named = {token.strip().lower() for value in headers.getall("Connection", [])
             for token in value.split(",")}
    skip = HOP_BY_HOP | named | set(drop)
    return [(key, value) for key, value in headers.items() if key.lower() not in skip]
