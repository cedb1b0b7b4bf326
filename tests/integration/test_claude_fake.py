"""The real Claude Code binary on the host against tests/fakes/messages_api.py: the fake plays
Claude Code's side of the protocol well enough for its tools to run, a resumed session to
reach it whole, and a 429 to be retried by Claude Code itself. No Docker, no gateway."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import anthropic
import pytest

from runner.agents.claude_binary import bundled_binary, find_binary
from runner.agents.claude_code import ENV
from runner.errors import EnvironmentProblem
from tests.fakes.messages_api import Fail, FakeMessagesAPI, Reply, done, text, tool
from tests.helpers import git, make_repo

KEY = "sk-ant-test-key"


@pytest.fixture(scope="module")
def claude() -> Path:
    try:
        return find_binary(bundled_binary()).path if bundled_binary() else find_binary().path
    except EnvironmentProblem as e:
        pytest.skip(f"no Claude Code binary ({e}); ./setup.sh --dev installs claude-agent-sdk")


def run_claude(claude: Path, fake: FakeMessagesAPI, repo: Path, home: Path, prompt: str, *,
               ticket: str = "T1", resume: str = "", quiet: bool = True
               ) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    env = {"PATH": "/usr/bin:/bin", **ENV, "HOME": str(home),
           "CLAUDE_CONFIG_DIR": str(home / ".claude"),
           "ANTHROPIC_BASE_URL": fake.url, "ANTHROPIC_API_KEY": KEY}
    if not quiet:
        env.pop("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC")
    argv = [str(claude), "-p", "--append-system-prompt", f"Ticket: {ticket} — a test",
            "--dangerously-skip-permissions", "--model", "claude-sonnet-5-5",
            "--max-turns", "10", "--output-format", "stream-json", "--verbose",
            *(["--resume", resume] if resume else []), "--", prompt]
    proc = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    return proc, [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def test_write_bash_edit_then_a_resumed_session(claude: Path, tmp_path: Path) -> None:
    repo, home = make_repo(tmp_path / "repo"), tmp_path / "home"
    home.mkdir()
    script = [Reply([text("Writing."), tool("Write", file_path="notes.txt", content="one\n")]),
              Reply([tool("Bash", command="echo two >> notes.txt && cat notes.txt")]),
              Reply([tool("Edit", file_path=str(repo / "notes.txt"), old_string="two",
                          new_string="2")]),
              done("Done."),
              Reply([tool("Bash", command="echo fixed > fixed.txt")]),
              done("Fixed.")]
    with FakeMessagesAPI({"T1": script}) as fake:
        proc, events = run_claude(claude, fake, repo, home, "Make notes.txt.")
        assert proc.returncode == 0, proc.stderr
        assert (repo / "notes.txt").read_text() == "one\n2\n"
        init, result = events[0], events[-1]
        assert init["type"] == "system" and init["subtype"] == "init"
        assert {"Bash", "Write", "Edit", "Read"} <= set(init["tools"])
        assert result["type"] == "result" and result["is_error"] is False
        assert result["num_turns"] == 4 and result["usage"]["output_tokens"] == 170
        assert result["session_id"] == init["session_id"]

        proc, events = run_claude(claude, fake, repo, home, "The check failed: X. Fix it.",
                                  resume=init["session_id"])
        assert proc.returncode == 0, proc.stderr
        assert (repo / "fixed.txt").read_text() == "fixed\n"
    conversation = fake.requests_for("T1")
    assert len(conversation) == 6 and fake.side_requests == []
    # Every request is the ticket's (found by the appended system prompt), streamed, as
    # Claude Code sends it; the tool results went back.
    assert all(r.body["stream"] and r.path.startswith("/v1/messages") for r in conversation)
    assert {r.headers["x-api-key"] for r in conversation} == {KEY}
    assert "Writing." in conversation[1].texts("assistant")
    assert "one\ntwo" in conversation[2].last_user_text()
    # The resumed run carried the whole first conversation and the new prompt.
    first_run_last, resumed = conversation[3], conversation[4]
    assert resumed.continues(first_run_last) and resumed.continues(conversation[0])
    assert resumed.last_user_text().endswith("The check failed: X. Fix it.")
    assert len(set(conversation[-1].tool_use_ids())) == 4          # unique ids


def test_claude_code_retries_a_429_itself(claude: Path, tmp_path: Path) -> None:
    repo, home = make_repo(tmp_path / "repo"), tmp_path / "home"
    home.mkdir()
    script = [Fail(429, "slow down", kind="rate_limit_error", headers={"retry-after": "1"}),
              Reply([tool("Bash", command="echo made > made.txt")]), done()]
    with FakeMessagesAPI({"T1": script}) as fake:
        proc, events = run_claude(claude, fake, repo, home, "Make made.txt.", quiet=False)
    assert proc.returncode == 0, proc.stderr
    assert (repo / "made.txt").read_text() == "made\n"
    [retry] = [e for e in events if e.get("subtype") == "api_retry"]
    assert retry["error_status"] == 429 and retry["retry_delay_ms"] >= 1000   # retry-after
    assert len(fake.requests_for("T1")) == 3
    # Without CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC it also checks the API answers; that
    # is answered apart, and no script step is spent on it.
    assert [(r.method, r.path) for r in fake.side_requests] == [("HEAD", "/api/hello")]


def test_a_tool_the_request_does_not_offer_fails_loudly(claude: Path, tmp_path: Path) -> None:
    repo, home = make_repo(tmp_path / "repo"), tmp_path / "home"
    home.mkdir()
    with pytest.raises(AssertionError, match="calls bash, which the request does not offer"):
        with FakeMessagesAPI({"T1": [Reply([tool("bash", command="true")])]}) as fake:
            proc, events = run_claude(claude, fake, repo, home, "Go.")
    assert proc.returncode != 0
    assert "calls bash, which the request does not offer" in events[-1]["result"]
    assert git(repo, "status", "--porcelain") == ""


def test_the_anthropic_sdk_reads_the_fakes_stream() -> None:
    """The fake's SSE is what the Messages API sends: the SDK's own stream parser agrees."""
    reply = Reply([text("Hello there."), tool("Write", file_path="a.txt", content="a\n")],
                  usage=(120, 30, 5, 7))
    with FakeMessagesAPI({"S1": [reply]}) as fake:
        client = anthropic.Anthropic(api_key=KEY, base_url=fake.url, max_retries=0)
        with client.messages.stream(
                model="claude-sonnet-5-5", max_tokens=100, system="Ticket: S1 — sdk",
                tools=[{"name": "Write", "description": "write",
                        "input_schema": {"type": "object"}}],
                messages=[{"role": "user", "content": "hi"}]) as stream:
            kinds = [event.type for event in stream]
            message = stream.get_final_message()
    assert kinds[0] == "message_start" and "input_json" in kinds and kinds[-1] == "message_stop"
    assert message.content[0].text == "Hello there."
    assert message.content[1].name == "Write" and message.content[1].input == {
        "file_path": "a.txt", "content": "a\n"}
    assert message.stop_reason == "tool_use"
    usage = message.usage
    assert (usage.input_tokens, usage.output_tokens, usage.cache_creation_input_tokens,
            usage.cache_read_input_tokens) == (120, 30, 5, 7)
