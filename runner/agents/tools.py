"""The tools an LLM worker has. Each runs inside the worker's sandbox, as the worker."""

from __future__ import annotations

import base64
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.sandbox import Sandbox

OUTPUT_BUDGET = 16_000       # characters of a tool's output the model sees
BASH_TIMEOUT = 600
READ_LIMIT = 8 << 20         # bytes of a file read_file and edit_file will take

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
    try:
        if name == "bash":
            limit = min(float(args.get("timeout") or BASH_TIMEOUT), timeout)
            result = sandbox.exec(["bash", "-c", str(args["command"])], timeout=limit)
            status = " (timed out)" if result.timed_out else ""
            return ToolOutput(f"exit {result.exit_code}{status}\n{cut(result.output)}",
                              is_error=not result.ok)
        if name == "read_file":
            text = _read(sandbox, args["path"], timeout)
            return ToolOutput(cut(text))
        if name == "write_file":
            _write(sandbox, args["path"], args["content"], timeout)
            return ToolOutput(f"wrote {args['path']}")
        if name == "edit_file":
            text = _read(sandbox, args["path"], timeout)
            found = text.count(args["old"])
            if found != 1:
                return ToolOutput(f"`old` occurs {found} times in {args['path']}; it must occur "
                                  "exactly once (include more context)", is_error=True)
            _write(sandbox, args["path"], text.replace(args["old"], args["new"]), timeout)
            return ToolOutput(f"edited {args['path']}")
    except KeyError as e:
        return ToolOutput(f"missing argument {e}", is_error=True)
    except ToolError as e:
        return ToolOutput(str(e), is_error=True)
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
    # Content travels base64 in the environment: any bytes, no quoting, written as the worker.
    script = 'mkdir -p -- "$(dirname -- "$1")" && printf %s "$RUNNER_CONTENT" | base64 -d > "$1"'
    result = sandbox.exec(["bash", "-c", script, "write", path], timeout=timeout,
                          env={"RUNNER_CONTENT": base64.b64encode(content.encode()).decode()})
    if not result.ok:
        raise ToolError(f"cannot write {path}: {result.output.strip()}")
