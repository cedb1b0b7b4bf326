"""Ctrl-C during a run: the workers' containers go at once and runner exits 130."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker

from tests.helpers import containers, make_repo, write_phase


def test_ctrl_c_removes_the_runs_containers(tmp_path: Path, engine: docker.DockerClient,
                                            worker_image: str) -> None:
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {"name": "interrupted", "tickets": [
        {"id": t, "agent": "script", "run": "sleep 120"} for t in ("A", "B")]})
    proc = subprocess.Popen([sys.executable, "-m", "runner", "run", str(phase), "--repo",
                             str(repo)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    run_dirs = repo / ".git" / "runner"
    deadline = time.monotonic() + 60
    run_id = None
    while time.monotonic() < deadline and run_id is None:
        if run_dirs.is_dir() and (found := [p.name for p in run_dirs.iterdir()]):
            running = containers(engine, found[0], stopped=False)
            if {c.labels.get("runner.ticket") for c in running} == {"A", "B"}:
                run_id = found[0]
        time.sleep(0.2)
    assert run_id, "the workers never started"
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert f"`runner resume {run_id}` finishes the run" in err.strip().splitlines()[-1]
    assert containers(engine, run_id) == []
