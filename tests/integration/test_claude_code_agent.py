"""ClaudeCodeAgent for real: the Claude Code binary in a runner Docker sandbox (the binary's
file mounted read-only at CLAUDE_BINARY), against the fake Messages API on the host's
127.0.0.1 (network host here; the gateway and network none are the end-to-end tests')."""

from __future__ import annotations

import os
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from runner.agents import AgentContext, AgentResult
from runner.agents.claude_binary import bundled_binary, find_binary
from runner.agents.claude_code import ClaudeCodeAgent
from runner.errors import EnvironmentProblem
from runner.host.gitops import open_host_repo
from runner.host.objectstore import STORE, RunObjects
from runner.phase.model import Phase
from runner.records.ledger import Ledger
from runner.records.logcap import CappedLog
from runner.records.transcript import Transcript, render
from runner.sandbox import CLAUDE_BINARY, WORKSPACE, Checkout, Limits, Mount, SandboxSpec
from runner.sandbox.docker.local import DockerSandboxes
from runner.worker.authorship import Authorship
from runner.worker.checks import run_checks
from runner.worker.collecting import commit_leftovers
from tests.fakes.messages_api import Fail, FakeMessagesAPI, Reply, done, text, tool
from tests.helpers import git, make_repo

PLACEHOLDER = "sk-ant-placeholder-not-a-key"


def _binary() -> Path:
    try:
        return find_binary(bundled_binary()).path if bundled_binary() else find_binary().path
    except EnvironmentProblem as e:
        pytest.skip(f"no Claude Code binary ({e}); ./setup.sh --dev installs claude-agent-sdk")


@dataclass
class Ran:
    result: AgentResult
    repo: Path            # the checkout's clone, on this disk (a local engine's)
    objects: Path         # the run's object store it borrows from
    fake: FakeMessagesAPI
    lines: list[str] = field(default_factory=list)
    transcript: str = ""

    def git(self, *args: str) -> str:
        """git in the clone from the host: its alternates name the store's path inside."""
        proc = subprocess.run(["git", "-c", "safe.directory=*", *args], cwd=self.repo,
                              capture_output=True, text=True,
                              env={**os.environ, "GIT_ALTERNATE_OBJECT_DIRECTORIES":
                                   str(self.objects)})
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()


@pytest.fixture
def run_agent(tmp_path: Path, engine, worker_image: str) -> Iterator:
    binary = _binary()

    def run(ticket: dict, script: list[Reply | Fail]) -> Ran:
        ticket = {"id": "CC1", "title": "Claude Code ticket", "prompt": "Do it.", **ticket}
        phase = Phase.model_validate({"name": "cc", "tickets": [ticket]})
        the_ticket = phase.tickets[0]
        repo = make_repo(tmp_path / f"repo-{the_ticket.id}", {"README.md": "hello\n"})
        run_id = f"cc-{secrets.token_hex(4)}"
        head = git(repo, "rev-parse", "HEAD")
        objects = RunObjects(open_host_repo(repo), path=tmp_path / run_id / STORE,
                             run_id=run_id, base=head)
        checkout = Checkout(name=the_ticket.id, branch=f"runner/{run_id}/{the_ticket.id}",
                            start=head, history=objects)
        with FakeMessagesAPI({the_ticket.id: script}) as fake:
            spec = SandboxSpec(
                name=f"runner-{run_id}", image=worker_image, checkout=checkout,
                files=(Mount(binary, CLAUDE_BINARY, read_only=True),),
                env={"HOME": "/tmp", "ANTHROPIC_BASE_URL": fake.url,
                     "ANTHROPIC_API_KEY": PLACEHOLDER, **Authorship().env(the_ticket.id)},
                labels={"runner.run": run_id, "runner.run-dir": str(tmp_path)},
                limits=Limits(cpus=2, memory="2g", pids=512), network="host",
                user=f"{os.getuid()}:{os.getgid()}")
            transcript = Transcript(tmp_path / f"{the_ticket.id}.jsonl")
            lines: list[str] = []
            deadline = time.monotonic() + the_ticket.timeout
            with DockerSandboxes(engine, root=tmp_path / run_id).open(spec) as sandbox, \
                    CappedLog(tmp_path / f"{the_ticket.id}.log") as log:
                ctx = AgentContext(
                    ticket=the_ticket, phase=phase, sandbox=sandbox, on_output=lines.append,
                    deadline=deadline, transcript=transcript, ledger=Ledger(prices={}),
                    account=lambda usage: None, cancelled=threading.Event(),
                    commit=lambda message: commit_leftovers(sandbox, message, run_id=run_id,
                                                            ticket=the_ticket.id),
                    check=lambda: run_checks(sandbox, the_ticket.checks, log=log,
                                             on_output=lines.append, deadline=deadline))
                result = ClaudeCodeAgent().run(ctx)
                clone = sandbox.workspace.clone
        return Ran(result, clone, objects.objects, fake, lines,
                   "\n".join(render(transcript.path)))

    yield run


