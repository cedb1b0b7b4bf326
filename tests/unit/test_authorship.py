"""Who commits: the host repo's user, the phase's author or the ticket; and the trailers a
worker's message may not forge."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.host.gitops import open_host_repo
from runner.phase.model import Author, Phase, Ticket
from runner.worker.authorship import Identity, read_authorship, without_runner_trailers
from tests.helpers import git, make_repo

PHASE = Phase(name="p", tickets=[Ticket(id="R08", agent="script", run="true")])


@pytest.fixture
def no_user_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """None of this machine's global or system git config (its user.name)."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def test_host_user_commits_and_the_ticket_authors(tmp_path: Path, no_user_config: None) -> None:
    repo = make_repo(tmp_path / "repo")
    git(repo, "config", "user.name", "Host Person")
    git(repo, "config", "user.email", "host@example.invalid")
    authorship = read_authorship(open_host_repo(repo), PHASE)
    assert authorship.committer == Identity("Host Person", "host@example.invalid")
    assert authorship.author_for("R08") == Identity("R08", "host@example.invalid")
    assert authorship.env("R08") == {
        "GIT_AUTHOR_NAME": "R08", "GIT_AUTHOR_EMAIL": "host@example.invalid",
        "GIT_COMMITTER_NAME": "Host Person", "GIT_COMMITTER_EMAIL": "host@example.invalid"}


def test_the_phase_author_authors_every_ticket(tmp_path: Path, no_user_config: None) -> None:
    repo = make_repo(tmp_path / "repo")
    git(repo, "config", "user.name", "Host Person")
    phase = PHASE.model_copy(update={"author": Author(name="Bot", email="bot@example.invalid")})
    authorship = read_authorship(open_host_repo(repo), phase)
    assert authorship.author_for("R08") == Identity("Bot", "bot@example.invalid")
    assert authorship.committer == Identity("Host Person", "runner@localhost")


def test_without_a_host_user(tmp_path: Path, no_user_config: None) -> None:
    authorship = read_authorship(open_host_repo(make_repo(tmp_path / "repo")), PHASE)
    assert authorship.committer == Identity("runner", "runner@localhost")
    assert authorship.author_for("R08") == Identity("R08", "R08@runner.local")


def test_forged_trailers_are_dropped() -> None:
    message = ("Runner-Ticket: subject stays\n\nbody\nRunner-Ticket: OTHER\n"
               "RUNNER-RUN  : x\n continued\n\tand more\nrunner-run=y\n"
               "Signed-off-by: A <a@b>\nRunner-Runs: not ours\n")
    assert without_runner_trailers(message) == (
        "Runner-Ticket: subject stays\n\nbody\nSigned-off-by: A <a@b>\n"
        "Runner-Runs: not ours\n")
