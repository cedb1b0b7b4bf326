"""The real Claude Code binary (from the claude-agent-sdk wheel) as a worker: in containers with
network `none`, through the runner's gateway, against the fake Messages API on 127.0.0.1.
The key stays in runner; usage is metered at the gateway; budgets stop Claude Code there; a
failing check goes back into the same session; an interrupted ticket keeps its work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from runner.agents.claude_binary import bundled_binary
from runner.host.trees import files_holding
from runner.records.record import load_result
from tests.fakes.messages_api import FakeMessagesAPI, Reply, done, tool
from tests.helpers import containers, git, make_repo, run_json, runner_cli, write_phase

KEY = "sk-ant-gateway-test-" + "7f3a9c" * 6
PRICES = {"claude-haiku-5-5": {"input": 1.0, "output": 5.0}}
pytestmark = pytest.mark.skipif(
    bundled_binary() is None or not bundled_binary().is_file(),
    reason="the claude-agent-sdk wheel is not installed (./setup.sh --dev installs it)")


def _env(fake: FakeMessagesAPI) -> dict[str, str]:
    return {**os.environ, "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": fake.url}


def _ticket(ticket_id: str, **more: object) -> dict[str, object]:
    return {"id": ticket_id, "agent": "claude-code", "tier": "simple",
            "prompt": f"Do ticket {ticket_id}.", **more}


def _writes(ticket_id: str, name: str, extra: str = "") -> list[Reply]:
    """Claude Code's turns: Write a file, append to it with Bash, end."""
    return [Reply([tool("Write", file_path=f"/workspace/{name}", content=f"by {ticket_id}\n")],
                  usage=(120, 40, 0, 0)),
            Reply([tool("Bash", command=f"echo bash >> /workspace/{name}{extra}")],
                  usage=(130, 30, 10, 5)),
            done(f"{ticket_id} done.", usage=(140, 20, 0, 0))]


class _EnvironScan:
    """From the host, while the run goes on: the environment of every process in the run's
    containers (/proc/<pid>/environ), and whether a Claude Code process was among them."""

    def __init__(self, engine: docker.DockerClient, under: Path) -> None:
        self.engine, self.under = engine, str(under)
        self.found: list[str] = []
        self.claude_seen = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> _EnvironScan:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _watch(self) -> None:
        while not self._stop.is_set():
            # ignore_removed: workers come and go while it looks.
            for container in containers(self.engine, stopped=False):
                if not container.labels.get("runner.run-dir", "").startswith(self.under):
                    continue
                try:
                    pids = [row[1] for row in container.top().get("Processes") or []]
                except docker.errors.APIError:
                    continue
                for pid in pids:
                    self._look(pid)
            time.sleep(0.1)

    def _look(self, pid: str) -> None:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return
        if b"/runner/claude/claude" in cmdline:
            self.claude_seen = True
        if KEY.encode() in environ or KEY.encode() in cmdline:
            self.found.append(pid)


@pytest.fixture(scope="module")
def three_at_once(tmp_path_factory: pytest.TempPathFactory, engine: docker.DockerClient,
                  worker_image: str) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("claude")
    repo = make_repo(root / "repo")
    # The spy runs beside them and takes all it can read: every process's environment and
    # every file it can see.
    spy = ("(cat /proc/[0-9]*/environ 2>/dev/null || true) | tr '\\0' '\\n' > spy-env.txt\n"
           "(grep -rIl sk-ant /workspace /tmp /gradle-home /runner /etc /home /root "
           "--exclude=spy-env.txt 2>/dev/null || true) > spy-files.txt")
    phase = write_phase(root / "p.yaml", {
        "name": "claude", "concurrency": 4, "prices": PRICES, "tickets": [
            *[_ticket(t, paths=[f"{t.lower()}.txt"]) for t in ("C1", "C2", "C3")],
            {"id": "SPY", "agent": "script", "run": "sleep 1\n" + spy}]})
    scripts = {t: _writes(t, f"{t.lower()}.txt", " && sleep 1") for t in ("C1", "C2", "C3")}
    with FakeMessagesAPI(scripts) as fake, _EnvironScan(engine, root) as scan:
        proc, doc = run_json("run", str(phase), "--repo", str(repo), "--keep", env=_env(fake))
    homes = {}
    for container in containers(engine):
        if not container.labels.get("runner.run-dir", "").startswith(str(root)):
            continue
        try:
            ticket = container.labels["runner.ticket"]
            if ticket in scripts:   # Claude Code's HOME (/tmp, a tmpfs: no archive API) as tar
                container.start()
                homes[ticket] = container.exec_run(["tar", "-C", "/tmp", "-cf", "-", "."],
                                                   user=container.attrs["Config"]["User"]
                                                   and f"{os.getuid()}:{os.getgid()}").output
        finally:
            container.remove(force=True)
    yield {"repo": repo, "proc": proc, "doc": doc, "fake": fake, "scan": scan,
           "homes": homes, "run_dir": Path(doc["run_dir"])}


