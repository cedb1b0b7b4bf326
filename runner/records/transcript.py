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
            yield from _blocks(entry.get("content", []))
        elif kind in _RENDERERS:
            yield from _RENDERERS[kind](stamp, entry)
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


def _blocks(content: list[dict[str, Any]]) -> Iterator[str]:
    for block in content:
        if block.get("type") == "text":
            yield _indent(block.get("text", ""))
        elif block.get("type") == "tool_use":
            yield _indent(f"-> {block.get('name')} {json.dumps(block.get('input'))}")


# Claude Code's entries (runner/agents/claude_code.py) and the gateway's: one renderer per
# kind.
def _claude_start(stamp: str, entry: dict[str, Any]) -> Iterator[str]:
    how = f"resumes session {entry['resume']}" if entry.get("resume") else "starts"
    yield printable(f"{stamp} claude-code {how} (model {entry.get('model')}, "
                    f"max_turns {entry.get('max_turns')})")
    yield _indent(entry.get("prompt", ""))


def _claude_init(stamp: str, entry: dict[str, Any]) -> Iterator[str]:
    yield printable(f"{stamp} claude-code {entry.get('version')}: session "
                    f"{entry.get('session_id')}, model {entry.get('model')}, "
                    f"{entry.get('tools')} tools")


def _assistant(stamp: str, entry: dict[str, Any]) -> Iterator[str]:
    yield printable(f"{stamp} model {entry.get('model')}")
    yield from _blocks(entry.get("content", []))


def _tool_result(stamp: str, entry: dict[str, Any]) -> Iterator[str]:
    flag = " (error)" if entry.get("is_error") else ""
    yield printable(f"{stamp} tool {entry.get('name')} result{flag}")
    yield _indent(entry.get("output", ""))


def _claude_result(stamp: str, entry: dict[str, Any]) -> Iterator[str]:
    usage = entry.get("usage") or {}
    how = "failed" if entry.get("is_error") else "ended"
    cost = entry.get("total_cost_usd")
    spent = f", ${cost:.4f} by its own count" if isinstance(cost, (int, float)) else ""
    yield printable(f"{stamp} claude-code {how} ({entry.get('subtype')}) after "
                    f"{entry.get('num_turns')} turns, {usage.get('input_tokens', 0)} in / "
                    f"{usage.get('output_tokens', 0)} out{spent}")
    text = entry.get("result") or "\n".join(str(e) for e in entry.get("errors") or [])
    if text:
        yield _indent(text)


def _usage_mismatch(stamp: str, entry: dict[str, Any]) -> Iterator[str]:
    def shown(usage: dict[str, int]) -> str:
        return (f"{usage.get('input', 0)} in / {usage.get('output', 0)} out / "
                f"{usage.get('cache_write', 0)} cache write / {usage.get('cache_read', 0)} "
                "cache read")
    yield printable(f"{stamp} usage differs: Claude Code counted "
                    f"{shown(entry.get('claude_code') or {})}, the gateway metered "
                    f"{shown(entry.get('gateway') or {})} (the ledger keeps the gateway's)")


# The gateway's entries (runner/worker/lifecycle.py gateway_caller): each API call, each connection.
def _api(stamp: str, entry: dict[str, Any]) -> Iterator[str]:
    what = f"{stamp} API {entry.get('method')} {entry.get('path')} {entry.get('model') or '-'}"
    if entry.get("refused"):
        yield printable(f"{what}: refused by the gateway: {entry['refused']}")
    else:
        yield printable(f"{what}: {entry.get('status')}, {entry.get('tokens', 0)} tokens "
                        f"({entry.get('input', 0)} in / {entry.get('output', 0)} out), "
                        f"{entry.get('latency', 0)}s")


def _egress(stamp: str, entry: dict[str, Any]) -> Iterator[str]:
    where = f"{stamp} egress {entry.get('via')} {entry.get('host')}:{entry.get('port')}"
    if entry.get("allowed"):
        yield printable(f"{where} via {entry.get('address')}: {entry.get('bytes_up', 0)} bytes "
                        f"up, {entry.get('bytes_down', 0)} down, {entry.get('duration', 0)}s")
    else:
        yield printable(f"{where} refused: {entry.get('reason')}")


_RENDERERS = {"claude-start": _claude_start, "claude-init": _claude_init,
           "assistant": _assistant, "tool-result": _tool_result,
           "claude-result": _claude_result, "usage-mismatch": _usage_mismatch,
           "api": _api, "egress": _egress}


def _indent(text: str, limit: int = 4000) -> str:
    text = printable(text if len(text) <= limit else text[:limit] + " …")
    return "\n".join("    " + line for line in text.splitlines() or [""])
