"""Runs refused before anything starts: exit 2 with one line saying what to do."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import git, make_repo, runner_cli, write_phase

PHASE = {"name": "p", "tickets": [{"id": "A", "agent": "script", "run": "true"}]}


def _one_line(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_target_checked_out_is_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    git(repo, "checkout", "-q", "-b", "runner/p")
    proc = runner_cli("run", str(write_phase(tmp_path / "p.yaml", PHASE)), "--repo", str(repo))
    assert proc.returncode == 2
    assert "target 'runner/p' is the branch checked out" in _one_line(proc)
    assert git(repo, "for-each-ref", "refs/runner/") == ""


def test_unknown_base_is_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {**PHASE, "base": "no-such-branch"})
    proc = runner_cli("run", str(phase), "--repo", str(repo))
    assert proc.returncode == 2
    assert "base 'no-such-branch' is not a commit" in _one_line(proc)


def test_not_a_repository_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    phase = write_phase(tmp_path / "p.yaml", PHASE)
    proc = runner_cli("run", str(phase), "--repo", str(tmp_path / "plain"))
    assert proc.returncode == 2
    assert "is not inside a git repository" in _one_line(proc)


def test_missing_shared_gradle_cache_is_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {**PHASE, "gradle": {"shared_cache": "/nope"}})
    proc = runner_cli("run", str(phase), "--repo", str(repo))
    assert proc.returncode == 2
    assert "gradle.shared_cache: /nope is not a directory" in _one_line(proc)


def test_unknown_image_is_an_environment_error(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {**PHASE, "image": "runner-test-absent:1"})
    proc = runner_cli("run", str(phase), "--repo", str(repo))
    assert proc.returncode == 3
    assert "image runner-test-absent:1: not present" in _one_line(proc)


def test_a_runtime_the_engine_lacks_is_said_once_before_anything_starts(
        tmp_path: Path) -> None:
    """Not one "unknown or invalid runtime" per ticket: the engine's runtimes, named."""
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {**PHASE, "runtime": "gvisor"})
    proc = runner_cli("run", str(phase), "--repo", str(repo))
    assert proc.returncode == 3
    line = _one_line(proc)
    assert "runtime: 'gvisor' is not a runtime of the engine (it has: " in line, line
    assert "runc" in line
    assert git(repo, "for-each-ref", "refs/runner/") == ""
    dry = runner_cli("run", str(phase), "--repo", str(repo), "--dry-run")
    assert dry.returncode == 0 and "refused: runtime: 'gvisor'" in dry.stdout, dry.stdout


LLM = {"id": "L1", "prompt": "do it"}   # agent: anthropic is the default


@pytest.mark.parametrize(("tickets", "review", "says"), [
    ([LLM], False, "ticket L1 (agent: anthropic) needs ANTHROPIC_API_KEY"),
    ([LLM, PHASE["tickets"][0], {**LLM, "id": "L2"}], False,
     "tickets L1, L2 (agent: anthropic) need ANTHROPIC_API_KEY"),
    (PHASE["tickets"], True, "the review gate (review:) needs ANTHROPIC_API_KEY"),
    ([LLM, *PHASE["tickets"]], True,
     "ticket L1 (agent: anthropic) and the review gate (review:) need ANTHROPIC_API_KEY"),
    ([{**LLM, "id": f"L{i}"} for i in range(7)], False,
     "tickets L0, L1, L2, L3, L4 and 2 more (agent: anthropic) need ANTHROPIC_API_KEY"),
])
def test_a_missing_api_key_names_who_needs_it(tmp_path: Path, tickets: list, review: bool,
                                             says: str) -> None:
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {"name": "p", "tickets": tickets,
                                              **({"review": {"tier": "simple"}} if review
                                                 else {})})
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    proc = runner_cli("run", str(phase), "--repo", str(repo), env=env)
    assert proc.returncode == 3
    line = _one_line(proc)
    # The whole subject: the script ticket A, which needs no key, is not in it.
    assert line.startswith(f"runner: error: {says} in runner's environment"), line
    assert git(repo, "for-each-ref", "refs/runner/") == ""