def test_three_real_claude_code_workers_integrate(three_at_once) -> None:
    run = three_at_once
    proc, doc, repo = run["proc"], run["doc"], run["repo"]
    assert proc.returncode == 0, proc.stderr
    tickets = {t["id"]: t for t in doc["tickets"]}
    for t in ("C1", "C2", "C3"):
        assert tickets[t]["status"] == "integrated", tickets[t]
        assert git(repo, "show", f"{tickets[t]['ref']}:{t.lower()}.txt") == f"by {t}\nbash"
        assert git(repo, "show", f"{doc['target']}:{t.lower()}.txt") == f"by {t}\nbash"
    assert not run["fake"].problems
    # Each ran in its own container at the same time as the others.
    outcomes = load_result(run["run_dir"]).outcomes
    spans = [(outcomes[t].started, outcomes[t].ended) for t in ("C1", "C2", "C3")]
    assert max(s for s, _ in spans) < min(e for _, e in spans)


def test_the_key_reaches_the_api_and_nothing_else(three_at_once) -> None:
    run = three_at_once
    fake = run["fake"]
    every = fake.requests + fake.side_requests
    assert every and all(r.headers.get("x-api-key") == KEY for r in every)
    assert all("authorization" not in r.headers for r in every)
    # Not in any process's environment while Claude Code ran (read from the host)...
    assert run["scan"].claude_seen and run["scan"].found == []
    # ... nor in any workspace, Gradle home, log or transcript of the run ...
    assert files_holding(KEY.encode(), [run["run_dir"]]) == []
    # ... nor in Claude Code's HOME, nor anything the spy beside them could read.
    assert set(run["homes"]) == {"C1", "C2", "C3"}
    assert all(KEY.encode() not in tar and b".claude" in tar for tar in run["homes"].values())
    spy = run["doc"]["tickets"][-1]
    env_dump = git(run["repo"], "show", f"{spy['ref']}:spy-env.txt")
    assert "ANTHROPIC_API_KEY=runner-gateway-placeholder" in env_dump and KEY not in env_dump
    assert git(run["repo"], "show", f"{spy['ref']}:spy-files.txt") == ""


def test_tokens_and_cost_are_what_the_fake_sent(three_at_once) -> None:
    run = three_at_once
    sent = run["fake"].sent_usage
    report = runner_cli("report", run["doc"]["run_id"], "--repo", str(run["repo"]),
                        "--format", "json")
    assert report.returncode == 0, report.stderr
    reported = {t["id"]: t for t in json.loads(report.stdout)["tickets"]}
    for t in ("C1", "C2", "C3"):
        tokens = sum(sum(u) for u in sent[t])
        cost = sum(u[0] * 1.0 + u[1] * 5.0 for u in sent[t]) / 1e6
        ticket = next(x for x in run["doc"]["tickets"] if x["id"] == t)
        assert ticket["tokens"] == tokens and ticket["cost_usd"] == pytest.approx(cost)
        assert reported[t]["tokens"] == tokens
        assert ticket["model"] == "claude-haiku-5-5"
    # The summary's rows (status prints the run's summary; plain lines off a terminal).
    status = runner_cli("status", run["doc"]["run_id"], "--repo", str(run["repo"]))
    for t in ("C1", "C2", "C3"):
        cost = sum(u[0] * 1.0 + u[1] * 5.0 for u in sent[t]) / 1e6
        line = next(x for x in status.stdout.splitlines()
                    if x.startswith(f"{t} | result: integrated"))
        assert f"tokens: {sum(sum(u) for u in sent[t]):,}" in line
        assert f"cost: ${cost:.4f}" in line and "model: claude-haiku-5-5" in line
    transcript = (run["run_dir"] / "transcripts" / "C1.jsonl").read_text()
    api = [json.loads(line) for line in transcript.splitlines()
           if json.loads(line)["kind"] == "api"]
    assert [a["tokens"] for a in api] == [sum(u) for u in sent["C1"]]


