"""Which engine a run uses: the forms `engine:` takes, flag > environment > file, and what a
remote engine cannot carry refused before anything starts (exit 2, one line, no engine
asked)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runner.errors import OverrideError
from runner.phase.model import Phase
from runner.phase.overrides import apply_overrides
from runner.sandbox.engines import check_engine, resolve
from tests.helpers import ROOT, make_repo

TICKET = {"id": "A", "agent": "script", "run": "true"}


@pytest.mark.parametrize("value", ["local", "tcp://10.0.0.5:2375", "ssh://me@build-box",
                                   "build-box", "my.context+2", "kubernetes",
                                   "kubernetes:prod",
                                   "kubernetes:arn:aws:eks:eu-west-1:1:cluster/x"])
def test_engine_forms_accepted(value: str) -> None:
    assert check_engine(value) == value


@pytest.mark.parametrize("value, says", [
    ("", "is not an engine"), ("http://x:2375", "is not an engine"),
    ("tcp://", "is not an engine"), ("-rm", "is not an engine"),
    ("kubernetes:", "is not an engine"), ("kubernetes:a b", "is not an engine"),
    ("kubernetes-prod", "is not an engine")])
def test_engine_forms_refused(value: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        check_engine(value)


def test_urls_are_remote_and_local_is_this_machines() -> None:
    assert resolve("local").local and resolve("local").url is None
    assert resolve("tcp://h:1").url == "tcp://h:1" and not resolve("tcp://h:1").local


def test_kubernetes_names_its_context() -> None:
    assert resolve("kubernetes").kind == "kubernetes" and resolve("kubernetes").context is None
    prod = resolve("kubernetes:prod")
    assert (prod.kind, prod.context, prod.local, prod.title) == ("kubernetes", "prod", False,
                                                                 "Kubernetes")


def test_flag_over_environment_over_file() -> None:
    phase = Phase.model_validate({"name": "p", "engine": "tcp://file:1", "tickets": [TICKET]})
    env = {"RUNNER_ENGINE": "tcp://env:1"}
    assert apply_overrides(phase, flags={}, env={}).engine == "tcp://file:1"
    assert apply_overrides(phase, flags={}, env=env).engine == "tcp://env:1"
    assert apply_overrides(phase, flags={"engine": "tcp://flag:1"}, env=env).engine \
        == "tcp://flag:1"
    with pytest.raises(OverrideError, match="--engine"):
        apply_overrides(phase, flags={"engine": "nope nope"}, env={})


def _run(tmp_path: Path, phase: str, *flags: str) -> subprocess.CompletedProcess[str]:
    repo = make_repo(tmp_path / "repo")
    (tmp_path / "p.yaml").write_text(phase)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.run([sys.executable, "-m", "runner", "run", str(tmp_path / "p.yaml"),
                           "--repo", str(repo), *flags], capture_output=True, text=True,
                          env=env, timeout=60)


@pytest.mark.parametrize("phase, says, engine", [
    ("name: p\ngradle: {shared_cache: /tmp}\ntickets:\n  - {id: A, agent: script, run: 'true'}\n",
     "gradle.shared_cache is a directory on this machine", "tcp://127.0.0.1:1"),
    ("name: p\nnetwork: bridge\ntickets:\n  - {id: A, agent: script, run: 'true'}\n",
     "network: bridge is not built for Kubernetes", "kubernetes:nowhere")])
def test_what_a_remote_engine_cannot_carry_is_refused_before_it_is_asked(
        tmp_path: Path, phase: str, says: str, engine: str) -> None:
    # Port 1 on loopback: nothing answers there, and nothing may be asked (no cluster either).
    proc = _run(tmp_path, phase, "--engine", engine)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert says in line and "Traceback" not in proc.stderr


def test_an_override_leaves_what_the_file_left_out_unset() -> None:
    """An engine given by flag must not make resources.pids look set by the phase (it
    would be warned about on Kubernetes)."""
    from runner.run.preflight import unhonoured

    phase = Phase.model_validate({"name": "p", "tickets": [
        {"id": "A", "agent": "script", "run": "true"}]})
    moved = apply_overrides(phase, flags={"engine": "kubernetes", "models.simple": "m"}, env={})
    assert moved.engine == "kubernetes" and moved.models.simple == "m"
    assert "pids" not in moved.resources.model_fields_set
    assert unhonoured(moved, resolve("kubernetes")) == []
    bounded = Phase.model_validate({**phase.model_dump(exclude_unset=True),
                                    "resources": {"pids": 100}})
    [said] = unhonoured(apply_overrides(bounded, flags={"engine": "kubernetes"}, env={}),
                        resolve("kubernetes"))
    assert said.startswith("resources.pids has no effect on Kubernetes")
