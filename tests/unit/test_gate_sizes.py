"""The gates on sizes a worker chooses, with real git: tens of thousands of changed files,
long paths, many commits. Nothing of it may reach a command line or crash the lead."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from runner.host.gitops import open_host_repo
from runner.phase.model import Phase, Ticket
from runner.worker.gates import MAX_COMMITS, gate_ticket
from tests.helpers import IDENTITY, git, make_repo

FILES = 60_000


def _import(repo: Path, stream: str) -> None:
    subprocess.run(["git", "fast-import", "--quiet"], cwd=repo, input=stream, text=True,
                   check=True)


def _commit(ref: str, parent: str | None, entries: list[str], message: str = "w") -> str:
    """A fast-import commit; with no ``parent`` it follows the ref's last (or is a root)."""
    return (f"commit {ref}\ncommitter w <w@example.invalid> 1700000000 +0000\n"
            f"data {len(message)}\n{message}\n" + (f"from {parent}\n" if parent else "")
            + "".join(entries))


def _file(path: str, data: str = "") -> str:
    return f"M 100644 inline {path}\ndata {len(data.encode())}\n{data}\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", {"README.md": "hello\n", ".ci/run": "ci\n"})


def _gate(repo: Path, tip: str, **ticket: object) -> str | None:
    base = git(repo, "rev-parse", "main")
    phase = Phase(name="p", max_file_size="1k",
                  tickets=[Ticket(id="T", agent="script", run="true", **ticket)])
    return gate_ticket(open_host_repo(repo), phase, phase.tickets[0], base=base, start=base,
                       tip=tip)


def test_sixty_thousand_files_pass_or_fail_by_the_rules(repo: Path) -> None:
    base = git(repo, "rev-parse", "main")
    many = [_file(f"gen/{n // 1000}/f{n}.txt", "x\n") for n in range(FILES)]
    _import(repo, _commit("refs/heads/many", base, many))
    assert _gate(repo, "refs/heads/many") is None
    assert _gate(repo, "refs/heads/many", paths=["gen/1/**"]) == (
        f"changed files outside its paths: gen/0/f0.txt, gen/0/f1.txt, gen/0/f10.txt, "
        f"gen/0/f100.txt, gen/0/f101.txt, gen/0/f102.txt, gen/0/f103.txt, gen/0/f104.txt, "
        f"gen/0/f105.txt, gen/0/f106.txt and {FILES - 1000 - 10:,} more (commits "
        f"{git(repo, 'rev-parse', '--short', 'refs/heads/many')})")


def test_large_and_protected_files_among_many(repo: Path) -> None:
    base = git(repo, "rev-parse", "main")
    entries = [_file(f"gen/f{n}", "") for n in range(5_000)]
    _import(repo, _commit("refs/heads/small", base, entries))
    small = git(repo, "rev-parse", "refs/heads/small")
    _import(repo, _commit("refs/heads/big", small, [_file("gen/big", "x" * 2000),
                                                    _file(".ci/run", "owned\n")]))
    short = git(repo, "rev-parse", "--short", "refs/heads/big")
    assert _gate(repo, "refs/heads/big") == f"changed files protected: .ci/run (commits {short})"
    _import(repo, _commit("refs/heads/big2", small, [_file("gen/big", "x" * 2000)]))
    short = git(repo, "rev-parse", "--short", "refs/heads/big2")
    assert _gate(repo, "refs/heads/big2") == (f"changed files larger than 1k: gen/big "
                                              f"(commits {short})")


def test_a_path_a_thousand_levels_deep(repo: Path) -> None:
    base = git(repo, "rev-parse", "main")
    deep = "/".join(["d"] * 1500) + "/f"     # git 2.43+ refuses trees deeper than 2048
    _import(repo, _commit("refs/heads/deep", base, [_file(deep, "x\n")]))
    assert _gate(repo, "refs/heads/deep") is None
    reason = _gate(repo, "refs/heads/deep", paths=["src/**"]) or ""
    assert reason.startswith("changed files outside its paths: d/d/d/") and "(commits " in reason


def test_too_many_commits_is_a_reason_not_a_wait(repo: Path) -> None:
    base = git(repo, "rev-parse", "main")
    _import(repo, "".join(_commit("refs/heads/chatty", None if n else base,
                                  [_file("counter", f"{n}\n")], message=f"c{n}")
                          for n in range(MAX_COMMITS + 1)))
    assert git(repo, "rev-list", "--count", f"{base}..refs/heads/chatty") == str(MAX_COMMITS + 1)
    assert _gate(repo, "refs/heads/chatty") == (
        f"it made {MAX_COMMITS + 1:,} commits; at most {MAX_COMMITS:,} are integrated, one by "
        "one: squash them")


def test_rewritten_history_names_a_few_commits(repo: Path) -> None:
    _import(repo, "".join(_commit("refs/heads/orphan", None, [_file(f"f{n}", f"{n}")], f"o{n}")
                          for n in range(30)))
    reason = _gate(repo, "refs/heads/orphan") or ""
    assert reason.startswith("its history does not descend from base") and "and 20 more" in reason
    assert IDENTITY   # the helpers' identity made the base commit
