"""What the gateway tells the run of each worker's traffic (one record per Messages API
call, egress attempt and mirror request), and who a socket serves."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runner.records import Usage

SOCKET_NAME = "gateway.sock"
WHOAMI_PATH = "/_runner/whoami"      # answers the ticket the socket serves (the self-test)
DEFAULT_UPSTREAM = "https://api.anthropic.com"


@dataclass(frozen=True)
class ApiCall:
    """One Messages API request, as the gateway saw and metered it."""

    method: str
    path: str             # e.g. "/v1/messages"
    model: str            # from the request body ("" if none)
    status: int           # the status the worker got
    usage: Usage          # from the response (zero if none)
    latency: float        # seconds, until the response ended
    streamed: bool
    refused: str = ""     # the gateway refused it itself: why (budget, path)
    scrubbed: int = 0     # copies of the API key taken out of its response


@dataclass(frozen=True)
class Connection:
    """One egress attempt (CONNECT or absolute-form http)."""

    kind: str             # "CONNECT" or "http"
    host: str
    port: int
    allowed: bool         # it went out: listed, vetted and connected
    reason: str           # why not ("" when allowed)
    address: str = ""     # the IP actually connected to
    bytes_up: int = 0
    bytes_down: int = 0
    duration: float = 0.0
    scrubbed: int = 0     # copies of the API key taken out of what came back


@dataclass(frozen=True)
class Fetch:
    """One request to the dependency cache's mirrors."""

    ecosystem: str        # pypi, crates
    what: str             # e.g. "six-1.16.0-py2.py3-none-any.whl (sha256 …)", "index of six"
    source: str           # cache | upstream | stale | failed | refused
    bytes: int            # sent to the worker
    upstream_bytes: int   # fetched from the upstream for it
    reason: str = ""      # why it failed, was refused, or is stale
    artifact: bool = True  # a package file; False: an index page, a checksum, config


def _unrecorded(_: object) -> None:
    pass


@dataclass(frozen=True)
class Caller:
    """Who is behind one socket."""

    ticket: str
    max_tokens: int | None                       # all tokens of the ticket; None: no limit
    on_call: Callable[[ApiCall], None]           # called from the gateway's thread
    on_connection: Callable[[Connection], None]  # called from the gateway's thread
    on_fetch: Callable[[Fetch], None] = _unrecorded   # the same, for the cache's mirrors
