"""The phase budget, the command agent, and the demo with LLM workers (fake API)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from runner.cli.demo import PHASE as DEMO_PHASE
from tests.fakes.messages_api import FakeMessagesAPI, Reply, tool
from tests.helpers import API_CALL, git, make_repo, run_json, runner_cli, write_phase

KEY = "sk-ant-test-budget"


def test_phase_budget_stops_workers_and_new_tickets(tmp_path: Path, worker_image: str) -> None:
    repo = make_repo(tmp_path / "repo")
    # One call of A costs $0.0105 (sonnet prices), over the $0.01 budget.
    scripts = {"A": [Reply([tool("write_file", path="a.txt", content="a\n")],
                           usage=(1000, 500, 0, 0))],
               "B": [Reply([tool("finish", summary="b", commit_message="B")])]}
    phase = write_phase(tmp_path / "p.yaml", {
        "name": "budget", "concurrency": 1, "budget": {"usd": 0.01},
        "tickets": [{"id": "A", "prompt": "a"}, {"id": "B", "prompt": "b"}]})
    with FakeMessagesAPI(scripts) as fake:
        env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": fake.url}
        proc, doc = run_json("run", str(phase), "--repo", str(repo), env=env)
    assert proc.returncode == 1
    tickets = {t["id"]: t for t in doc["tickets"]}
    assert tickets["A"]["status"] == "failed"
    assert tickets["A"]["reason"] == "the phase budget of $0.01 is spent"
    assert git(repo, "show", f"{tickets['A']['ref']}:a.txt") == "a"   # its work is kept
    assert tickets["B"]["status"] == "skipped"
    assert tickets["B"]["reason"] == "the phase budget is spent"
    assert fake.requests_for("B") == [] and len(fake.requests_for("A")) == 1


def test_command_agent_gets_the_prompt_and_only_opted_in_secrets(tmp_path: Path,
                                                                 worker_image: str) -> None:
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {
        "name": "cli", "network": "bridge", "tickets": [{
            "id": "C", "agent": "command", "prompt": "say hi", "env": ["CLI_TOKEN"],
            "run": 'echo "$RUNNER_PROMPT" > prompt.txt\necho "$CLI_TOKEN" > token.txt\n'
                   'echo "${OTHER_SECRET:-absent}" > other.txt'}]})
    env = {**os.environ, "CLI_TOKEN": "tok-123", "OTHER_SECRET": "nope"}
    proc, doc = run_json("run", str(phase), "--repo", str(repo), env=env)
    assert proc.returncode == 0, proc.stderr
    ref = doc["tickets"][0]["ref"]
    assert git(repo, "show", f"{ref}:prompt.txt") == "say hi"
    assert git(repo, "show", f"{ref}:token.txt") == "tok-123"
    assert git(repo, "show", f"{ref}:other.txt") == "absent"
    assert "passes CLI_TOKEN from the host into its container" in proc.stderr
    del env["CLI_TOKEN"]
    missing = runner_cli("run", str(phase), "--repo", str(repo), env=env)
    assert missing.returncode == 2 and "CLI_TOKEN" in missing.stderr


def test_command_agent_reaches_the_api_through_the_gateway_with_network_none(
        tmp_path: Path, worker_image: str) -> None:
    """A CLI agent needs no network and no key: curl, like any client, talks to the base URL
    it is given with the placeholder it holds; the gateway adds the key and meters the call."""
    repo = make_repo(tmp_path / "repo")
    call = API_CALL + 'echo "$ANTHROPIC_API_KEY" > key.txt\n'
    phase = write_phase(tmp_path / "p.yaml", {"name": "cli-gw", "tickets": [
        {"id": "C", "agent": "command", "prompt": "say hi", "run": call}]})
    with FakeMessagesAPI({"C": [Reply([tool("noop")], usage=(11, 7, 0, 0))]}) as fake:
        env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": fake.url}
        proc, doc = run_json("run", str(phase), "--repo", str(repo), env=env)
    assert proc.returncode == 0, proc.stderr
    (ticket,) = doc["tickets"]
    assert '"noop"' in git(repo, "show", f"{ticket['ref']}:answer.json")
    assert git(repo, "show", f"{ticket['ref']}:key.txt") == "runner-gateway-placeholder"
    (request,) = fake.requests_for("C")
    assert request.headers["x-api-key"] == KEY
    assert request.body["messages"][0]["content"] == "say hi"
    assert ticket["tokens"] == 18           # metered at the gateway
    assert "network: bridge" not in proc.stderr


def test_demo_with_llm_workers_against_a_compatible_endpoint(tmp_path: Path,
                                                             worker_image: str) -> None:
    # A stand-in model that does each demo ticket the way its script would, through bash.
    runs = {t["id"]: t["run"] for t in yaml.safe_load(DEMO_PHASE)["tickets"]}
    scripts = {ticket: [Reply([tool("bash", command=run)]),
                        Reply([tool("finish", summary="done", commit_message=f"{ticket}: done")])]
               for ticket, run in runs.items()}
    with FakeMessagesAPI(scripts) as fake:
        env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": fake.url}
        proc, doc = run_json("demo", "--agent", "anthropic", "--dir", str(tmp_path), env=env)
    assert proc.returncode == 0, proc.stderr
    assert [t["status"] for t in doc["tickets"]] == ["integrated"] * 5
    assert {t["model"] for t in doc["tickets"]} == {"claude-haiku-5-5", "claude-sonnet-5-5"}
    assert doc["checks_passed"] is True


def _verdict(verdict: str, *reasons: str) -> Reply:
    return Reply([tool("verdict", verdict=verdict, reasons=list(reasons))], usage=(300, 20, 0, 0))


def test_review_gate_sends_changes_back_as_a_fix_loop(tmp_path: Path, worker_image: str) -> None:
    repo = make_repo(tmp_path / "repo")
    scripts = {
        "RV": [Reply([tool("write_file", path="greet.py", content="print('hello')\n"),
                      tool("finish", summary="greets", commit_message="RV: greet")]),
               Reply([tool("write_file", path="test_greet.py", content="import greet\n"),
                      tool("finish", summary="tested", commit_message="RV: test it")])],
        "review:RV": [_verdict("request_changes", "add a test for greet.py"),
                      _verdict("approve", "greets, with a test")],
        "review:SC": [_verdict("request_changes", "the file name is wrong")],
    }
    phase = write_phase(tmp_path / "p.yaml", {
        "name": "reviewed", "review": {"tier": "complex"}, "tickets": [
            {"id": "RV", "prompt": "Write greet.py that prints hello, with a test."},
            {"id": "SC", "agent": "script", "run": "echo x > wrong-name.txt"}]})
    with FakeMessagesAPI(scripts) as fake:
        env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": fake.url}
        proc, doc = run_json("run", str(phase), "--repo", str(repo), env=env)
    tickets = {t["id"]: t for t in doc["tickets"]}
    assert tickets["RV"]["status"] == "integrated", proc.stderr
    assert tickets["RV"]["fix_loops"] == 1
    assert tickets["RV"]["reviews"] == ["request_changes: add a test for greet.py",
                                        "approve: greets, with a test"]
    feedback = fake.requests_for("RV")[1].body["messages"][-1]["content"][-1]
    assert "add a test for greet.py" in feedback["content"]
    first_review = fake.requests_for("review:RV")[0].body
    assert first_review["model"] == "claude-opus-5-5"
    assert first_review["tool_choice"] == {"type": "tool", "name": "verdict"}
    assert "+print('hello')" in first_review["messages"][0]["content"]
    assert "test_greet.py" in git(repo, "ls-tree", "--name-only", doc["target"])
    # A script ticket cannot be asked again: request-changes fails it, with the reasons.
    assert tickets["SC"]["status"] == "failed"
    assert tickets["SC"]["reason"] == "the review requested changes: the file name is wrong"
    assert tickets["RV"]["tokens"] == 150 * 2 + 320 * 2   # worker calls + review calls


def test_the_review_reads_the_start_of_a_big_change_and_is_told_the_rest(
        tmp_path: Path, worker_image: str) -> None:
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {
        "name": "big-review", "review": {"tier": "complex"}, "tickets": [
            {"id": "BIG", "agent": "script",
             "run": "for i in $(seq 20000); do echo \"line $i of a big file\"; done > big.txt"}]})
    with FakeMessagesAPI({"review:BIG": [_verdict("approve", "fine")]}) as fake:
        env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": fake.url}
        proc, doc = run_json("run", str(phase), "--repo", str(repo), env=env)
    assert doc["tickets"][0]["status"] == "integrated", proc.stderr
    content = fake.requests_for("review:BIG")[0].body["messages"][0]["content"]
    change = content.split("The change:\n", 1)[1]
    assert change.startswith("diff --git a/big.txt b/big.txt")
    assert "+line 1 of a big file\n" in change
    left = int(change.rsplit("[… ", 1)[1].split(" more bytes")[0].replace(",", ""))
    size = len(git(repo, "diff", f"{doc['base']}..{doc['target']}").encode()) + 1
    assert abs(60_000 + left - size) < 200, (left, size)   # all of it, counted
