"""Claude Code's stream-json lines into one-liners and transcript entries, whatever arrives:
events, stderr, and lines the sandbox cut at LINE_LIMIT."""

from __future__ import annotations

import json
from pathlib import Path

from runner.agents.claude_stream import RunState, StreamReader, failure_text
from runner.records.transcript import Transcript, render
from runner.sandbox import LINE_LIMIT, OutputTail

SESSION = "7ba4985b-8147-4f35-96e0-6119a5aaafaa"


def read(tmp_path: Path, *lines: str) -> tuple[list[str], RunState, str]:
    shown: list[str] = []
    state = RunState()
    transcript = Transcript(tmp_path / "t.jsonl")
    # Through the sandbox's own line cutter, as a worker's output arrives.
    tail = OutputTail(StreamReader(transcript, shown.append, state))
    tail.feed("".join(line + "\n" for line in lines))
    tail.close()
    return shown, state, "\n".join(render(transcript.path))


def event(**fields: object) -> str:
    return json.dumps({"session_id": SESSION, **fields})


def test_events_become_one_liners_and_transcript_entries(tmp_path: Path) -> None:
    shown, state, transcript = read(
        tmp_path,
        event(type="system", subtype="init", model="m", claude_code_version="2.1.0",
              tools=["Bash"]),
        event(type="system", subtype="api_retry", attempt=1, max_retries=10,
              retry_delay_ms=1500, error_status=429, error="rate_limit"),
        event(type="assistant", message={"model": "m", "content": [
            {"type": "text", "text": "Thinking.\nNow the file."},
            {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "ls\n-la"}}]}),
        event(type="user", message={"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "is_error": True,
             "content": [{"type": "text", "text": "no such file\nmore"}]}]}),
        "some stderr line",
        event(type="result", subtype="success", is_error=False, num_turns=2,
              total_cost_usd=0.5, usage={"input_tokens": 10, "output_tokens": 5}, result="ok"))
    assert shown == [
        f"claude 2.1.0: session {SESSION}, model m",
        "claude: API 429 (rate_limit), retry 1/10 in 1.5s",
        "Now the file.", "tool Bash: ls ⏎ -la", "  error no such file (+1 lines)",
        "some stderr line", "claude: ended after 2 turns, $0.5000 by its count"]
    assert state.session_id == SESSION and state.retries == 1
    assert state.result and state.result["num_turns"] == 2
    assert "tool Bash result (error)" in transcript
    assert '-> Bash {"command": "ls\\n-la"}' in transcript
    assert "claude-code ended (success) after 2 turns, 10 in / 5 out" in transcript


def test_a_result_cut_by_the_sandbox_is_salvaged(tmp_path: Path) -> None:
    long = event(type="assistant", message={"content": [{"type": "text", "text": "x" * 40000}]})
    result = json.dumps({"duration_ms": 5, "session_id": SESSION, "is_error": True,
                         "num_turns": 3, "total_cost_usd": 0.25, "terminal_reason": "api_error",
                         "result": "y" * 40000, "type": "result"})
    shown, state, transcript = read(tmp_path, long, result)
    assert len(long) > LINE_LIMIT
    assert shown[0].startswith("claude: assistant event too long to show")
    assert shown[1].startswith("claude: result event too long to show")
    assert state.result == {"session_id": SESSION, "is_error": True, "num_turns": 3,
                            "total_cost_usd": 0.25, "terminal_reason": "api_error",
                            "type": "result", "salvaged": True}
    assert state.session_id == SESSION and failure_text(state.result) == "api_error"


def test_junk_never_raises(tmp_path: Path) -> None:
    shown, state, _ = read(tmp_path, "{not json", "[1, 2]", '{"type": "assistant", "message": 5}',
                           '{"type": "user", "message": {"content": [7, {"type": "tool_result"}]}}',
                           '{"type": "mystery"}', "")
    assert "[1, 2]" in shown and state.result is None


def test_failure_text_prefers_the_result_then_errors() -> None:
    assert failure_text({"result": "API Error: 400 budget\nspent"}) == "API Error: 400 budget spent"
    assert failure_text({"errors": ["Reached maximum number of turns (1)"],
                         "subtype": "error_max_turns"}) == "Reached maximum number of turns (1)"
    assert failure_text({"subtype": "error_during_execution"}) == "error_during_execution"
