"""Durability on another machine's engine: its volumes outlive the runner. A runner killed
mid-phase (SIGKILL) resumes from the surviving volumes and loses no commit; `runner clean`
saves what no ref holds, then removes the run's containers and volumes there; an engine lost
mid-phase stops the run (exit 3) and `resume --engine …` finishes it once the engine is back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker

from tests.helpers import containers, git, make_repo, run_json, runner_cli, write_phase


def _start(repo: Path, phase: Path, url: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "runner", "run", str(phase), "--repo",
                             str(repo), "--engine", url], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(what, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended first ({proc.returncode}): "
                                 f"{''.join(proc.communicate())[-3000:]}")
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.2)


def _phase(root: Path) -> tuple[Path, Path]:
    repo = make_repo(root / "repo")
    # S leaves work uncommitted and is busy when the runner (or the engine) dies.
    phase = write_phase(root / "p.yaml", {"name": "durable", "tickets": [
        {"id": "A", "agent": "script", "run": "echo a > a.txt"},
        {"id": "S", "agent": "script", "run": "echo s > s.txt\ntouch .started\nsleep 15"}]})
    return repo, phase


def _running(remote, ticket: str) -> bool:
    """Whether ``ticket``'s worker has started its work (its containers come and go)."""
    for container in containers(remote.client, stopped=False):
        if container.labels.get("runner.ticket") != ticket:
            continue
        try:
            if container.exec_run(["test", "-e", "/workspace/.started"]).exit_code == 0:
                return True
        except docker.errors.APIError:
            continue
    return False


def _run_id(repo: Path) -> str:
    return next((repo / ".git" / "runner").iterdir()).name


def _volumes(remote, run_id: str) -> list[str]:
    return [v.name for v in remote.client.volumes.list(filters={"label": f"runner.run={run_id}"})]


def test_a_killed_runner_resumes_from_the_surviving_volumes(tmp_path: Path, remote_engine,
                                                            remote_worker_image) -> None:
    repo, phase = _phase(tmp_path)
    proc = _start(repo, phase, remote_engine.url)
    _wait_for(lambda: _running(remote_engine, "S"), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    run_id = _run_id(repo)
    assert _volumes(remote_engine, run_id)            # the workspaces outlived the runner
    resumed, doc = run_json("resume", run_id, "--repo", str(repo))
    assert resumed.returncode == 0, resumed.stderr
    tickets = {t["id"]: t["status"] for t in doc["tickets"]}
    assert tickets == {"A": "integrated", "S": "integrated"}
    # S's work from before the kill is kept (collected from its volume), and done again.
    kept = git(repo, "for-each-ref", "--format=%(refname)", f"refs/runner/{run_id}/attempts/S")
    assert kept and all(git(repo, "show", f"{ref}:s.txt") == "s" for ref in kept.split())
    assert git(repo, "show", f"{doc['target']}:s.txt") == "s"
    assert git(repo, "show", f"{doc['target']}:a.txt") == "a"


def test_clean_saves_then_removes_the_runs_containers_and_volumes(tmp_path: Path,
                                                                  remote_engine,
                                                                  remote_worker_image) -> None:
    repo, phase = _phase(tmp_path)
    proc = _start(repo, phase, remote_engine.url)
    _wait_for(lambda: _running(remote_engine, "S"), proc)
    proc.send_signal(signal.SIGKILL)            # S's work is in its volume only
    proc.wait(timeout=60)
    run_id = _run_id(repo)
    assert _volumes(remote_engine, run_id)
    cleaned = runner_cli("clean", run_id, "--repo", str(repo))
    assert cleaned.returncode == 0, cleaned.stderr
    assert _volumes(remote_engine, run_id) == []
    assert containers(remote_engine.client, run_id) == []
    # What no ref held was saved before the volumes went.
    assert git(repo, "show", f"refs/runner/{run_id}/attempts/S/cleaned:s.txt") == "s"


def test_an_engine_lost_mid_phase_stops_the_run_and_resume_finishes_it(
        tmp_path: Path, remote_engine, remote_worker_image) -> None:
    repo, phase = _phase(tmp_path)
    proc = _start(repo, phase, remote_engine.url)
    try:
        _wait_for(lambda: _running(remote_engine, "S"), proc)
        remote_engine.kill()
        _, err = proc.communicate(timeout=300)
    finally:
        remote_engine.start()          # back, at the same address, with its volumes
    assert proc.returncode == 3, err
    run_id = _run_id(repo)
    assert f"runner resume {run_id}" in err
    resumed, doc = run_json("resume", run_id, "--repo", str(repo), "--engine",
                            remote_engine.url, env={**os.environ})
    assert resumed.returncode == 0, resumed.stderr
    assert {t["id"]: t["status"] for t in doc["tickets"]} == {"A": "integrated",
                                                              "S": "integrated"}
    assert git(repo, "show", f"{doc['target']}:s.txt") == "s"


def test_a_workspace_that_cannot_be_collected_is_set_aside_on_the_engine(
        tmp_path: Path, remote_engine, remote_worker_image) -> None:
    """Killed while its git holds a lock that is a directory: resume cannot collect it, so
    its volumes are set aside whole (marked), the ticket runs again in new ones, and a clean
    keeps them."""
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {"name": "locked", "tickets": [
        {"id": "L", "agent": "script", "run": "echo staged > staged.txt\ngit add -A\n"
         "mkdir .git/index.lock\ntouch .started\nsleep 8\nrmdir .git/index.lock"}]})
    proc = _start(repo, phase, remote_engine.url)
    _wait_for(lambda: _running(remote_engine, "L"), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    run_id = _run_id(repo)
    resumed, doc = run_json("resume", run_id, "--repo", str(repo))
    assert resumed.returncode == 0, resumed.stderr
    assert git(repo, "show", f"{doc['target']}:staged.txt") == "staged"
    assert "could not collect the work in its workspace" in resumed.stderr
    cleaned = runner_cli("clean", run_id, "--repo", str(repo))
    assert cleaned.returncode == 0, cleaned.stderr
    assert "1 workspaces kept" in cleaned.stdout, cleaned.stdout
    left = _volumes(remote_engine, run_id)
    [workspace] = [v for v in left if v.endswith("-ws")]
    assert any(v.endswith("-aside") for v in left) and len(left) == 3, left
    # The staged work is there, whole.
    staged = remote_engine.client.containers.run(
        remote_worker_image, ["cat", "/w/staged.txt"], remove=True, network_mode="none",
        volumes={workspace: {"bind": "/w", "mode": "ro"}}, labels={"runner.run": run_id})
    assert staged == b"staged\n"
    for volume in left:
        remote_engine.client.volumes.get(volume).remove(force=True)
