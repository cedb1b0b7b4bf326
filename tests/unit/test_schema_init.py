"""`runner schema` describes what the phase models accept (the demo's phase, every example in
the README); `runner init` writes a phase file that loads and plans."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from runner.cli.demo import make_demo
from tests.helpers import ROOT, git, make_repo, runner_cli

NO_ENGINE = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    proc = runner_cli("schema", env=NO_ENGINE)
    assert proc.returncode == 0, proc.stderr
    schema = json.loads(proc.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _readme_phases() -> list[dict]:
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return [d for d in map(yaml.safe_load, blocks) if isinstance(d, dict) and "tickets" in d]


def test_the_readmes_phases_and_the_demos_are_valid(validator, tmp_path: Path) -> None:
    phases = _readme_phases()
    assert len(phases) >= 2
    _, demo = make_demo(tmp_path)
    for phase in [*phases, yaml.safe_load(demo.read_text())]:
        assert not [e.message for e in validator.iter_errors(phase)], phase["name"]


@pytest.mark.parametrize("broken, field", [
    ({"name": "x", "tickets": [{"id": "A", "agent": "robot"}]}, "agent"),
    ({"name": "x", "tickets": []}, "tickets"),
    ({"name": "x", "tickets": [{"id": "A"}], "colour": "blue"}, "colour"),
    ({"name": "x", "tickets": [{"id": "A", "timeout": -1}]}, "timeout"),
])
def test_what_the_models_refuse_the_schema_refuses(validator, broken, field) -> None:
    errors = list(validator.iter_errors(broken))
    assert errors and any(field in (list(e.path) + [e.message]).__str__() for e in errors)


def test_init_writes_a_phase_that_plans(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "my repo")
    git(repo, "switch", "-q", "-c", "feature/x")
    written = runner_cli("init", "--tickets", "3", cwd=repo, env=NO_ENGINE)
    assert written.returncode == 0, written.stderr
    phase = yaml.safe_load((repo / "phase.yaml").read_text())
    assert phase["base"] == "feature/x" and phase["name"] == "my-repo"
    assert [t["id"] for t in phase["tickets"]] == ["T1", "T2", "T3"]
    assert "# checks:" in (repo / "phase.yaml").read_text()      # it is commented
    planned = runner_cli("run", "phase.yaml", "--dry-run", cwd=repo, env=NO_ENGINE)
    assert planned.returncode == 0, planned.stderr
    assert "wave 1: T1, T2, T3" in planned.stdout


def test_init_keeps_a_file_that_is_there(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "phase.yaml").write_text("mine\n")
    again = runner_cli("init", cwd=repo, env=NO_ENGINE)
    assert again.returncode == 2 and "--force" in again.stderr
    assert (repo / "phase.yaml").read_text() == "mine\n"


def test_init_picks_the_gradle_image_for_a_gradle_build(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"settings.gradle": "rootProject.name = 'x'\n"})
    assert runner_cli("init", cwd=repo, env=NO_ENGINE).returncode == 0
    assert yaml.safe_load((repo / "phase.yaml").read_text())["image"] == \
        "runner-worker-jvm:latest"


def test_init_quotes_what_yaml_would_read_as_a_number(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "2024")
    git(repo, "switch", "-q", "-c", "1.0")
    assert runner_cli("init", cwd=repo, env=NO_ENGINE).returncode == 0
    phase = yaml.safe_load((repo / "phase.yaml").read_text())
    assert phase["name"] == "2024" and phase["base"] == "1.0"
    assert runner_cli("run", "phase.yaml", "--dry-run", cwd=repo, env=NO_ENGINE).returncode == 0
