"""Runs survive the runner's death: SIGKILL then resume, SIGTERM then resume, and a worker
container killed from outside."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import docker
import pytest

from runner.host.runlock import driving
from runner.records.journal import TICKET_JOURNAL, ticket_states
from runner.records.record import load_result
from tests.conftest import suite_containers
from tests.helpers import containers, git, make_repo, run_json, write_phase

SLOW = ('echo partial > "$RUNNER_TICKET.partial"\ngit add -A\ngit commit -q -m "$RUNNER_TICKET: '
        'partial"\nsleep 8\necho done > "$RUNNER_TICKET.done"')


def _start(phase: Path, repo: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "runner", "run", str(phase), "--repo",
                             str(repo), "--no-preflight"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(condition: Callable[[], object], what: str, seconds: float = 90) -> object:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _run_dir(repo: Path) -> Path | None:
    runs = repo / ".git" / "runner"
    found = [p for p in runs.iterdir() if (p / "run.json").is_file()] if runs.is_dir() else []
    return found[0] if found else None


def _outcomes(run_dir: Path) -> dict:
    return {t: asdict(o) for t, o in load_result(run_dir).outcomes.items()}


def _running(engine: docker.DockerClient, run_id: str) -> set[str]:
    return {c.labels["runner.ticket"]
            for c in containers(engine, run_id, stopped=False)}


def test_sigkill_then_resume(tmp_path: Path, engine: docker.DockerClient,
                             worker_image: str) -> None:
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {"name": "killed", "concurrency": 4, "tickets": [
        {"id": "F1", "agent": "script", "run": "echo f1 > f1.txt"},
        {"id": "F2", "agent": "script", "run": "echo f2 > f2.txt"},
        {"id": "S1", "agent": "script", "run": SLOW},
        {"id": "S2", "agent": "script", "run": SLOW}]})
    proc = _start(phase, repo)
    run_dir = _wait_for(lambda: _run_dir(repo), "the run to start")
    run_id = run_dir.name
    _wait_for(lambda: {"F1", "F2"} <= set(_outcomes(run_dir)) and
              _running(engine, run_id) == {"S1", "S2"}, "F1, F2 done while S1, S2 run")
    time.sleep(1)   # S1 and S2 have committed their partial work
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {t: o["tip"] for t, o in _outcomes(run_dir).items()}
    journal = ticket_states(run_dir / TICKET_JOURNAL)
    assert journal["F1"]["status"] == "integrated" and journal["S1"]["status"] == "running"
    since = int(time.time())
    resumed, doc = run_json("resume", run_id, "--repo", str(repo))
    assert resumed.returncode == 0, resumed.stderr
    assert [t["status"] for t in doc["tickets"]] == ["integrated"] * 4
    # F1 and F2 were not run again: same commits, no container of theirs started.
    assert {t["id"]: t["ref"] for t in doc["tickets"]}
    for ticket in ("F1", "F2"):
        assert git(repo, "rev-parse", f"refs/runner/{run_id}/{ticket}") == before[ticket]
        created = list(engine.events(since=since, until=int(time.time()) + 1, decode=True,
                                     filters={"event": "create",
                                              "label": f"runner.ticket={ticket}"}))
        assert created == []
    for ticket in ("S1", "S2"):   # what they committed before the kill is kept
        kept = f"refs/runner/{run_id}/attempts/{ticket}/interrupted"
        assert git(repo, "show", f"{kept}:{ticket}.partial") == "partial"
        assert git(repo, "show", f"{doc['target']}:{ticket}.done") == "done"
    again, _ = run_json("resume", run_id, "--repo", str(repo))
    assert again.returncode == 0 and "already finished" in again.stderr


def test_sigterm_marks_the_run_interrupted_and_resume_finishes_it(
        tmp_path: Path, engine: docker.DockerClient, worker_image: str) -> None:
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {"name": "termed", "tickets": [
        {"id": "S1", "agent": "script", "run": SLOW}]})
    proc = _start(phase, repo)
    run_dir = _wait_for(lambda: _run_dir(repo), "the run to start")
    _wait_for(lambda: _running(engine, run_dir.name) == {"S1"}, "S1 to run")
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    record = json.loads((run_dir / "run.json").read_text())
    assert record["state"] == "interrupted"
    assert record["outcomes"]["S1"]["interrupted"] is True
    # What the worker had committed was collected when it stopped.
    assert git(repo, "show", f"refs/runner/{run_dir.name}/S1:S1.partial") == "partial"
    assert _running(engine, run_dir.name) == set()
    stopped = record["ended"]
    resumed, doc = run_json("resume", run_dir.name, "--repo", str(repo))
    assert resumed.returncode == 0, resumed.stderr
    assert git(repo, "show", f"{doc['target']}:S1.done") == "done"
    # Its timeline knows when it stood still.
    spans = json.loads((run_dir / "run.json").read_text())["spans"]
    [gap] = [s for s in spans if s[0] == "not running"]
    assert gap[1] == stopped and gap[2] > stopped


def test_killed_container_fails_only_its_ticket_or_retries(
        tmp_path: Path, engine: docker.DockerClient, worker_image: str) -> None:
    repo = make_repo(tmp_path / "repo")
    slow = "sleep 6\necho done > \"$RUNNER_TICKET.txt\""
    phase = write_phase(tmp_path / "p.yaml", {"name": "killed", "concurrency": 3, "tickets": [
        {"id": "K0", "agent": "script", "run": slow},
        {"id": "K1", "agent": "script", "run": slow, "retries": 1},
        {"id": "OK", "agent": "script", "run": slow}]})
    proc = subprocess.Popen([sys.executable, "-m", "runner", "run", str(phase), "--repo",
                             str(repo), "--no-preflight", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    run_dir = _wait_for(lambda: _run_dir(repo), "the run to start")
    _wait_for(lambda: _running(engine, run_dir.name) == {"K0", "K1", "OK"}, "all three to run")
    time.sleep(1)
    for container in containers(engine, run_dir.name, stopped=False):
        if container.labels["runner.ticket"] in ("K0", "K1"):
            container.kill()
    out, err = proc.communicate(timeout=300)
    doc = json.loads(out)
    tickets = {t["id"]: t for t in doc["tickets"]}
    assert tickets["OK"]["status"] == "integrated", err
    assert tickets["K0"]["status"] == "failed"
    assert tickets["K0"]["reason"].startswith("run exited with 137")
    assert tickets["K1"]["status"] == "integrated" and tickets["K1"]["reruns"] == 1


def test_clean_collects_work_before_deleting(tmp_path: Path, engine: docker.DockerClient,
                                             worker_image: str) -> None:
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {"name": "cleaned", "tickets": [
        {"id": "S1", "agent": "script", "run": SLOW}]})
    proc = _start(phase, repo)
    run_dir = _wait_for(lambda: _run_dir(repo), "the run to start")
    _wait_for(lambda: _running(engine, run_dir.name) == {"S1"}, "S1 to run")
    time.sleep(1.5)
    proc.send_signal(signal.SIGKILL)          # its container and workspace stay behind
    proc.wait()
    orphan = engine.containers.create(worker_image, ["sleep", "60"], labels={
        "runner.run": "gone-run", "runner.ticket": "x",
        "runner.run-dir": str(tmp_path / "gone-run")})
    # A live run of another repo: its containers are no orphans of this one.
    elsewhere = tmp_path / "other-repo-run"
    elsewhere.mkdir()
    other = engine.containers.create(worker_image, ["sleep", "60"], labels={
        "runner.run": "other-run", "runner.ticket": "y", "runner.run-dir": str(elsewhere)})
    refs_before = git(repo, "for-each-ref", "--format=%(refname) %(objectname)")
    with driving(elsewhere):
        cleaned = subprocess.run([sys.executable, "-m", "runner", "clean", "--repo", str(repo)],
                                 capture_output=True, text=True, timeout=300)
    assert cleaned.returncode == 0, cleaned.stderr
    assert f"removed container {orphan.name} (orphan)" in cleaned.stdout
    left = suite_containers(engine)
    other.remove(force=True)
    assert [c.id for c in left] == [other.id]
    assert not (run_dir / "workspaces").exists() and (run_dir / "run.json").is_file()
    # The partial commit no ref held was collected before the workspace went.
    kept = f"refs/runner/{run_dir.name}/attempts/S1/cleaned"
    assert git(repo, "show", f"{kept}:S1.partial") == "partial"
    after = git(repo, "for-each-ref", "--format=%(refname) %(objectname)").splitlines()
    assert set(refs_before.splitlines()) <= set(after)      # no ref removed or moved


def test_resume_refuses_a_run_that_is_still_running(tmp_path: Path, engine: docker.DockerClient,
                                                    worker_image: str) -> None:
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {"name": "live", "tickets": [
        {"id": "S1", "agent": "script", "run": SLOW}]})
    proc = _start(phase, repo)
    run_dir = _wait_for(lambda: _run_dir(repo), "the run to start")
    _wait_for(lambda: _running(engine, run_dir.name) == {"S1"}, "S1 to run")
    refused = subprocess.run([sys.executable, "-m", "runner", "resume", run_dir.name, "--repo",
                              str(repo)], capture_output=True, text=True, timeout=60)
    proc.communicate(timeout=120)
    assert refused.returncode == 2 and "is still running" in refused.stderr


@pytest.mark.parametrize("lock", ["file", "dir"])
def test_a_killed_gits_lock_does_not_keep_resume_from_finishing(
        tmp_path: Path, engine: docker.DockerClient, worker_image: str, lock: str) -> None:
    """The runner is killed while a worker's git holds .git/index.lock: resume collects what
    it had staged all the same (a stale lock file goes), or, when it cannot (a lock that is
    a directory), keeps the workspace aside whole; either way the ticket runs again."""
    repo = make_repo(tmp_path / "repo")
    make, remove = ("touch", "rm") if lock == "file" else ("mkdir", "rmdir")
    phase = write_phase(tmp_path / "p.yaml", {"name": "locked", "tickets": [
        {"id": "L", "agent": "script", "run": "echo staged > staged.txt\ngit add -A\n"
         f"{make} .git/index.lock\nsleep 6\n{remove} .git/index.lock"}]})
    proc = _start(phase, repo)
    run_dir = _wait_for(lambda: _run_dir(repo), "the run to start")
    _wait_for(lambda: (run_dir / "workspaces" / "L" / ".git" / "index.lock").exists(),
              "the lock")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed, doc = run_json("resume", run_dir.name, "--repo", str(repo))
    assert resumed.returncode == 0, resumed.stderr
    assert git(repo, "show", "runner/locked:staged.txt") == "staged"
    salvaged = f"refs/runner/{run_dir.name}/attempts/L/interrupted:staged.txt"
    if lock == "file":
        assert git(repo, "show", salvaged) == "staged"
    else:
        [aside] = (run_dir / "unsalvaged").iterdir()
        assert (aside / "workspaces" / "staged.txt").read_text() == "staged\n"
        cleaned = subprocess.run([sys.executable, "-m", "runner", "clean", run_dir.name,
                                  "--repo", str(repo)], capture_output=True, text=True)
        assert cleaned.returncode == 0, cleaned.stderr
        assert (aside / "workspaces" / "staged.txt").is_file()     # never lost
