"""Workers that fill the disk, run through `runner run` beside an honest bystander.

With `resources.disk: 64m`, one worker writes 200 MB into its Gradle home, one into
/workspace, one through its ticket's check: each is stopped by the disk watchdog with a reason
naming the budget and what it wrote; what it committed before is still collected, its junk is
not copied into the host repo, and what it left on disk stays near the budget. The bystander
integrates.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from runner.host.gitops import open_host_repo
from runner.host.objectstore import STORE, RunObjects
from runner.phase.load import load_phase
from runner.records.events import EventCollector
from runner.sandbox import GRADLE_HOME
from runner.sandbox.diskwatch import disk_usage
from runner.sandbox.docker.local import DockerSandboxes
from runner.worker.context import RunContext
from runner.worker.lifecycle import sandbox_spec
from tests.fakes.messages_api import FakeMessagesAPI, Reply, tool
from tests.helpers import containers, git, make_repo, write_phase

BUDGET = 64 << 20
HOGS = ("gradlehog", "workspacehog", "checkhog", "llmhog")
# 200 MB in 10 MB chunks, a short pause between them (a build's writes, not one burst);
# the last line is never reached by a stopped worker.
HOG = ("for i in $(seq 1 20); do head -c 10m /dev/zero > {dir}/junk-$i; sleep 0.2; done; "
       "echo \"NOT-STOPPED-$((6 * 7))\"")
COMMIT_FIRST = "echo kept > kept-$RUNNER_TICKET.txt && git add -A && git commit -qm 'kept work'"
# An LLM worker whose one bash call goes over the budget: it gets no second turn.
LLM = {"llmhog": [Reply([tool("bash", command=f"{COMMIT_FIRST} && head -c 100m /dev/zero > "
                                                f"$GRADLE_USER_HOME/junk && sleep 120")]),
                  Reply([tool("finish", summary="never", commit_message="never asked")])]}


class Sampler:
    """Measures each ticket's workspace and Gradle home with du (not runner's own measure)
    while the run goes, keeping the most each held."""

    def __init__(self, state: Path, tickets: list[str]) -> None:
        self.state, self.tickets = state, tickets
        self.most = dict.fromkeys(tickets, 0)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(0.2):
            for ticket in self.tickets:
                dirs = [str(d) for d in [*self.state.glob(f"*/workspaces/{ticket}"),
                                         *self.state.glob(f"*/gradle/{ticket}")]]
                if dirs:
                    du = subprocess.run(["du", "-s", "-c", "-B1", *dirs],
                                        capture_output=True, text=True)
                    total = du.stdout.strip().splitlines()[-1:] or ["0"]
                    self.most[ticket] = max(self.most[ticket], int(total[0].split()[0]))

    def close(self) -> None:
        self._done.set()
        self._thread.join()


@pytest.fixture(scope="module")
def hogged(tmp_path_factory: pytest.TempPathFactory, worker_image: str) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("hostile-disk")
    repo = make_repo(root / "repo", {"README.md": "disk\n"})
    state = root / "state"
    tickets = [
        {"id": "gradlehog", "agent": "script",
         "run": f"{COMMIT_FIRST}\n{HOG.format(dir='$GRADLE_USER_HOME')}"},
        {"id": "workspacehog", "agent": "script",
         "run": f"{COMMIT_FIRST}\nmkdir -p out\n{HOG.format(dir='out')}"},
        {"id": "checkhog", "agent": "script", "run": "echo kept > kept-checkhog.txt",
         "checks": [f"mkdir -p build && {HOG.format(dir='build')}"]},
        {"id": "llmhog", "prompt": "Fill the disk."},
        {"id": "bystander", "agent": "script",
         "run": "echo honest > bystander.txt\nsleep 3\necho done >> bystander.txt"},
    ]
    phase = write_phase(root / "phase.yaml", {
        "name": "hostile-disk", "concurrency": 5,
        "resources": {"cpus": 1, "memory": "256m", "disk": "64m"}, "tickets": tickets})
    sampler = Sampler(state, [t["id"] for t in tickets])
    with FakeMessagesAPI(LLM) as fake:
        env = {**os.environ, "ANTHROPIC_API_KEY": "sk-ant-disk-0000", "ANTHROPIC_BASE_URL":
               fake.url}
        proc = subprocess.run([sys.executable, "-m", "runner", "run", str(phase), "--repo",
                               str(repo), "--state-dir", str(state), "--json"],
                              capture_output=True, text=True, env=env, timeout=600)
    sampler.close()
    assert proc.stdout.strip(), proc.stderr
    doc = json.loads(proc.stdout)
    yield {"repo": repo, "doc": doc, "proc": proc, "fake": fake, "most": sampler.most,
           "tickets": {t["id"]: t for t in doc["tickets"]}}


def _written(reason: str) -> float:
    found = re.search(r"over its disk budget: (\d+(?:\.\d+)?) MiB written, budget 64 MiB "
                      r"\(resources\.disk\)", reason)
    assert found, reason
    return float(found.group(1)) * (1 << 20)


@pytest.mark.parametrize("ticket", ["gradlehog", "workspacehog", "llmhog"])
def test_a_worker_over_its_budget_is_stopped_with_the_reason(hogged, ticket: str) -> None:
    outcome = hogged["tickets"][ticket]
    assert outcome["status"] == "failed"
    assert _written(outcome["reason"]) > BUDGET
    assert outcome["reason"].endswith("; what it left uncommitted is discarded")
    log = (Path(hogged["doc"]["run_dir"]) / "logs" / f"{ticket}.log").read_text()
    assert "NOT-STOPPED-42" not in log
    assert outcome["retries"] == 0 and len(outcome["attempts"]) == 1   # not a stop from outside


def test_what_it_committed_is_collected_and_its_junk_is_not(hogged) -> None:
    repo, doc = hogged["repo"], hogged["doc"]
    for ticket in HOGS:
        ref = f"refs/runner/{doc['run_id']}/{ticket}"
        files = git(repo, "ls-tree", "-r", "--name-only", ref).splitlines()
        assert sorted(files) == ["README.md", f"kept-{ticket}.txt"], (ticket, files)


def test_an_llm_worker_gets_no_turn_after_the_stop(hogged) -> None:
    [asked] = hogged["fake"].requests_for("llmhog")
    assert asked.body["messages"][-1]["role"] == "user"


def test_a_check_over_the_budget_is_stopped_too(hogged) -> None:
    reason = hogged["tickets"]["checkhog"]["reason"]
    assert reason.startswith("check `mkdir -p build && ")
    assert "` was stopped: over its disk budget" in reason
    assert _written(reason) > BUDGET


def test_the_disk_is_not_eaten_past_roughly_the_budget(hogged) -> None:
    run_dir = Path(hogged["doc"]["run_dir"])
    for ticket in HOGS:
        most = hogged["most"][ticket]
        # The stop comes within a measurement or two: a few 10 MB chunks past the budget
        # (16-36 MiB here), never the 200 MB the worker set out to write.
        assert BUDGET // 2 < most < BUDGET + (96 << 20), (ticket, most)
        assert _written(hogged["tickets"][ticket]["reason"]) < BUDGET + (96 << 20)
        # Its commits collected, what it wrote beyond them left the host's disk.
        left = disk_usage([run_dir / "workspaces" / ticket, run_dir / "gradle" / ticket])
        assert left.complete and left.bytes < 1 << 20, (ticket, left.bytes)
    assert hogged["most"]["bystander"] < 1 << 20


def test_the_bystander_integrates_and_nothing_is_left_running(hogged,
                                                              engine: docker.DockerClient
                                                              ) -> None:
    doc, repo = hogged["doc"], hogged["repo"]
    assert hogged["tickets"]["bystander"]["status"] == "integrated"
    assert git(repo, "show", f"{doc['target']}:bystander.txt") == "honest\ndone"
    assert doc["exit_code"] == 1 and hogged["proc"].returncode == 1
    # The self-test's probes ran under the same watch, undisturbed.
    assert doc["preflight"].startswith("passed"), doc["preflight"]
    left = containers(engine, doc['run_id'])
    assert left == []


def test_the_sandbox_stops_and_then_runs_commands_again(tmp_path: Path,
                                                       engine: docker.DockerClient,
                                                       worker_image: str) -> None:
    """Behind the Sandbox protocol: the command running when the budget is passed returns
    with the reason, the sandbox says why it stopped, it is no stop from outside, and the
    next command (collection) runs in the container started again."""
    repo = make_repo(tmp_path / "repo")
    host, head = open_host_repo(repo), git(repo, "rev-parse", "HEAD")
    phase = load_phase(write_phase(tmp_path / "p.yaml", {
        "name": "disk", "resources": {"memory": "256m", "disk": "64m"},
        "tickets": [{"id": "X", "agent": "script", "run": "true"}]}))
    objects = RunObjects(host, path=tmp_path / "run" / STORE, run_id="test-disk", base=head)
    ctx = RunContext(run_id="test-disk", phase=phase, host=host, root=tmp_path / "run",
                     objects=objects, provider=DockerSandboxes(engine, root=tmp_path / "run"),
                     sink=EventCollector())
    with ctx.provider.open(sandbox_spec(ctx, "X", ctx.checkout("X", head))) as sandbox:
        assert sandbox.exec(["true"], timeout=30).ok and sandbox.stopped_for == ""
        hog = sandbox.exec(["bash", "-c", f"head -c 100m /dev/zero > {GRADLE_HOME}/x; "
                            "sleep 120"], timeout=300)
        assert hog.exit_code == 137 and not hog.timed_out and not hog.ok
        assert BUDGET < _written(hog.stopped) <= 100 << 20   # it may be caught mid-write
        assert sandbox.stopped_for == hog.stopped and sandbox.restarts == 0
        after = sandbox.exec(["git", "rev-parse", "HEAD"], timeout=30)
        assert after.ok and after.stopped == "" and after.output.strip() == head
