"""Usage read from Messages API responses as they pass: a JSON body's `usage`, or an SSE
stream's `message_start` (message.usage) and `message_delta` (usage) events.

SSE is not HTTP: a small incremental splitter on blank lines is all it takes. In a stream
output_tokens is cumulative, and newer APIs repeat input and cache counts in message_delta,
so each field keeps its latest nonzero value.
"""

from __future__ import annotations

import json
import re
from typing import Any

from runner.records import Usage

_FIELDS = (("input", "input_tokens"), ("output", "output_tokens"),
           ("cache_write", "cache_creation_input_tokens"),
           ("cache_read", "cache_read_input_tokens"))
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
# An event with no boundary after this much is not one we read (content deltas are small;
# usage events smaller still): its bytes still pass through, unparsed.
MAX_EVENT = 1 << 20


def _counts(usage: Any) -> dict[str, int]:
    if not isinstance(usage, dict):
        return {}
    found = {}
    for name, key in _FIELDS:
        value = usage.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            found[name] = value
    return found


def usage_of_json(body: bytes) -> Usage:
    """A non-streamed response's usage (zero when it has none, or is no JSON)."""
    try:
        data = json.loads(body)
    except ValueError:
        return Usage()
    return Usage(**_counts(data.get("usage"))) if isinstance(data, dict) else Usage()


class StreamUsage:
    """Feed it a response's SSE bytes as they arrive; ``usage`` is what they said so far."""

    def __init__(self) -> None:
        self._buffer = b""
        self._skipping = False       # inside an event too large to read
        self._seen: dict[str, int] = {}

    @property
    def usage(self) -> Usage:
        return Usage(**self._seen)

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        while True:
            end = _EVENT_END.search(self._buffer)
            if end is None:
                break
            event, self._buffer = self._buffer[:end.start()], self._buffer[end.end():]
            if self._skipping:
                self._skipping = False
            else:
                self._event(event)
        if len(self._buffer) > MAX_EVENT:
            self._buffer = self._buffer[-3:]  # keep what may start a boundary
            self._skipping = True

    def _event(self, event: bytes) -> None:
        if b"message_start" not in event and b"message_delta" not in event:
            return                   # most events: content deltas, pings
        data = b"\n".join(line[5:].removeprefix(b" ")
                          for line in re.split(rb"\r\n|\n|\r", event)
                          if line.startswith(b"data:"))
        try:
            payload = json.loads(data)
        except ValueError:
            return
        if not isinstance(payload, dict):
            return
        kind = payload.get("type")
        if kind == "message_start":
            message = payload.get("message")
            self._seen.update(_counts(message.get("usage") if isinstance(message, dict)
                                      else None))
        elif kind == "message_delta":
            self._seen.update(_counts(payload.get("usage")))
