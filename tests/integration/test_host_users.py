"""The host user running runner owns what workers write, and git works inside the worker
without "dubious ownership": for root (the rest of the suite) and for a non-root user here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT, git, make_repo, write_phase

UID = GID = 4242
VENV_PYTHON = ROOT / ".venv-nonroot" / "bin" / "python"
PHASE = {"name": "users", "tickets": [
    {"id": "W", "agent": "script",
     "run": "id -u > uid\nmkdir -p made/deep\necho x > made/deep/file\n"
            "git add -A\ngit commit -q -m 'W: by the worker'\necho left > uncommitted"}]}


@pytest.fixture
def nonroot_repo(worker_image: str) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("the suite already runs as a non-root user")
    if not VENV_PYTHON.exists():
        pytest.fail("no interpreter a non-root user can run: run ./setup.sh --dev as root")
    root = Path(tempfile.mkdtemp(prefix="runner-nonroot-"))
    try:
        make_repo(root / "repo", {"a.txt": "a\n"})
        write_phase(root / "phase.yaml", PHASE)
        (root / "home").mkdir()
        subprocess.run(["chown", "-R", f"{UID}:{GID}", str(root)], check=True)
        yield root
    finally:
        shutil.rmtree(root)


def test_non_root_host_user(nonroot_repo: Path) -> None:
    root, repo = nonroot_repo, nonroot_repo / "repo"
    socket_gid = os.stat("/var/run/docker.sock").st_gid
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(root / "home"), "LC_ALL": "C"}
    proc = subprocess.run(
        ["setpriv", f"--reuid={UID}", f"--regid={GID}", f"--groups={socket_gid}",
         str(VENV_PYTHON), "-m", "runner", "run", str(root / "phase.yaml"), "--repo",
         str(repo), "--json"], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    ref = doc["tickets"][0]["ref"]
    assert git(repo, "show", f"{ref}:uid") == str(UID)
    # The worker's own commit plus runner's commit of what it left uncommitted.
    assert git(repo, "log", "--format=%s", f"main..{ref}").splitlines() == [
        "W: W", "W: by the worker"]
    assert git(repo, "show", f"{doc['target']}:made/deep/file") == "x"
    clone = Path(doc["run_dir"]) / "workspaces" / "W"
    for path in [clone, *clone.rglob("*"), Path(doc["run_dir"])]:
        assert (path.lstat().st_uid, path.lstat().st_gid) == (UID, GID), path
    refs = repo / ".git" / "refs" / "runner"
    assert all(p.stat().st_uid == UID for p in refs.rglob("*"))


def test_a_repo_of_another_user_trusted_by_safe_directory(nonroot_repo: Path) -> None:
    """As in CI containers: root runs runner on a checkout owned by another uid, which the
    user's own git config trusts (safe.directory). Every git call of runner's, the run's
    object store filled from that repo included, honours it."""
    root, repo = nonroot_repo, nonroot_repo / "repo"
    home = root / "root-home"
    home.mkdir()
    (home / ".gitconfig").write_text(f"[safe]\n\tdirectory = {repo}\n")
    env = {**os.environ, "HOME": str(home)}
    proc = subprocess.run([sys.executable, "-m", "runner", "run", str(root / "phase.yaml"),
                           "--repo", str(repo), "--json"], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert git(repo, "show", f"{doc['target']}:made/deep/file") == "x"
