"""runner in a container, from compose.yaml: `compose build` builds the worker images and
the runner image; `compose run --rm runner run phase.yaml` runs a phase on the repo in the
working directory, through the host's engine, leaving files and refs owned by the repo's
owner and no container behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from runner.records.document import RunDocument
from runner.records.events import EventCollector
from runner.sandbox.images import base_image
from tests.conftest import suite_containers
from tests.helpers import ROOT, git, make_repo, write_phase

RUNNER_IMAGE = "runner:latest"
OWNER = 4343 if os.geteuid() == 0 else os.geteuid()    # a non-root user's repo, when we can
# egress: the gateway serves from inside the runner's container, its sockets on the repo's
# path that the host engine mounts; the self-test proves each worker reaches its own.
PHASE = {"name": "composed", "egress": ["example.invalid"], "tickets": [
    {"id": "A", "agent": "script", "run": "echo a > a.txt"},
    {"id": "B", "agent": "script", "run": "mkdir -p deep/er && echo b > deep/er/b.txt"},
    {"id": "C", "agent": "script", "depends_on": ["A", "B"],
     "run": "cat a.txt deep/er/b.txt > c.txt"}]}


def compose_command() -> list[str]:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if found := shutil.which("docker-compose"):
        return [found]
    pytest.fail("neither `docker compose` nor docker-compose: run ./setup.sh --dev")


def compose(*args: str, cwd: Path, project: str,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The compose command a user types in ``cwd`` (PWD is the shell's, as there)."""
    return subprocess.run([*compose_command(), "-f", str(ROOT / "compose.yaml"), "-p", project,
                           *args], cwd=cwd, capture_output=True, text=True, timeout=1200,
                          env={**os.environ, "PWD": str(cwd), **(env or {})})


@pytest.fixture(scope="module")
def composed(engine: docker.DockerClient, worker_image: str) -> Iterator[str]:
    """`compose build`, as a user on a machine like this one does it: a base image made
    offline, and wheels made by the host's pip (containers here cannot verify PyPI's TLS).
    The wheels go again afterwards: left there, they would decide later builds."""
    base = base_image(engine, EventCollector(), offline=False)
    wheelhouse = ROOT / "images" / "runner" / "wheels"
    before = set(wheelhouse.glob("*.whl"))
    try:
        wheels = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "-w",
                                 str(wheelhouse), str(ROOT)],
                                capture_output=True, text=True, cwd=ROOT)
        assert wheels.returncode == 0, wheels.stderr
        built = compose("build", cwd=ROOT, project="runner-test-build",
                        env={"RUNNER_BASE_IMAGE": base})
    finally:
        for wheel in set(wheelhouse.glob("*.whl")) - before:
            wheel.unlink()
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    for image in (RUNNER_IMAGE, "runner-worker:latest", "runner-worker-jvm:latest"):
        engine.images.get(image)
    yield "runner-test"
    # `compose run` made the project's network; nothing of it may outlive the tests.
    compose("down", "--remove-orphans", cwd=ROOT, project="runner-test")


