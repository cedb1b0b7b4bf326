"""A whole phase through the real CLI, real Docker and real git: isolation, collection,
integration, dependencies, failures, and a host checkout that nothing touches."""

from __future__ import annotations

import os
from itertools import combinations
from pathlib import Path

import docker
import pytest

from tests.helpers import containers, git, host_snapshot, make_repo, run_json, write_phase

# Three tickets that overlap in time: each leaves a marker, waits for the others to leave
# theirs, then records what it can see of /workspace and of its Gradle home.
PARALLEL = """
date +%s.%N > "started-$RUNNER_TICKET"
echo "$RUNNER_TICKET" > "marker-$RUNNER_TICKET"
touch "$GRADLE_USER_HOME/home-of-$RUNNER_TICKET"
sleep 4
ls -a > "seen-$RUNNER_TICKET"
ls -a "$GRADLE_USER_HOME" > "gradle-seen-$RUNNER_TICKET"
cat /etc/hostname > "container-$RUNNER_TICKET"
id -u > "uid-$RUNNER_TICKET"
date +%s.%N > "ended-$RUNNER_TICKET"
"""

PHASE = {
    "name": "isolation",
    "base": "main",
    "concurrency": 3,
    "tickets": [
        *({"id": t, "title": f"parallel {t}", "agent": "script", "run": PARALLEL}
          for t in ("A", "B", "C")),
        {"id": "D", "agent": "script", "depends_on": ["A", "B"],
         "run": "test -f marker-A && test -f marker-B && ! test -f marker-C\n"
                "echo saw A and B > dep-D"},
        {"id": "E", "agent": "script", "run": "echo partial > partial-E\nexit 1"},
        {"id": "F", "agent": "script", "depends_on": ["E"], "run": "echo never > f"},
        {"id": "G", "agent": "script", "run": "true"},
        {"id": "H", "agent": "script", "timeout": 3, "run": "sleep 60"},
        {"id": "I", "agent": "script", "run": "git checkout -q -b elsewhere\n"
                                              "echo committed > i\ngit add i\n"
                                              "git commit -q -m 'I: by the worker'"},
    ],
}


@pytest.fixture(scope="module")
def phase_run(tmp_path_factory: pytest.TempPathFactory, worker_image: str):
    root = tmp_path_factory.mktemp("phase")
    repo = make_repo(root / "repo", {"README.md": "hello\n", "src/app.txt": "app\n"})
    # A dirty host checkout: runs use committed refs and must leave all of this alone.
    (repo / "README.md").write_text("edited, not committed\n")
    (repo / "src/app.txt").write_text("staged\n")
    git(repo, "add", "src/app.txt")
    (repo / "untracked.txt").write_text("untracked\n")
    before = host_snapshot(repo)
    phase_file = write_phase(root / "phase.yaml", PHASE)
    proc, doc = run_json("run", str(phase_file), "--repo", str(repo))
    return repo, proc, doc, before


def _file(repo: Path, ref: str, path: str) -> str:
    return git(repo, "show", f"{ref}:{path}")


def test_exit_code_and_statuses(phase_run) -> None:
    _, proc, doc, _ = phase_run
    assert proc.returncode == 1, proc.stderr
    status = {t["id"]: t["status"] for t in doc["tickets"]}
    assert status == {"A": "integrated", "B": "integrated", "C": "integrated",
                      "D": "integrated", "E": "failed", "F": "skipped", "G": "failed",
                      "H": "failed", "I": "integrated"}
    reasons = {t["id"]: t["reason"] for t in doc["tickets"]}
    assert "exited with 1" in reasons["E"]
    assert "dependency E" in reasons["F"]
    assert "timed out" in reasons["H"]
    assert reasons["G"] == "it changed nothing"


