"""The tools an LLM worker has. Each runs inside the worker's sandbox, as the worker."""

from __future__ import annotations

import base64
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.errors import EnvironmentProblem
from runner.sandbox import Sandbox

OUTPUT_BUDGET = 16_000       # characters of a tool's output the model sees
BASH_TIMEOUT = 600
READ_LIMIT = 8 << 20         # bytes of a file read_file and edit_file will take
WRITE_CHUNK = 64 << 10       # bytes per exec when writing (base64 of it < 128 KiB)

TOOLS: list[dict[str, Any]] = [
    {"name": "bash", "description": "Run a bash command in /workspace (your clone of the "
     "repository). Output is cut to its head and tail when long.",
     "input_schema": {"type": "object", "properties": {
         "command": {"type": "string"},
         "timeout": {"type": "integer", "description": "seconds (default 600)"}},
         "required": ["command"]}},
    {"name": "read_file", "description": "Read a file, path relative to /workspace.",
     "input_schema": {"type": "object", "properties": {"path": {"type": "string"}},
                      "required": ["path"]}},
    {"name": "write_file", "description": "Create or replace a file with the given content.",
     "input_schema": {"type": "object", "properties": {
         "path": {"type": "string"}, "content": {"type": "string"}},
         "required": ["path", "content"]}},
    {"name": "edit_file", "description": "Replace the exact text `old` with `new` in a file; "
     "`old` must occur exactly once.",
     "input_schema": {"type": "object", "properties": {
         "path": {"type": "string"}, "old": {"type": "string"}, "new": {"type": "string"}},
         "required": ["path", "old", "new"]}},
    {"name": "finish", "description": "Say you are done: runner commits your changes with "
     "`commit_message` and runs the ticket's checks.",
     "input_schema": {"type": "object", "properties": {
         "summary": {"type": "string"}, "commit_message": {"type": "string"}},
         "required": ["summary", "commit_message"]}},
]


@dataclass(frozen=True)
class ToolOutput:
    text: str
    is_error: bool = False


def cut(text: str, budget: int = OUTPUT_BUDGET) -> str:
    """Keep the head and the tail of long output, saying how much was left out."""
    if len(text) <= budget:
        return text
    half = budget // 2
    return f"{text[:half]}\n[... {len(text) - budget} characters cut ...]\n{text[-half:]}"


def run_tool(sandbox: Sandbox, name: str, args: dict[str, Any], timeout: float) -> ToolOutput:
    """Run one tool call. Whatever the model sends, the answer is a ToolOutput: a bad call is
    an error the model reads, never an exception that would cost the ticket its work."""
    try:
        return _run_tool(sandbox, name, args, timeout)
    except KeyError as e:
        return ToolOutput(f"missing argument {e}", is_error=True)
    except ToolError as e:
        return ToolOutput(str(e), is_error=True)
    except EnvironmentProblem:
        raise                   # no engine, no container: nothing the model could do about it
    except Exception as e:
        return ToolOutput(f"{name} failed: {type(e).__name__}: {e}", is_error=True)


def _text(args: dict[str, Any], key: str) -> str:
    value = args[key]
    if not isinstance(value, str):
        raise ToolError(f"argument {key!r} must be a string")
    return value


def _seconds(value: Any, default: float) -> float:
    try:
        seconds = float(value) if value is not None else default
    except (TypeError, ValueError):
        return default
    return seconds if 1 <= seconds <= default else default


def _run_tool(sandbox: Sandbox, name: str, args: dict[str, Any], timeout: float) -> ToolOutput:
    if not isinstance(args, dict):
        raise ToolError("tool input must be an object")
    if name == "bash":
        limit = min(_seconds(args.get("timeout"), BASH_TIMEOUT), timeout)
        result = sandbox.exec(["bash", "-c", _text(args, "command")], timeout=limit)
        status = (f" (stopped: {result.stopped})" if result.stopped
                  else " (timed out)" if result.timed_out else "")
        return ToolOutput(f"exit {result.exit_code}{status}\n{cut(result.output)}",
                          is_error=not result.ok)
    if name == "read_file":
        return ToolOutput(cut(_read(sandbox, _text(args, "path"), timeout)))
    if name == "write_file":
        _write(sandbox, _text(args, "path"), _text(args, "content"), timeout)
        return ToolOutput(f"wrote {args['path']}")
    if name == "edit_file":
        path, old, new = _text(args, "path"), _text(args, "old"), _text(args, "new")
        text = _read(sandbox, path, timeout)
        found = text.count(old) if old else 0
        if found != 1:
            return ToolOutput(f"`old` occurs {found} times in {path}; it must occur exactly "
                              "once (include more context)", is_error=True)
        _write(sandbox, path, text.replace(old, new), timeout)
        return ToolOutput(f"edited {path}")
    return ToolOutput(f"unknown tool {name!r}", is_error=True)


class ToolError(Exception):
    pass


def _read(sandbox: Sandbox, path: str, timeout: float) -> str:
    """The whole file (exec output is only a tail), through a runner-owned temp file."""
    with tempfile.TemporaryDirectory(prefix="runner-read-") as tmp:
        dest = Path(tmp) / "content"
        result = sandbox.exec_to_file(["cat", "--", path], timeout=timeout, dest=dest,
                                      limit=READ_LIMIT)
        if not result.ok:
            raise ToolError(f"cannot read {path}: {result.output.strip()}")
        return dest.read_bytes().decode("utf-8", "replace")


def _write(sandbox: Sandbox, path: str, content: str, timeout: float) -> None:
    """Content travels base64 in the environment (any bytes, no quoting, written as the
    worker), in chunks below the kernel's 128 KiB limit for one environment string."""
    data = content.encode()
    for offset in range(0, max(len(data), 1), WRITE_CHUNK):
        redirect = ">" if offset == 0 else ">>"
        script = ('mkdir -p -- "$(dirname -- "$1")" && '
                  f'printf %s "$RUNNER_CONTENT" | base64 -d {redirect} "$1"')
        chunk = base64.b64encode(data[offset:offset + WRITE_CHUNK]).decode()
        result = sandbox.exec(["bash", "-c", script, "write", path], timeout=timeout,
                              env={"RUNNER_CONTENT": chunk})
        if not result.ok:
            raise ToolError(f"cannot write {path}: {result.output.strip()}")
