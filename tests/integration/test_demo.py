"""`runner demo`: the sample phase runs to the end with script agents, no key, no registry."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import git, run_json


def test_demo(tmp_path: Path, worker_image: str) -> None:
    proc, doc = run_json("demo", "--dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    repo = tmp_path / "repo"
    assert [t["status"] for t in doc["tickets"]] == ["integrated"] * 5
    assert doc["checks_passed"] is True
    subjects = git(repo, "log", "--format=%s", f"main..{doc['target']}").splitlines()
    assert sorted(s.split(":")[0] for s in subjects) == ["R08", "R09", "R10", "R11", "R12"]
    assert subjects[0].startswith("R12")  # the docs ticket came after its dependencies
    policy = git(repo, "show", f"{doc['target']}:docs/scope-policy.md")
    for cls in ("Notifications", "Downloads", "Intents"):
        assert f"src/main/java/demo/{cls}.java" in policy
    assert "@Deprecated" in git(repo, "show", f"{doc['target']}:src/main/java/demo/Legacy.java")
    assert git(repo, "symbolic-ref", "--short", "HEAD") == "main"
    assert "see the result: git -C" in proc.stderr
