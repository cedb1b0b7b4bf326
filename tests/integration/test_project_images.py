"""A project's own worker image: built by runner from the repo's Dockerfile (Debian's python3
and pytest, from the machine's apt mirror: `FROM debian:bookworm-slim` builds with no
registry) or from its devcontainer.json, with runner's layer on it; tickets' checks and the
phase checks run pytest in it; the next run builds nothing. An image that lacks what runner
runs in a worker is refused before any ticket starts, naming what is missing."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import docker
import pytest

from tests.helpers import git, make_repo, run_json, runner_cli, write_phase

DOCKERFILE = """FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
      python3 python3-pytest && rm -rf /var/lib/apt/lists/*
ENV PYTHONDONTWRITEBYTECODE=1
ENTRYPOINT ["python3"]
"""
PROJECT = {
    "calc.py": "def add(a, b):\n    return a + b\n",
    "test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
    "Dockerfile": DOCKERFILE,
    ".dockerignore": "*.md\n",
}
# The ticket adds a function and its test; its check and the phase's run pytest.
MUL = """cat >> calc.py <<'END'


def mul(a, b):
    return a * b
END
cat > test_mul.py <<'END'
from calc import mul


def test_mul():
    assert mul(4, 5) == 20
END
"""
PYTEST = "python3 -m pytest -q -p no:cacheprovider"
DEVCONTAINER = """// The project's dev container, as an editor reads it: comments and all.
{
  "name": "calc",
  "build": {"dockerfile": "../Dockerfile", "context": ".."},
  "containerEnv": {"PROJECT_MARK": "from-${localWorkspaceFolderBasename}"},
  "postCreateCommand": "pip install -e .",
  "customizations": {"vscode": {"extensions": ["ms-python.python"]}},  // editors only
}
"""


def phase(image: object, **more: object) -> dict:
    return {"name": "py", "image": image, "checks": [PYTEST], **more,
            "tickets": [{"id": "MUL", "agent": "script", "run": MUL, "checks": [PYTEST]}]}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A context of its own each session: the first run builds (docker's layer cache keeps it
    # quick), whatever an earlier session left.
    return make_repo(tmp_path_factory.mktemp("py") / "calc",
                     {**PROJECT, "session.txt": secrets.token_hex(8)})


def test_a_phase_runs_pytest_in_the_image_its_dockerfile_makes(project: Path,
                                                                engine: docker.DockerClient,
                                                                worker_image: str) -> None:
    phase_file = write_phase(project.parent / "phase.yaml",
                             phase({"dockerfile": "calc/Dockerfile", "context": "calc"}))
    proc, doc = run_json("run", str(phase_file), "--repo", str(project))
    assert proc.returncode == 0, proc.stderr
    assert [t["status"] for t in doc["tickets"]] == ["integrated"]
    assert "def mul" in git(project, "show", f"{doc['target']}:calc.py")
    assert "2 passed" in (Path(doc["run_dir"]) / "logs" / "MUL.log").read_text()
    assert doc["checks_passed"] is True
    built = [line for line in proc.stderr.splitlines() if "building image runner-project:" in line]
    assert len(built) == 1, proc.stderr
    tag = built[0].split("building image ")[1].split()[0]
    image = engine.images.get(tag)
    assert image.labels["runner.source"] == f"Dockerfile {project / 'Dockerfile'}"
    # runner's layer: git and socat from the image's own apt, no ENTRYPOINT left to wrap
    # runner's commands, the mount points a read-only root needs.
    out = engine.containers.run(tag, ["sh", "-c", "for t in git socat python3; do command -v "
                                      "$t; done; ls -d /workspace /runner/gateway"],
                                remove=True).decode()
    assert "/usr/bin/git" in out and "/usr/bin/socat" in out and "/runner/gateway" in out
    assert not image.attrs["Config"].get("Entrypoint")

    # Nothing changed: the next run builds nothing. A file .dockerignore leaves out changes
    # nothing either; one docker would send does.
    (project / "NOTES.md").write_text("not in the build context\n")
    again, _ = run_json("run", str(phase_file), "--repo", str(project))
    assert again.returncode == 0, again.stderr
    assert "building image" not in again.stderr
    (project / "extra.txt").write_text("in the context\n")
    changed, _ = run_json("run", str(phase_file), "--repo", str(project), "--no-preflight")
    assert changed.returncode == 0, changed.stderr
    assert "building image runner-project:" in changed.stderr
    (project / "extra.txt").unlink()
    (project / "NOTES.md").unlink()


def test_a_phase_runs_in_the_image_its_devcontainer_json_makes(project: Path,
                                                                worker_image: str) -> None:
    (project / ".devcontainer").mkdir(exist_ok=True)
    (project / ".devcontainer" / "devcontainer.json").write_text(DEVCONTAINER)
    checks = [f'test "$PROJECT_MARK" = from-calc && {PYTEST}']
    spec = phase({"devcontainer": "calc/.devcontainer/devcontainer.json"})
    spec["tickets"][0]["checks"] = checks
    phase_file = write_phase(project.parent / "dev.yaml", spec)
    proc, doc = run_json("run", str(phase_file), "--repo", str(project))
    assert proc.returncode == 0, proc.stderr
    assert [t["status"] for t in doc["tickets"]] == ["integrated"]
    # What an editor's container does and runner does not is said, once, by name.
    assert "postCreateCommand is not used" in proc.stderr
    assert "customizations" not in proc.stderr


def test_a_bad_devcontainer_json_is_one_line_naming_the_field(project: Path) -> None:
    bad = project.parent / "bad.json"
    bad.write_text('{"image": "x", "features": {"ghcr.example/f:1": {}}}')
    phase_file = write_phase(project.parent / "bad.yaml", phase({"devcontainer": "bad.json"}))
    proc = runner_cli("run", str(phase_file), "--repo", str(project), "--dry-run")
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith(f"runner: error: {bad}: features: runner builds the image "), line


@pytest.mark.parametrize("preflight", [True, False])
def test_an_image_lacking_what_runner_needs_is_refused_before_any_ticket(
        tmp_path: Path, worker_image: str, preflight: bool) -> None:
    # runner's Debian base: bash and coreutils, but no git, no procps' kill, no socat.
    repo = make_repo(tmp_path / "repo")
    phase_file = write_phase(tmp_path / "p.yaml", {
        "name": "bare", "image": "runner-base:bookworm", "egress": ["127.0.0.1:9"],
        "tickets": [{"id": "A", "agent": "script", "run": "echo a > a.txt"}]})
    proc = runner_cli("run", str(phase_file), "--repo", str(repo), "--json",
                      *(() if preflight else ("--no-preflight",)))
    assert proc.returncode == 3, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["state"] == "refused"
    assert "the image runner-base:bookworm lacks git, kill, socat" in doc["refused"]
    assert "apt-get install git procps socat" in doc["refused"]
    assert doc["tickets"] == []
    assert git(repo, "for-each-ref", f"refs/runner/{doc['run_id']}/A") == ""
    assert "Traceback" not in proc.stderr