def test_tickets_ran_concurrently_in_separate_containers(phase_run) -> None:
    repo, _, doc, _ = phase_run
    target = doc["target"]
    spans = {t: (float(_file(repo, target, f"started-{t}")),
                 float(_file(repo, target, f"ended-{t}"))) for t in "ABC"}
    for a, b in combinations("ABC", 2):
        assert spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1], spans
    hostnames = {_file(repo, target, f"container-{t}") for t in "ABC"}
    assert len(hostnames) == 3


def test_no_worker_saw_another_workers_files(phase_run) -> None:
    repo, _, doc, _ = phase_run
    for t in "ABC":
        seen = _file(repo, doc["target"], f"seen-{t}").split()
        assert f"marker-{t}" in seen
        assert not {f"marker-{o}" for o in "ABC" if o != t} & set(seen)


def test_each_worker_had_its_own_gradle_home(phase_run) -> None:
    repo, _, doc, _ = phase_run
    run_dir = Path(doc["run_dir"])
    for t in "ABC":
        assert _file(repo, doc["target"], f"gradle-seen-{t}").split() == [".", "..",
                                                                          f"home-of-{t}"]
        assert [p.name for p in (run_dir / "gradle" / t).iterdir()] == [f"home-of-{t}"]


def test_host_checkout_untouched(phase_run) -> None:
    repo, _, _, before = phase_run
    assert host_snapshot(repo) == before


def test_each_tickets_commits_are_in_its_ref(phase_run) -> None:
    repo, _, doc, _ = phase_run
    base = git(repo, "rev-parse", "main")
    refs = {t["id"]: t["ref"] for t in doc["tickets"]}
    for t in "ABCI":
        assert git(repo, "rev-list", "--count", f"{base}..{refs[t]}") == "1"
    # D started from the integrated head that held its dependencies: one commit on top.
    assert git(repo, "log", "-1", "--format=%s", refs["D"]) == "D: D"
    assert _file(repo, f"{refs['D']}~1", "marker-A") == "A"
    # A failed ticket's partial work is kept, not integrated.
    assert _file(repo, refs["E"], "partial-E") == "partial"
    assert refs["F"] is None and refs["G"] is None
    assert git(repo, "log", "-1", "--format=%s", refs["A"]) == "A: parallel A"
    assert git(repo, "log", "-1", "--format=%s", refs["I"]) == "I: by the worker"


def test_target_holds_the_integrated_work(phase_run) -> None:
    repo, _, doc, _ = phase_run
    target = doc["target"]
    assert target == "runner/isolation"
    assert git(repo, "rev-parse", target) == doc["target_sha"]
    files = git(repo, "ls-tree", "-r", "--name-only", target).split()
    for t in "ABC":
        assert f"marker-{t}" in files
    assert "dep-D" in files and "i" in files
    assert "partial-E" not in files and "f" not in files
    assert git(repo, "rev-list", "--count", f"main..{target}") == "5"
    assert git(repo, "symbolic-ref", "--short", "HEAD") == "main"


def test_dependent_started_from_its_dependencies_work(phase_run) -> None:
    repo, _, doc, _ = phase_run
    assert _file(repo, doc["target"], "dep-D") == "saw A and B"


def test_worker_files_belong_to_the_host_user(phase_run) -> None:
    repo, _, doc, _ = phase_run
    clone = Path(doc["run_dir"]) / "workspaces" / "A"
    assert _file(repo, doc["target"], "uid-A") == str(os.getuid())
    for path in [clone / "marker-A", clone / ".git" / "index", *(clone / ".git").rglob("*")]:
        assert path.lstat().st_uid == os.getuid(), path


def test_logs_hold_each_tickets_output(phase_run) -> None:
    _, _, doc, _ = phase_run
    logs = Path(doc["run_dir"]) / "logs"
    assert "sleep 4" in (logs / "A.log").read_text()
    assert "exit 1" in (logs / "E.log").read_text()


def test_no_container_of_the_run_is_left(phase_run, engine: docker.DockerClient) -> None:
    _, _, doc, _ = phase_run
    left = containers(engine, doc['run_id'])
    assert left == []
