"""LLM workers against a fake Messages API on 127.0.0.1, through the real anthropic SDK:
tools, retries, fix loops, budgets, API errors, the ledger, and a key that stays on the host."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runner.records.ledger import Usage, default_prices
from tests.fakes.messages_api import Fail, FakeMessagesAPI, Reply, text, tool
from tests.helpers import git, make_repo, run_json, runner_cli, write_phase

KEY = "sk-ant-test-4242424242"
SCRIPTS = {
    "EDIT": [
        Reply([text("Writing the file."), tool("write_file", path="notes/hello.txt",
                                               content="hello\n"),
               tool("bash", command="env")], usage=(1200, 80, 300, 0)),
        Reply([tool("edit_file", path="README.md", old="hello", new="hello, world"),
               tool("read_file", path="notes/hello.txt")], usage=(1500, 60, 0, 900)),
        Reply([tool("finish", summary="greeted", commit_message="EDIT: greet the world")],
              usage=(1700, 40, 0, 1100)),
    ],
    "RETRY": [
        Fail(429, "slow down", kind="rate_limit_error", headers={"retry-after": "1"}),
        Fail(529, "overloaded", kind="overloaded_error"),
        Reply([tool("write_file", path="retry.txt", content="made it\n"),
               tool("finish", summary="done", commit_message="RETRY: made it")]),
    ],
    "FIX": [
        Reply([tool("finish", summary="done?", commit_message="FIX: first try")]),
        Reply([tool("write_file", path="fixed.txt", content="fixed\n"),
               tool("finish", summary="fixed", commit_message="FIX: add fixed.txt")]),
    ],
    "BUDGET": [
        Reply([tool("write_file", path="partial.txt", content="half done\n")],
              usage=(400, 100, 0, 0)),
        Reply([tool("bash", command="echo more")], usage=(400, 200, 0, 0)),
    ],
    "BAD": [Fail(400, "messages: tool_use ids must be unique", kind="invalid_request_error")],
    "ORDER": [
        Reply([tool("finish", summary="early", commit_message="ORDER: too early"),
               tool("write_file", path="late.txt", content="late\n")]),
        Reply([tool("finish", summary="done", commit_message="ORDER: done")]),
    ],
    "JUNK": [
        Reply([tool("bash", command=123, timeout="nan"), tool("write_file", path="x"),
               tool("edit_file", path="nope.txt", old="a", new="b"), tool("no_such_tool")]),
        Reply([tool("finish", summary="nothing", commit_message="JUNK: nothing")]),
    ],
    "BIG": [
        Reply([tool("write_file", path="big.txt", content="0123456789abcdef" * 20000),
               tool("bash", command="wc -c < big.txt")]),
        Reply([tool("finish", summary="big", commit_message="BIG: 320000 bytes")]),
    ],
}


@pytest.fixture(scope="module")
def llm_run(tmp_path_factory: pytest.TempPathFactory, worker_image: str):
    root = tmp_path_factory.mktemp("anthropic")
    repo = make_repo(root / "repo", {"README.md": "hello\n"})
    tickets = [{"id": t, "prompt": f"Ticket {t}: see the script."} for t in SCRIPTS]
    tickets[2]["checks"] = ["test -f fixed.txt"]
    tickets[3]["max_tokens"] = 1000
    phase = write_phase(root / "phase.yaml", {"name": "llm", "concurrency": 4,
                                              "tickets": tickets})
    with FakeMessagesAPI(SCRIPTS) as fake:
        env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": fake.url}
        proc, doc = run_json("run", str(phase), "--repo", str(repo), env=env)
    return repo, proc, doc, fake


def _ticket(doc: dict, ticket: str) -> dict:
    return next(t for t in doc["tickets"] if t["id"] == ticket)


def test_statuses(llm_run) -> None:
    _, proc, doc, _ = llm_run
    assert proc.returncode == 1, proc.stderr
    assert {t["id"]: t["status"] for t in doc["tickets"]} == {
        "EDIT": "integrated", "RETRY": "integrated", "FIX": "integrated",
        "BUDGET": "failed", "BAD": "failed", "ORDER": "integrated", "JUNK": "failed",
        "BIG": "integrated"}


def test_tools_edit_files_and_the_commit_is_integrated(llm_run) -> None:
    repo, _, doc, fake = llm_run
    ref = _ticket(doc, "EDIT")["ref"]
    assert git(repo, "log", "-1", "--format=%s", ref) == "EDIT: greet the world"
    assert git(repo, "show", f"{doc['target']}:notes/hello.txt") == "hello"
    assert git(repo, "show", f"{doc['target']}:README.md") == "hello, world"
    # The second request carried the tool results back to the model.
    results = [block for block in fake.requests_for("EDIT")[1].body["messages"][-1]["content"]
               if block["type"] == "tool_result"]
    assert results[0]["content"] == "wrote notes/hello.txt"
    assert results[1]["content"].startswith("exit 0")
    read_back = fake.requests_for("EDIT")[2].body["messages"][-1]["content"]
    assert read_back[0]["content"] == "edited README.md"
    assert read_back[1]["content"] == "hello\n"


def test_finish_counts_only_as_the_last_call(llm_run) -> None:
    repo, _, doc, fake = llm_run
    first = fake.requests_for("ORDER")[1].body["messages"][-1]["content"]
    assert first[0]["is_error"] and first[0]["content"].startswith("not run: call finish last")
    assert first[1]["content"] == "wrote late.txt"
    ref = _ticket(doc, "ORDER")["ref"]
    assert git(repo, "log", "--format=%s", f"main..{ref}").splitlines() == ["ORDER: done"]
    assert git(repo, "show", f"{ref}:late.txt") == "late"


def test_bad_tool_calls_are_errors_the_model_reads(llm_run) -> None:
    _, _, doc, fake = llm_run
    results = fake.requests_for("JUNK")[1].body["messages"][-1]["content"]
    assert [r["is_error"] for r in results] == [True] * 4
    assert results[0]["content"] == "argument 'command' must be a string"
    assert results[1]["content"] == "missing argument 'content'"
    assert results[2]["content"].startswith("cannot read nope.txt")
    assert results[3]["content"] == "unknown tool 'no_such_tool'"
    assert _ticket(doc, "JUNK")["reason"] == "it changed nothing"


def test_large_files_are_written_whole(llm_run) -> None:
    repo, _, doc, fake = llm_run
    results = fake.requests_for("BIG")[1].body["messages"][-1]["content"]
    assert results[1]["content"] == "exit 0\n320000\n"
    assert len(git(repo, "show", f"{_ticket(doc, 'BIG')['ref']}:big.txt")) == 320000


def test_rate_limit_and_overload_are_retried(llm_run) -> None:
    _, _, doc, fake = llm_run
    assert _ticket(doc, "RETRY")["retries"] == 2
    assert len(fake.requests_for("RETRY")) == 3


def test_failing_check_then_fix(llm_run) -> None:
    repo, _, doc, fake = llm_run
    fix = _ticket(doc, "FIX")
    assert fix["fix_loops"] == 1
    feedback = fake.requests_for("FIX")[1].body["messages"][-1]["content"][0]
    assert feedback["is_error"] and "test -f fixed.txt" in feedback["content"]
    subjects = git(repo, "log", "--format=%s", f"main..{fix['ref']}").splitlines()
    assert subjects == ["FIX: add fixed.txt"]  # the first finish had nothing to commit


def test_token_budget_fails_the_ticket_and_keeps_its_work(llm_run) -> None:
    repo, _, doc, _ = llm_run
    budget = _ticket(doc, "BUDGET")
    assert budget["reason"] == ("token budget exceeded: 1100 tokens used of max_tokens 1000")
    assert git(repo, "show", f"{budget['ref']}:partial.txt") == "half done"


def test_api_error_fails_without_retry(llm_run) -> None:
    _, _, doc, fake = llm_run
    bad = _ticket(doc, "BAD")
    assert bad["reason"] == "API error 400: messages: tool_use ids must be unique"
    assert bad["retries"] == 0 and len(fake.requests_for("BAD")) == 1


def test_key_reaches_the_api_and_no_container(llm_run) -> None:
    _, _, doc, fake = llm_run
    for request in fake.requests:
        assert KEY in (request.headers.get("authorization", "")
                       + request.headers.get("x-api-key", ""))
    env_output = fake.requests_for("EDIT")[1].body["messages"][-1]["content"][1]["content"]
    assert "RUNNER_TICKET=EDIT" in env_output and KEY not in env_output
    assert doc["preflight"].startswith("passed")   # its "no host secrets" check included


def test_ledger_matches_what_the_api_sent(llm_run) -> None:
    _, _, doc, fake = llm_run
    price = default_prices()["claude-sonnet-5-5"]      # tier nuanced, by default
    for ticket in ("EDIT", "RETRY", "FIX", "BUDGET", "ORDER"):
        sent = [Usage(*u) for u in fake.sent_usage[ticket]]
        row = _ticket(doc, ticket)
        assert row["model"] == "claude-sonnet-5-5"
        assert row["tokens"] == sum(u.tokens for u in sent)
        assert row["cost_usd"] == pytest.approx(sum(u.cost(price) for u in sent), abs=1e-6)
    edit = sum(u.cost(price) for u in map(lambda u: Usage(*u), fake.sent_usage["EDIT"]))
    assert edit == pytest.approx((4400 * 3 + 180 * 15 + 300 * 3.75 + 2000 * 0.3) / 1e6)
    assert doc["tiers"]["nuanced"]["tokens"] == sum(
        _ticket(doc, t)["tokens"] for t in SCRIPTS)


def test_logs_show_the_transcript(llm_run) -> None:
    repo, _, doc, _ = llm_run
    proc = runner_cli("logs", doc["run_id"], "EDIT", "--repo", str(repo))
    assert proc.returncode == 0, proc.stderr
    assert "-> write_file" in proc.stdout and "tool edit_file" in proc.stdout
    assert "claude-sonnet-5-5" in proc.stdout and "check ok=True" in proc.stdout
    missing = runner_cli("logs", "no-such-run", "EDIT", "--repo", str(repo))
    assert missing.returncode == 2 and "no run 'no-such-run'" in missing.stderr


def test_missing_key_is_an_environment_error(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {"name": "nokey", "tickets": [
        {"id": "A", "prompt": "do it"}]})
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    proc = runner_cli("run", str(phase), "--repo", str(repo), env=env)
    assert proc.returncode == 3 and "ANTHROPIC_API_KEY" in proc.stderr