def test_writes_runs_and_commits_a_ticket(run_agent) -> None:
    ran = run_agent({"checks": ["grep -q hi hello.txt"]}, [
        Reply([text("Writing the file."),
               tool("Write", file_path=f"{WORKSPACE}/hello.txt", content="hi\n")]),
        Reply([tool("Bash", command="echo bye >> hello.txt && wc -l hello.txt")]),
        done("Wrote hello.txt.")])
    assert ran.result.ok and ran.result.checked, ran.result.reason
    assert ran.result.turns == 3 and ran.result.fix_loops == 0
    assert ran.git("log", "-1", "--format=%s") == "CC1: Claude Code ticket"
    assert ran.git("show", "HEAD:hello.txt") == "hi\nbye"
    # The live view: readable one-liners, never raw JSON.
    assert "tool Write: /workspace/hello.txt" in ran.lines
    assert "tool Bash: echo bye >> hello.txt && wc -l hello.txt" in ran.lines
    assert "  -> 2 hello.txt" in ran.lines and "Wrote hello.txt." in ran.lines
    assert not [line for line in ran.lines if line.startswith("{")]
    # The transcript shows its tool calls and their results.
    assert '-> Bash {"command": "echo bye >> hello.txt && wc -l hello.txt"}' in ran.transcript
    assert "tool Bash result" in ran.transcript and "claude-code ended (success)" in ran.transcript
    # Claude Code found the ticket in its system prompt, with the appended context.
    first = ran.fake.requests_for("CC1")[0]
    assert "Ticket: CC1 — Claude Code ticket" in "\n".join(b["text"] for b in first.body["system"])
    assert first.last_user_text().endswith("Do it.")
    assert {r.headers.get("x-api-key") for r in ran.fake.requests} == {PLACEHOLDER}


def test_a_failed_check_resumes_the_same_session(run_agent) -> None:
    ran = run_agent({"checks": ["test -f fixed.txt"], "max_fix_loops": 2}, [
        Reply([tool("Bash", command="echo first > first.txt")]),
        done("Done, I think."),
        Reply([tool("Write", file_path=f"{WORKSPACE}/fixed.txt", content="fixed\n")]),
        done("Fixed.")])
    assert ran.result.ok and ran.result.fix_loops == 1, ran.result.reason
    first, _, resumed, _ = ran.fake.requests_for("CC1")
    assert resumed.continues(first)
    assert "check `test -f fixed.txt` exited with 1" in resumed.last_user_text()
    assert ran.git("show", "HEAD:fixed.txt") == "fixed"
    assert "claude-code resumes session" in ran.transcript
    # No gateway here: the ledger metered nothing, and the transcript says they differ.
    assert "usage differs: Claude Code counted 200 in / 70 out" in ran.transcript


def test_an_api_refusal_fails_the_ticket_with_its_message(run_agent) -> None:
    ran = run_agent({}, [Reply([tool("Bash", command="echo partial > partial.txt")]),
                         *[Fail(400, "the phase budget of $1 is spent",
                                kind="invalid_request_error")] * 6])
    assert not ran.result.ok and not ran.result.checked
    assert ran.result.reason == "Claude Code: API Error: 400 the phase budget of $1 is spent"
    assert (ran.repo / "partial.txt").exists()     # the worker commits what it left


def test_lines_longer_than_the_sandbox_hands_on_do_not_break_it(run_agent) -> None:
    ran = run_agent({}, [Reply([tool("Bash", command="head -c 40000 /dev/zero | tr '\\0' x")]),
                         done("y" * 30000)])
    assert ran.result.ok, ran.result.reason
    assert any("too long to show" in line for line in ran.lines)
    assert ran.result.turns == 2