@pytest.fixture(scope="module")
def three_on_remote(tmp_path_factory: pytest.TempPathFactory, remote_engine,
                    remote_worker_image: str) -> Iterator[dict]:
    """The three at once on another machine's engine (reached over TCP, sharing no disk):
    their way out is the relay beside each container's keeper, carried over the engine's
    exec streams to the gateway here; Claude Code reaches the engine once, in a volume."""
    root = tmp_path_factory.mktemp("claude-remote")
    repo = make_repo(root / "repo")
    phase = write_phase(root / "p.yaml", {
        "name": "claude-remote", "concurrency": 3, "prices": PRICES,
        "tickets": [_ticket(t, paths=[f"{t.lower()}.txt"]) for t in ("R1", "R2", "R3")]})
    scripts = {t: _writes(t, f"{t.lower()}.txt", " && sleep 1") for t in ("R1", "R2", "R3")}
    client = remote_engine.client
    with FakeMessagesAPI(scripts) as fake:
        proc, doc = run_json("run", str(phase), "--repo", str(repo), "--keep", "--engine",
                             remote_engine.url, env=_env(fake))
    # Where the key could be on that engine: each kept container's settings and what its
    # tmpfs holds (Claude Code's HOME is /tmp), and every file under the engine's data root
    # (images, containers' layers and logs, every volume).
    seen = {}
    for container in containers(client, doc.get("run_id")):
        try:
            if container.labels.get("runner.ticket") in scripts:
                seen[container.name] = json.dumps(container.attrs).encode()
                container.start()
                seen[container.name] += container.exec_run(
                    ["sh", "-c", 'grep -rlF "$0" /tmp /workspace /gradle-home; ls -a /tmp', KEY],
                    user=f"{os.getuid()}:{os.getgid()}").output
        finally:
            container.remove(force=True)
    def grep_engine(needle: str) -> bytes:
        return remote_engine.container.exec_run(
            ["sh", "-c", 'grep -rlF -D skip --binary-files=text "$0" /var/lib/docker '
             '2>/dev/null; true', needle]).output

    # The scan finds what is there (a workspace's file), then looks for the key.
    control, everywhere = grep_engine("by R1"), grep_engine(KEY)
    carried = [v.name for v in client.volumes.list(filters={"label": "runner.file"})]
    for volume in client.volumes.list(filters={"label": f"runner.run={doc.get('run_id')}"}):
        volume.remove(force=True)
    yield {"repo": repo, "proc": proc, "doc": doc, "fake": fake, "seen": seen,
           "control": control, "everywhere": everywhere, "carried": carried}


def test_three_claude_code_workers_on_a_remote_engine_integrate_through_the_gateway(
        three_on_remote) -> None:
    run = three_on_remote
    proc, doc, repo, fake = run["proc"], run["doc"], run["repo"], run["fake"]
    assert proc.returncode == 0, proc.stderr
    assert "isolation self-test passed" in proc.stderr
    tickets = {t["id"]: t for t in doc["tickets"]}
    for t in ("R1", "R2", "R3"):
        assert tickets[t]["status"] == "integrated", tickets[t]
        assert git(repo, "show", f"{doc['target']}:{t.lower()}.txt") == f"by {t}\nbash"
        # Metered at the gateway here, as on this machine's engine.
        assert tickets[t]["tokens"] == sum(sum(u) for u in fake.sent_usage[t])
    assert not fake.problems
    outcomes = load_result(Path(doc["run_dir"])).outcomes
    spans = [(outcomes[t].started, outcomes[t].ended) for t in ("R1", "R2", "R3")]
    assert max(s for s, _ in spans) < min(e for _, e in spans)
    # One copy of Claude Code on the engine, whatever the number of sandboxes.
    assert len(run["carried"]) == 1


def test_the_key_is_nowhere_on_the_remote_engine(three_on_remote) -> None:
    run = three_on_remote
    every = run["fake"].requests + run["fake"].side_requests
    assert every and all(r.headers.get("x-api-key") == KEY for r in every)
    assert set(run["seen"]) and all(b".claude" in seen for seen in run["seen"].values())
    assert [name for name, seen in run["seen"].items() if KEY.encode() in seen] == []
    assert b"/volumes/" in run["control"] and run["everywhere"] == b""


