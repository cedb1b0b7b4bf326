"""Runs refused before anything starts: exit 2 with one line saying what to do."""

from __future__ import annotations

from pathlib import Path

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
