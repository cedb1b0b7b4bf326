"""Flags and RUNNER_* variables over the phase file: a bad value is exit 2, one line naming the
flag or variable (the phase file is not at fault, so its path is not in the message)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runner.errors import OverrideError
from runner.phase.load import load_phase
from runner.phase.overrides import apply_overrides
from tests.helpers import ROOT, make_repo, runner_cli

PHASE = "name: p\ntickets:\n  - {id: A, agent: script, run: 'true'}\n"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"   # a dry run's image question
    return env | extra


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("RUNNER_CONCURRENCY", "x", "RUNNER_CONCURRENCY: 'x' is not valid for concurrency: "),
    ("RUNNER_CONCURRENCY", "0", "RUNNER_CONCURRENCY: '0' is not valid for concurrency: "),
    ("RUNNER_NETWORK", "host", "RUNNER_NETWORK: 'host' is not valid for network: "),
])
def test_a_bad_variable_is_named_alone(tmp_path: Path, variable: str, value: str,
                                       says: str) -> None:
    repo = make_repo(tmp_path / "repo")
    phase = tmp_path / "p.yaml"
    phase.write_text(PHASE)
    proc = runner_cli("run", str(phase), "--dry-run", cwd=repo, env=_env(**{variable: value}))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("runner: error: " + says), proc.stderr
    assert str(phase) not in proc.stderr and "p.yaml" not in proc.stderr


def test_a_bad_flag_is_named_and_beats_the_variable(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(PHASE)
    phase = load_phase(tmp_path / "p.yaml")
    with pytest.raises(OverrideError) as caught:
        apply_overrides(phase, flags={"network": "host"}, env={"RUNNER_NETWORK": "bridge"})
    assert str(caught.value).startswith("--network: 'host' is not valid for network: ")
    assert caught.value.source == "--network" and caught.value.exit_code == 2
    # An unset flag leaves the variable in force.
    assert apply_overrides(phase, flags={"network": None},
                           env={"RUNNER_NETWORK": "bridge"}).network == "bridge"