@pytest.mark.parametrize("where", ["local", "remote"])
def test_the_phase_budget_and_max_tokens_stop_claude_code_at_the_gateway(
        tmp_path: Path, where: str, request: pytest.FixtureRequest) -> None:
    request.getfixturevalue("worker_image" if where == "local" else "remote_worker_image")
    flags = ("--engine", request.getfixturevalue("remote_engine").url) if where == "remote" else ()
    repo = make_repo(tmp_path / "repo")
    # Each first call costs $0.00032: A's spends its max_tokens, B's the rest of the budget.
    phase = write_phase(tmp_path / "p.yaml", {
        "name": "capped", "concurrency": 1, "prices": PRICES, "budget": {"usd": 0.0005},
        "tickets": [_ticket("A", max_tokens=100), _ticket("B")]})
    scripts = {"A": _writes("A", "a.txt"), "B": _writes("B", "b.txt")}
    with FakeMessagesAPI(scripts) as fake:
        proc, doc = run_json("run", str(phase), "--repo", str(repo), *flags, env=_env(fake))
    assert proc.returncode == 1, proc.stderr
    tickets = {t["id"]: t for t in doc["tickets"]}
    assert tickets["A"]["status"] == "failed"
    assert tickets["A"]["reason"] == (
        "token budget exceeded: 160 tokens used of max_tokens 100 (refused at the gateway)")
    assert git(repo, "show", f"{tickets['A']['ref']}:a.txt") == "by A"   # its work is kept
    assert len(fake.requests_for("A")) == 1      # the second never reached the API
    log = (Path(doc["run_dir"]) / "logs" / "A.log").read_text()
    assert "runner: gateway: refused POST /v1/messages: token budget exceeded" in log
    assert tickets["B"]["status"] == "failed"
    assert tickets["B"]["reason"] == "the phase budget of $0.0005 is spent (refused at the gateway)"
    assert len(fake.requests_for("B")) == 1
    summary = proc.stderr.splitlines()
    assert any("B" in line and "the phase budget of $0.0005 is spent" in line
               for line in summary)


def test_a_failing_check_goes_back_into_the_same_session(tmp_path: Path,
                                                         worker_image: str) -> None:
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {"name": "fix", "tickets": [
        _ticket("F", checks=["grep -q fixed f.txt"], max_fix_loops=1)]})
    scripts = {"F": [Reply([tool("Write", file_path="/workspace/f.txt", content="broken\n")]),
                     done("Written."),
                     Reply([tool("Edit", file_path="/workspace/f.txt", old_string="broken",
                                 new_string="fixed")]),
                     done("Fixed.")]}
    with FakeMessagesAPI(scripts) as fake:
        proc, doc = run_json("run", str(phase), "--repo", str(repo), env=_env(fake))
    assert proc.returncode == 0, proc.stderr
    (ticket,) = doc["tickets"]
    assert ticket["status"] == "integrated" and ticket["fix_loops"] == 1
    assert git(repo, "show", f"{doc['target']}:f.txt") == "fixed"
    first, resumed = fake.requests_for("F")[1], fake.requests_for("F")[2]
    assert resumed.continues(first)               # the same conversation, resumed
    assert "grep -q fixed f.txt" in resumed.last_user_text()


def test_ctrl_c_keeps_claude_codes_work_and_resume_finishes_it(tmp_path: Path,
                                                               engine: docker.DockerClient,
                                                               worker_image: str) -> None:
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {"name": "stopped", "tickets": [_ticket("S")]})
    scripts = {"S": [Reply([tool("Write", file_path="/workspace/s.txt", content="part\n")]),
                     Reply([tool("Bash", command="tail -f /dev/null")]),
                     # After the resume: the ticket runs again from the start.
                     Reply([tool("Write", file_path="/workspace/s.txt", content="whole\n")]),
                     done()]}
    with FakeMessagesAPI(scripts) as fake:
        proc = subprocess.Popen([sys.executable, "-m", "runner", "run", str(phase), "--repo",
                                 str(repo)], env=_env(fake), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while len(fake.requests_for("S")) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(fake.requests_for("S")) >= 2, "Claude Code never got to its Bash call"
        time.sleep(1.0)                           # the sleep is running in the container
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err
        run_id = next((repo / ".git" / "runner").iterdir()).name
        # What it had done is committed into its ref at once.
        assert git(repo, "show", f"refs/runner/{run_id}/S:s.txt") == "part"
        resumed, doc = run_json("resume", run_id, "--repo", str(repo), env=_env(fake))
    assert resumed.returncode == 0, resumed.stderr
    kept = f"refs/runner/{run_id}/attempts/S/before-resume"
    assert git(repo, "show", f"{kept}:s.txt") == "part"      # still kept, beside the rerun
    assert git(repo, "show", f"{doc['target']}:s.txt") == "whole"
    assert containers(engine, run_id) == []
