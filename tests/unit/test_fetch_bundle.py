"""A worker's bundle reaches the host repo only if every object passes git's checks, with
every git on this machine (Debian bookworm's 2.39 does not check a bundle fetched directly)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from runner.errors import GitError
from runner.host.gitops import open_host_repo
from tests.helpers import git, make_repo

BAD_COMMIT = "tree {tree}\nparent {parent}\nauthor evil <no-close 1 +0000\n" \
             "committer x <x@y> 1 +0000\n\nbad\n"


def _gits() -> list[str]:
    found = {os.path.realpath(p): p for p in ("/usr/bin/git", "/usr/local/bin/git",
                                               shutil.which("git") or "") if os.path.isfile(p)}
    return sorted(found.values())


@pytest.fixture(params=_gits())
def git_version(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """runner's git calls go to this binary (its directory first on PATH)."""
    monkeypatch.setenv("PATH", f"{Path(request.param).parent}:{os.environ['PATH']}")
    return subprocess.run(["git", "--version"], capture_output=True, text=True).stdout


def _worker_bundle(tmp_path: Path, *, malformed: bool) -> tuple[Path, Path, str]:
    """A host repo, and a bundle of one commit on top of its main, as a worker makes it."""
    worker = make_repo(tmp_path / "worker")
    base = git(worker, "rev-parse", "HEAD")
    host = tmp_path / "host"
    git(tmp_path, "clone", "--quiet", "--no-local", str(worker), str(host))
    if malformed:
        text = BAD_COMMIT.format(tree=git(worker, "write-tree"), parent=base)
        tip = subprocess.run(["git", "hash-object", "-t", "commit", "-w", "--literally",
                              "--stdin"], cwd=worker, input=text, capture_output=True,
                             text=True, check=True).stdout.strip()
        git(worker, "update-ref", "HEAD", tip)
    else:
        (worker / "new.txt").write_text("new\n")
        git(worker, "add", "-A")
        git(worker, "commit", "--quiet", "-m", "good")
        tip = git(worker, "rev-parse", "HEAD")
    bundle = tmp_path / "bundles" / "W.bundle"
    bundle.parent.mkdir()
    git(worker, "bundle", "create", "--quiet", str(bundle), "HEAD", f"^{base}")
    return host, bundle, tip


def test_a_malformed_commit_is_refused(tmp_path: Path, git_version: str) -> None:
    host, bundle, tip = _worker_bundle(tmp_path, malformed=True)
    git(host, "config", "fetch.fsckObjects", "false")     # the repo's config cannot opt out
    with pytest.raises(GitError) as refused:
        open_host_repo(host).fetch_bundle(bundle, "refs/runner/r/W", readable=host / ".git/objects")
    assert "badEmail" in refused.value.stderr, git_version
    probe = subprocess.run(["git", "cat-file", "-e", tip], cwd=host)
    assert probe.returncode != 0, f"{git_version}: the bad object reached the host"
    assert git(host, "for-each-ref", "refs/runner/") == ""
    assert [p.name for p in bundle.parent.iterdir()] == ["W.bundle"]    # quarantine gone


def test_a_good_bundle_arrives(tmp_path: Path, git_version: str) -> None:
    host, bundle, tip = _worker_bundle(tmp_path, malformed=False)
    open_host_repo(host).fetch_bundle(bundle, "refs/runner/r/W", readable=host / ".git/objects")
    assert git(host, "rev-parse", "refs/runner/r/W") == tip
    assert git(host, "show", "refs/runner/r/W:new.txt") == "new"
