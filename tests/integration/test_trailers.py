"""Commits a team can push, through the real CLI, Docker and git: every commit runner makes or
integrates carries the true Runner-Run / Runner-Ticket trailers (a worker's forged ones are
replaced), is committed by the host repo's user and authored by the ticket or the phase's
``author:``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import git, make_repo, run_json, write_phase

HOST = ("Host Person", "host@example.invalid")
TICKETS = [
    # Commits itself, forging both trailers, and leaves a file for runner to commit.
    {"id": "W", "title": "worker and leftovers", "agent": "script",
     "run": "echo w > w.txt\ngit add w.txt\n"
            "git commit -q -m 'W: by the worker' -m 'Runner-Ticket: OTHER\nRunner-Run: forged'\n"
            "echo left > w-left.txt"},
    # Commits nothing itself: runner's commit is its only one.
    {"id": "L", "title": "only leftovers", "agent": "script", "run": "echo l > l.txt"},
]


def _log(repo: Path, rev: str) -> list[dict[str, str]]:
    """The commits of ``rev``, oldest first: subject, identities and both trailers."""
    fields = ("%s", "%an", "%ae", "%cn", "%ce", "%(trailers:key=Runner-Run,valueonly,"
              "separator=%x2C)", "%(trailers:key=Runner-Ticket,valueonly,separator=%x2C)")
    out = git(repo, "log", "--reverse", "--format=" + "%x1f".join(fields) + "%x1e", rev)
    names = ("subject", "author", "author_email", "committer", "committer_email", "run",
             "ticket")
    return [dict(zip(names, entry.strip("\n").split("\x1f"), strict=True))
            for entry in out.split("\x1e") if entry.strip()]


def _run(tmp_path: Path, name: str, *, host_user: bool, author: dict[str, str] | None = None,
         preflight: bool = True) -> tuple[Path, dict]:
    repo = make_repo(tmp_path / name)
    env = dict(os.environ)
    if host_user:
        git(repo, "config", "user.name", HOST[0])
        git(repo, "config", "user.email", HOST[1])
    else:   # none of this machine's config either: a host without any git identity
        env |= {"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    phase = {"name": name, "tickets": TICKETS} | ({"author": author} if author else {})
    phase_file = write_phase(tmp_path / f"{name}.yaml", phase)
    proc, doc = run_json("run", str(phase_file), "--repo", str(repo),
                         *(() if preflight else ("--no-preflight",)), env=env)
    assert proc.returncode == 0, proc.stderr
    return repo, doc


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory, worker_image: str):
    return _run(tmp_path_factory.mktemp("trailers"), "trailers", host_user=True)


def test_every_integrated_commit_carries_the_runs_trailers(default_run) -> None:
    repo, doc = default_run
    commits = _log(repo, f"main..{doc['target']}")
    assert sorted(c["subject"] for c in commits) == ["L: only leftovers", "W: by the worker",
                                                     "W: worker and leftovers"]
    for commit in commits:
        ticket = commit["subject"].split(":")[0]
        assert (commit["run"], commit["ticket"]) == (doc["run_id"], ticket), commit
        # Authored by the ticket with the host user's email, committed by the host user.
        assert (commit["author"], commit["author_email"]) == (ticket, HOST[1]), commit
        assert (commit["committer"], commit["committer_email"]) == HOST, commit


def test_a_forged_trailer_is_replaced_in_the_integrated_commit(default_run) -> None:
    repo, doc = default_run
    raw = _log(repo, f"main..refs/runner/{doc['run_id']}/W")[0]
    assert (raw["subject"], raw["ticket"], raw["run"]) == ("W: by the worker", "OTHER",
                                                           "forged")
    integrated = next(c for c in _log(repo, f"main..{doc['target']}")
                      if c["subject"] == "W: by the worker")
    assert (integrated["ticket"], integrated["run"]) == ("W", doc["run_id"])
    message = git(repo, "log", "-1", "--format=%B", "--grep=^W: by the worker",
                  doc["target"])
    assert "OTHER" not in message and "forged" not in message


def test_runners_commit_of_leftovers_carries_the_trailers_in_the_tickets_ref(default_run):
    repo, doc = default_run
    for ticket, subject in (("L", "L: only leftovers"), ("W", "W: worker and leftovers")):
        made = _log(repo, f"main..refs/runner/{doc['run_id']}/{ticket}")[-1]
        assert made == {"subject": subject, "author": ticket, "author_email": HOST[1],
                        "committer": HOST[0], "committer_email": HOST[1],
                        "run": doc["run_id"], "ticket": ticket}


def test_the_phase_author_authors_and_the_host_user_commits(tmp_path: Path,
                                                             worker_image: str) -> None:
    repo, doc = _run(tmp_path, "authored", host_user=True, preflight=False,
                     author={"name": "Phase Bot", "email": "bot@example.invalid"})
    commits = _log(repo, f"main..{doc['target']}")
    assert len(commits) == 3
    for commit in commits:
        assert (commit["author"], commit["author_email"]) == ("Phase Bot",
                                                              "bot@example.invalid")
        assert (commit["committer"], commit["committer_email"]) == HOST
        assert (commit["run"], commit["ticket"]) == (doc["run_id"],
                                                     commit["subject"].split(":")[0])


def test_a_host_without_a_git_identity(tmp_path: Path, worker_image: str) -> None:
    repo, doc = _run(tmp_path, "anonymous", host_user=False, preflight=False)
    for commit in _log(repo, f"main..{doc['target']}"):
        ticket = commit["subject"].split(":")[0]
        assert (commit["author"], commit["author_email"]) == (ticket, f"{ticket}@runner.local")
        assert (commit["committer"], commit["committer_email"]) == ("runner",
                                                                    "runner@localhost")
        assert (commit["run"], commit["ticket"]) == (doc["run_id"], ticket)
