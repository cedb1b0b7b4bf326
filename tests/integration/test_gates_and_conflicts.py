"""What the lead refuses: conflicts, files outside `paths`, failing checks, a failing phase
gate. Refused work stays in its ref; the rest of the phase goes on."""

from __future__ import annotations

import re

import pytest

from tests.helpers import git, make_repo, run_json, write_phase

PHASE = {
    "name": "gates",
    "concurrency": 4,
    "checks": ["test ! -f broken"],
    "max_file_size": "1k",
    "tickets": [
        {"id": "P1", "agent": "script", "run": "echo one > shared.txt\ntouch broken"},
        {"id": "P2", "agent": "script", "max_reruns": 0, "run": "sleep 3\necho two > shared.txt"},
        {"id": "S", "agent": "script", "paths": ["docs/**"],
         "run": "mkdir -p docs src\necho ok > docs/a.md\necho no > src/x.txt"},
        {"id": "K", "agent": "script", "checks": ["true", "test -f nonexistent"],
         "run": "echo k > k.txt"},
        {"id": "OK", "agent": "script", "paths": ["docs/**"], "run": "mkdir -p docs\n"
                                                              "echo fine > docs/ok.md"},
        {"id": "REWRITE", "agent": "script",
         "run": "git reset -q --soft HEAD~1\ngit commit -q -m 'squashed away the base'"},
        {"id": "PROTECT", "agent": "script",
         "run": "mkdir -p .github/workflows\necho 'on: push' > .github/workflows/x.yml"},
        {"id": "HUGE", "agent": "script", "run": "head -c 4096 /dev/zero > huge.bin"},
    ],
}


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory, worker_image: str):
    root = tmp_path_factory.mktemp("gates")
    repo = make_repo(root / "repo", {"shared.txt": "zero\n"})
    (repo / "second.txt").write_text("second\n")
    git(repo, "add", "second.txt")
    git(repo, "commit", "-q", "-m", "second")
    proc, doc = run_json("run", str(write_phase(root / "phase.yaml", PHASE)), "--repo",
                         str(repo))
    return repo, proc, doc


def test_statuses_and_reasons(gated) -> None:
    _, proc, doc = gated
    assert proc.returncode == 1
    tickets = {t["id"]: t for t in doc["tickets"]}
    assert {t: v["status"] for t, v in tickets.items()} == {
        "P1": "integrated", "P2": "failed", "S": "failed", "K": "failed", "OK": "integrated",
        "REWRITE": "failed", "PROTECT": "failed", "HUGE": "failed"}
    assert tickets["P2"]["reason"] == "conflicted with P1 in shared.txt"
    assert tickets["P2"]["conflict"] and tickets["P2"]["conflicts_with"] == ["P1"]
    assert re.fullmatch(r"changed files outside its paths: src/x\.txt \(commits [0-9a-f]+\)",
                        tickets["S"]["reason"]), tickets["S"]["reason"]
    assert tickets["K"]["reason"] == "check `test -f nonexistent` exited with 1"
    assert tickets["REWRITE"]["reason"].startswith("its history does not descend from base")
    assert re.match(r"changed files protected: \.github/workflows/x\.yml \(commits \w+\)",
                    tickets["PROTECT"]["reason"])
    assert tickets["HUGE"]["reason"].startswith("changed files larger than 1k: huge.bin")


def test_refused_work_is_kept_in_refs(gated) -> None:
    repo, _, doc = gated
    refs = {t["id"]: t["ref"] for t in doc["tickets"]}
    assert git(repo, "show", f"{refs['P2']}:shared.txt") == "two"
    assert git(repo, "show", f"{refs['S']}:src/x.txt") == "no"
    assert git(repo, "show", f"{refs['K']}:k.txt") == "k"


def test_failed_phase_gate_keeps_target_and_a_candidate(gated) -> None:
    repo, _, doc = gated
    assert doc["checks_passed"] is False
    assert "test ! -f broken" in doc["checks_reason"]
    assert doc["culprit"] == "P1" and "they fail from ticket P1 on" in doc["checks_reason"]
    assert doc["target_sha"] is None
    assert git(repo, "branch", "--list", "runner/gates") == ""
    candidate = f"refs/runner/{doc['run_id']}/candidate"
    files = git(repo, "ls-tree", "-r", "--name-only", candidate).split()
    assert {"broken", "docs/ok.md", "shared.txt"} <= set(files)
    assert git(repo, "show", f"{candidate}:shared.txt") == "one"