@pytest.fixture
def user_dir() -> Iterator[Path]:
    """A directory of the repo's owner that the owner can reach (pytest's tmp is root's)."""
    root = Path(tempfile.mkdtemp(prefix="runner-compose-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root)


def _containers(engine: docker.DockerClient, label: str) -> list[str]:
    return [c.name for c in engine.containers.list(all=True, filters={"label": label},
                                                     ignore_removed=True)]


def test_compose_run_drives_the_host_engine_and_leaves_the_users_files(
        composed: str, user_dir: Path, engine: docker.DockerClient) -> None:
    repo = make_repo(user_dir / "repo", {"README.md": "hello\n"})
    write_phase(repo / "phase.yaml", PHASE)
    subprocess.run(["chown", "-R", f"{OWNER}:{OWNER}", str(repo)], check=True)
    before = {c.id for c in suite_containers(engine)}

    ran = compose("run", "--rm", "-T", "runner", "run", "phase.yaml", "--json",
                  cwd=repo, project=composed)

    assert ran.returncode == 0, ran.stderr[-3000:]
    doc = RunDocument.model_validate_json(ran.stdout)
    assert [t.status for t in doc.tickets] == ["integrated"] * 3
    assert doc.preflight.startswith("passed")          # probes mounted host paths for real
    assert git(repo, "show", f"{doc.target}:c.txt") == "a\nb"
    assert git(repo, "rev-parse", f"refs/runner/{doc.run_id}/C")
    # Everything runner made in the host repo is the owner's: run records, workspaces,
    # collected refs, the integration clone, packed or loose refs.
    made = [p for p in repo.rglob("*") if p.lstat().st_uid != OWNER or
            p.lstat().st_gid != OWNER]
    assert not made, made[:5]
    assert (repo / ".git" / "runner" / doc.run_id / "workspaces").is_dir()
    assert {c.id for c in suite_containers(engine)} == before
    assert not _containers(engine, f"com.docker.compose.project={composed}")


def test_a_repo_mounted_at_another_path_is_refused_with_what_to_do(
        composed: str, user_dir: Path, engine: docker.DockerClient) -> None:
    repo = make_repo(user_dir / "repo")
    write_phase(repo / "phase.yaml", {"name": "elsewhere", "tickets": [PHASE["tickets"][0]]})
    container = engine.containers.run(
        RUNNER_IMAGE, ["run", "phase.yaml"], detach=True, working_dir="/repo",
        volumes={str(repo): {"bind": "/repo"}, "/var/run/docker.sock":
                 {"bind": "/var/run/docker.sock"}}, labels={"runner.run": "compose-test",
                                                          "runner.run-dir": str(repo)})
    try:
        code = container.wait(timeout=300)["StatusCode"]
        logs = container.logs().decode()
    finally:
        container.remove(force=True)
    assert code == 3, logs
    assert "bind source path does not exist" in logs
    assert "mount the repo at its own absolute path" in logs
    assert "Traceback" not in logs


def test_compose_demo_leaves_its_repo_in_the_working_directory(
        composed: str, user_dir: Path) -> None:
    subprocess.run(["chown", f"{OWNER}:{OWNER}", str(user_dir)], check=True)
    ran = compose("run", "--rm", "-T", "runner", "demo", cwd=user_dir, project=composed)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    [demo] = [p for p in user_dir.iterdir() if p.name.startswith("runner-demo-")]
    assert git(demo / "repo", "rev-parse", "--verify", "runner/phase-2")
    assert demo.stat().st_uid == OWNER


def test_a_cancelled_compose_run_keeps_its_work_and_resumes(
        composed: str, user_dir: Path, engine: docker.DockerClient) -> None:
    """What a CI runner does on cancel: SIGTERM to the compose command."""
    repo = make_repo(user_dir / "repo")
    write_phase(repo / "phase.yaml", {"name": "cancelled", "tickets": [
        {"id": "S", "agent": "script", "run": "echo part > part.txt\ngit add -A\n"
         "git commit -q -m 'S: part'\nsleep 8\necho done > done.txt"}]})
    job = subprocess.Popen([*compose_command(), "-f", str(ROOT / "compose.yaml"), "-p", composed,
                            "run", "--rm", "-T", "runner", "run", "phase.yaml"], cwd=repo,
                           env={**os.environ, "PWD": str(repo)}, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not any(c.attrs["Labels"].get("runner.ticket") == "S" and c.status == "running"
                      for c in suite_containers(engine)):
            assert time.monotonic() < deadline and job.poll() is None, "S never ran"
            time.sleep(0.3)
        time.sleep(2)                                  # S has committed its part
        job.send_signal(signal.SIGTERM)
        job.communicate(timeout=120)
    finally:
        job.kill()
    [run_dir] = (repo / ".git" / "runner").iterdir()
    deadline = time.monotonic() + 60                   # the runner container winds down
    while json.loads((run_dir / "run.json").read_text())["state"] == "running":
        assert time.monotonic() < deadline, "the run was never marked interrupted"
        time.sleep(0.5)
    assert git(repo, "show", f"refs/runner/{run_dir.name}/S:part.txt") == "part"

    resumed = compose("run", "--rm", "-T", "runner", "resume", run_dir.name, cwd=repo,
                      project=composed)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert git(repo, "show", "runner/cancelled:done.txt") == "done"
    assert not _containers(engine, f"com.docker.compose.project={composed}")
