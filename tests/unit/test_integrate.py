"""Integration in the runner-owned clone, with every git on this machine (the runner image
has bookworm's 2.39): each commit keeps its author and message, gets the host user as
committer and exactly the true trailers, whatever the worker wrote; conflicts as before."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from runner.host.gitops import open_host_repo
from runner.run.integrate import Integrator
from runner.worker.authorship import Identity
from tests.helpers import git, make_repo

HOST_USER = Identity("Host Person", "host@example.invalid")
FORGED = ("W: first\n\nWhy it was done.\n\nRunner-Ticket: OTHER\nrunner-run : forged\n"
          "  continued\nRunner-Ticket: OTHER2\nSigned-off-by: Wendy <wendy@example.invalid>\n")


def _gits() -> list[str]:
    found = {os.path.realpath(p): p for p in ("/usr/bin/git", "/usr/local/bin/git",
                                               shutil.which("git") or "") if os.path.isfile(p)}
    return sorted(found.values())


@pytest.fixture(params=_gits())
def git_version(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PATH", f"{Path(request.param).parent}:{os.environ['PATH']}")
    return subprocess.run(["git", "--version"], capture_output=True, text=True).stdout


def _commit(repo: Path, message: str, files: dict[str, str], **env: str) -> str:
    for rel, text in files.items():
        (repo / rel).write_text(text)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "--quiet", "--allow-empty", "-F", "-"], cwd=repo,
                   input=message, text=True, check=True, env={**os.environ, **env})
    return git(repo, "rev-parse", "HEAD")


def _trailers(repo: Path, ref: str, key: str) -> list[str]:
    return git(repo, "log", "-1", f"--format=%(trailers:key={key},valueonly)", ref).split()


def test_integrated_commits_carry_exactly_the_true_trailers(tmp_path: Path,
                                                            git_version: str) -> None:
    repo = make_repo(tmp_path / "repo", {"README.md": "hello\n"})
    base = git(repo, "rev-parse", "HEAD")
    wendy = {"GIT_AUTHOR_NAME": "Wendy", "GIT_AUTHOR_EMAIL": "wendy@example.invalid",
             "GIT_AUTHOR_DATE": "@1700000000 +0100"}
    git(repo, "checkout", "--quiet", "-b", "work")
    _commit(repo, FORGED, {"a.txt": "a\n"}, **wendy)
    tip = _commit(repo, "W: nothing, on purpose", {}, **wendy)      # an empty commit
    git(repo, "checkout", "--quiet", "main")
    integrator = Integrator(open_host_repo(repo), clone=tmp_path / "clone", base=base,
                            integrated_ref="refs/runner/r1/integrated", target=None,
                            run_id="r1", committer=HOST_USER)

    merged = integrator.integrate(start=base, tip=tip, ticket="W")

    assert merged.ok, merged.reason
    head = "refs/runner/r1/integrated"
    assert git(repo, "rev-list", "--count", f"{base}..{head}") == "2"
    for ref in (head, f"{head}~1"):
        assert _trailers(repo, ref, "Runner-Run") == ["r1"]
        assert _trailers(repo, ref, "Runner-Ticket") == ["W"]
        assert git(repo, "log", "-1", "--format=%an <%ae> %ad|%cn <%ce>", "--date=raw",
                   ref) == "Wendy <wendy@example.invalid> 1700000000 +0100|" \
                           "Host Person <host@example.invalid>"
    message = git(repo, "log", "-1", "--format=%B", f"{head}~1")
    assert message.startswith("W: first\n\nWhy it was done.\n")
    assert "OTHER" not in message and "forged" not in message and "continued" not in message
    assert "Signed-off-by: Wendy <wendy@example.invalid>" in message
    assert git(repo, "show", f"{head}:a.txt") == "a"


def test_redundant_commits_integrate_and_conflicts_fail_as_before(tmp_path: Path,
                                                                  git_version: str) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "grey\n"})
    base = git(repo, "rev-parse", "HEAD")
    tips = {}
    for ticket, text in (("RED", "red\n"), ("SAME", "red\n"), ("BLUE", "blue\n")):
        git(repo, "checkout", "--quiet", "-b", ticket, base)
        tips[ticket] = _commit(repo, f"{ticket}: colour", {"a.txt": text})
    git(repo, "checkout", "--quiet", "main")
    integrator = Integrator(open_host_repo(repo), clone=tmp_path / "clone", base=base,
                            integrated_ref="refs/runner/r2/integrated", target=None,
                            run_id="r2", committer=HOST_USER)

    assert integrator.integrate(start=base, tip=tips["RED"], ticket="RED").ok
    same = integrator.integrate(start=base, tip=tips["SAME"], ticket="SAME")
    assert same.ok, same.reason     # already applied: kept as an empty commit
    head = same.head
    assert _trailers(repo, head, "Runner-Ticket") == ["SAME"]
    assert git(repo, "diff", f"{head}~1", head) == ""

    blue = integrator.integrate(start=base, tip=tips["BLUE"], ticket="BLUE")
    assert not blue.ok and blue.conflicts == ("a.txt",)
    assert blue.reason == "conflicts with the integrated work in a.txt"
    assert blue.head == head == integrator.head
    assert git(tmp_path / "clone", "status", "--porcelain") == ""
    assert git(repo, "rev-parse", "refs/runner/r2/integrated") == head


def test_a_message_that_is_not_utf8_integrates(tmp_path: Path, git_version: str) -> None:
    """git's --format reads a message that is not UTF-8 as Latin-1; nothing fails on it."""
    repo = make_repo(tmp_path / "repo")
    base = git(repo, "rev-parse", "HEAD")
    (repo / "a.txt").write_text("a\n")
    git(repo, "add", "-A")
    subprocess.run(["git", "commit", "--quiet", "-F", "-"], cwd=repo, check=True,
                   input=b"W: caf\xe9 (latin-1, no encoding header)\n")
    integrator = Integrator(open_host_repo(repo), clone=tmp_path / "clone", base=base,
                            integrated_ref="refs/runner/r3/integrated", target=None,
                            run_id="r3", committer=HOST_USER)
    assert integrator.integrate(start=base, tip=git(repo, "rev-parse", "HEAD"), ticket="W").ok
    raw = subprocess.run(["git", "cat-file", "commit", "refs/runner/r3/integrated"], cwd=repo,
                         capture_output=True, check=True).stdout
    assert raw.endswith("\n\nW: café (latin-1, no encoding header)\n\n".encode()
                        + b"Runner-Run: r3\nRunner-Ticket: W\n")
