"""A ticket's transcript: every request, response, tool call, retry and check, as JSONL."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from runner.text import printable


class Transcript:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def write(self, kind: str, **data: Any) -> None:
        line = json.dumps({"at": round(time.time(), 3), "kind": kind, **data}, default=str)
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")


def render(path: Path) -> Iterator[str]:
    """The transcript, readably: one block per entry."""
    with path.open(encoding="utf-8", errors="replace") as lines:   # line by line: any size
        yield from _entries(lines)


def _entries(lines: Iterable[str]) -> Iterator[str]:
    for raw in lines:
        try:
            entry = json.loads(raw)
        except json.JSONDecodeError:   # a line cut short by a killed runner
            continue
        stamp = time.strftime("%H:%M:%S", time.localtime(entry.pop("at", 0)))
        kind = entry.pop("kind", "?")
        if kind == "response":
            usage = entry.get("usage", {})
            yield printable(f"{stamp} model {entry.get('model')} ({entry.get('stop_reason')}, "
                            f"{usage.get('input_tokens', 0)} in / "
                            f"{usage.get('output_tokens', 0)} out)")
            for block in entry.get("content", []):
                if block.get("type") == "text":
                    yield _indent(block.get("text", ""))
                elif block.get("type") == "tool_use":
                    yield _indent(f"-> {block.get('name')} {json.dumps(block.get('input'))}")
        elif kind == "request":
            yield printable(f"{stamp} request to {entry.get('model')} "
                            f"({entry.get('messages')} messages)")
        elif kind == "tool":
            flag = " (error)" if entry.get("is_error") else ""
            yield printable(f"{stamp} tool {entry.get('name')}{flag}")
            yield _indent(entry.get("output", ""))
        else:
            details = " ".join(f"{k}={v}" for k, v in entry.items())
            yield printable(f"{stamp} {kind} {details}")


def _indent(text: str, limit: int = 4000) -> str:
    text = printable(text if len(text) <= limit else text[:limit] + " …")
    return "\n".join("    " + line for line in text.splitlines() or [""])
