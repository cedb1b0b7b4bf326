"""Claude Code's `--output-format stream-json` events, read line by line as it prints them:
a readable one-liner for the live view, an entry for the transcript, and what the agent
needs after (the session id, the result event, retries).

The sandbox hands lines on cut at LINE_LIMIT characters, so a long event (a big tool result,
a long final answer) arrives as broken JSON: what parses is used, the scalars of the rest are
salvaged, and nothing here ever raises into the sandbox's output thread.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runner.records import Transcript

SHOWN = 200             # characters of a command or result in a live-view line
KEPT = 16_000           # characters of one tool result kept in the transcript
# The result event's scalars, found in a line cut short (its `result` text made it long).
_SCALAR = r'"{key}":\s*(true|false|null|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|"(?:[^"\\]|\\.)*")'
_SALVAGED = ("type", "subtype", "session_id", "is_error", "num_turns", "total_cost_usd",
             "api_error_status", "terminal_reason")


@dataclass
class RunState:
    """What one Claude Code run said about itself."""

    session_id: str = ""
    result: dict[str, Any] | None = None     # the `result` event (maybe salvaged, partial)
    retries: int = 0
    tool_names: dict[str, str] = field(default_factory=dict)   # tool_use id -> tool name


class StreamReader:
    """The on_output handler for a Claude Code run: each line in, a one-liner out."""

    def __init__(self, transcript: Transcript, on_output: Callable[[str], None],
                 state: RunState) -> None:
        self.transcript, self.on_output, self.state = transcript, on_output, state

    def __call__(self, line: str) -> None:
        try:
            self._line(line)
        except Exception as e:   # a surprise in an event must not stop the worker's output
            self.on_output(line[:SHOWN])
            self.transcript.write("claude-event", error=f"{type(e).__name__}: {e}",
                                  line=line[:2000])

    def _line(self, line: str) -> None:
        stripped = line.strip()
        if not stripped.startswith("{"):
            if stripped:
                self.on_output(line)     # stderr, or a line that is no event
            return
        try:
            event = json.loads(stripped)
        except json.JSONDecodeError:
            self._cut(stripped)
            return
        if not isinstance(event, dict):
            self.on_output(line)
            return
        if isinstance(event.get("session_id"), str) and event["session_id"]:
            self.state.session_id = self.state.session_id or event["session_id"]
        handler = getattr(self, f"_on_{event.get('type')}", None)
        if handler is None:
            self.transcript.write("claude-event", type=str(event.get("type")),
                                  subtype=str(event.get("subtype", "")))
            return
        handler(event)

    def _on_system(self, event: dict[str, Any]) -> None:
        subtype = event.get("subtype")
        if subtype == "init":
            self.transcript.write("claude-init", session_id=event.get("session_id"),
                                  model=event.get("model"),
                                  version=event.get("claude_code_version"),
                                  tools=len(event.get("tools") or []))
            self.on_output(f"claude {event.get('claude_code_version', '?')}: session "
                           f"{event.get('session_id', '?')}, model {event.get('model', '?')}")
        elif subtype == "api_retry":
            self.state.retries += 1
            wait = (event.get("retry_delay_ms") or 0) / 1000
            error = f"API {event.get('error_status')} ({event.get('error')})"
            self.transcript.write("retry", attempt=event.get("attempt"), wait=round(wait, 2),
                                  error=error)
            self.on_output(f"claude: {error}, retry {event.get('attempt')}/"
                           f"{event.get('max_retries')} in {wait:.1f}s")
        else:
            self.transcript.write("claude-event", type="system", subtype=str(subtype))

    def _on_assistant(self, event: dict[str, Any]) -> None:
        message = event.get("message") or {}
        content = [b for b in message.get("content") or [] if isinstance(b, dict)]
        self.transcript.write("assistant", model=message.get("model"), content=content)
        for block in content:
            if block.get("type") == "text" and str(block.get("text", "")).strip():
                self.on_output(str(block["text"]).strip().splitlines()[-1])
            elif block.get("type") == "tool_use":
                name = str(block.get("name", "?"))
                self.state.tool_names[str(block.get("id"))] = name
                self.on_output(f"tool {name}: {_summary(name, block.get('input'))}")

    def _on_user(self, event: dict[str, Any]) -> None:
        content = (event.get("message") or {}).get("content")
        if isinstance(content, str):
            self.transcript.write("claude-user", text=content[:KEPT])
            return
        for block in content or []:
            if not isinstance(block, dict) or block.get("type") != "tool_result":
                continue
            output = _text_of(block.get("content"))
            name = self.state.tool_names.get(str(block.get("tool_use_id")), "?")
            error = bool(block.get("is_error"))
            self.transcript.write("tool-result", name=name,
                                  tool_use_id=block.get("tool_use_id"), is_error=error,
                                  output=output[:KEPT])
            lines = [ln for ln in output.splitlines() if ln.strip()]
            more = f" (+{len(lines) - 1} lines)" if len(lines) > 1 else ""
            first = lines[0].strip()[:SHOWN] if lines else "(no output)"
            self.on_output(f"  {'error' if error else '->'} {first}{more}")

    def _on_result(self, event: dict[str, Any]) -> None:
        self.state.result = event
        usage = event.get("usage") if isinstance(event.get("usage"), dict) else {}
        self.transcript.write(
            "claude-result", is_error=bool(event.get("is_error")),
            subtype=event.get("subtype"), num_turns=event.get("num_turns"),
            terminal_reason=event.get("terminal_reason"), usage=usage,
            total_cost_usd=event.get("total_cost_usd"),
            result=str(event.get("result") or "")[:KEPT], errors=event.get("errors") or [])
        if event.get("is_error"):
            self.on_output(f"claude: failed: {failure_text(event)}")
        else:
            cost = event.get("total_cost_usd")
            spent = f", ${cost:.4f} by its count" if isinstance(cost, (int, float)) else ""
            self.on_output(f"claude: ended after {event.get('num_turns', '?')} turns{spent}")

    def _cut(self, line: str) -> None:
        """A line cut short (or not JSON after all): salvage what a result would carry."""
        found = {}
        for key in _SALVAGED:
            match = re.search(_SCALAR.format(key=key), line)
            if match:
                try:
                    found[key] = json.loads(match.group(1))
                except json.JSONDecodeError:
                    pass
        if isinstance(found.get("session_id"), str):
            self.state.session_id = self.state.session_id or found["session_id"]
        is_result = "is_error" in found and "num_turns" in found
        if is_result and self.state.result is None:
            self.state.result = {**found, "type": "result", "salvaged": True}
        kind = "result" if is_result else str(found.get("type", "?"))
        self.transcript.write("claude-cut", type=kind, chars=len(line), **(
            {k: v for k, v in found.items() if k != "type"} if is_result else {}))
        self.on_output(f"claude: {kind} event too long to show ({len(line):,} characters)")


def failure_text(result: dict[str, Any]) -> str:
    """Why a run failed, by its result event: the API error or what went wrong, one line."""
    errors = result.get("errors")
    text = str(result.get("result") or "").strip()
    if not text and isinstance(errors, list) and errors:
        text = str(errors[0])
    if not text:
        text = str(result.get("terminal_reason") or result.get("subtype") or "no reason given")
    return " ".join(text.split())[:300]


def _summary(name: str, args: Any) -> str:
    if not isinstance(args, dict):
        return str(args)[:SHOWN]
    for key in ("command", "file_path", "notebook_path", "pattern", "url", "description"):
        if isinstance(args.get(key), str):
            value = " ⏎ ".join(args[key].strip().splitlines())
            return value if len(value) <= SHOWN else value[:SHOWN] + "…"
    shown = json.dumps(args, ensure_ascii=False)
    return shown if len(shown) <= SHOWN else shown[:SHOWN] + "…"


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(b.get("text", "")) for b in content
                         if isinstance(b, dict) and b.get("type") == "text")
    return "" if content is None else str(content)
