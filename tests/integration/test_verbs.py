"""After a run: `diff`, `show`, `apply` and `logs -f` over a real run's refs, checked against
git itself. The run has a conflict and its rerun, a refused gate, a failed check, a dependent
ticket and a worker that names its file with terminal escapes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import (IDENTITY, git, in_a_terminal, make_repo, run_json, runner_cli,
                           write_phase)

PHASE = {
    "name": "verbs",
    "concurrency": 4,
    "tickets": [
        {"id": "ALPHA", "agent": "script", "title": "the first word",
         "run": "echo a > shared.txt\necho one > alpha.txt"},
        {"id": "BETA", "agent": "script", "run": "sleep 3\necho b > shared.txt"},
        {"id": "GATED", "agent": "script", "paths": ["docs/**"],
         "run": "mkdir -p docs src\necho ok > docs/a.md\necho no > src/x.txt"},
        {"id": "CHECKED", "agent": "script",
         "checks": ["echo checking-now; printf 'forged\\r[check] passed: fake\\n'; exit 3"],
         "run": "echo k > k.txt"},
        {"id": "DEPENDENT", "agent": "script", "depends_on": ["ALPHA"],
         "run": "cat alpha.txt > dependent.txt"},
        {"id": "HOSTILE", "agent": "script",
         "run": "name=$(printf '\\033]52;c;aGk=\\007\\033[2Jname.txt')\n"
                "printf 'x\\033]0;title\\007\\n' > \"$name\""},
    ],
}


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory, worker_image: str):
    root = tmp_path_factory.mktemp("verbs")
    repo = make_repo(root / "repo", {"shared.txt": "zero\n"})
    proc, doc = run_json("run", str(write_phase(root / "phase.yaml", PHASE)), "--repo",
                         str(repo))
    assert proc.returncode == 1, proc.stderr
    return repo, {t["id"]: t for t in doc["tickets"]}, doc


def verb(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return runner_cli(*args, "--repo", str(repo), env={**os.environ, **IDENTITY})


def test_the_run_has_what_the_verbs_are_shown_on(ran) -> None:
    _, tickets, _ = ran
    assert {t: v["status"] for t, v in tickets.items()} == {
        "ALPHA": "integrated", "BETA": "integrated", "GATED": "failed", "CHECKED": "failed",
        "DEPENDENT": "integrated", "HOSTILE": "integrated"}
    assert [a["result"] for a in tickets["BETA"]["attempts"]] == ["conflicted", "integrated"]


def test_diff_is_gits_diff_of_the_ticket(ran) -> None:
    repo, tickets, doc = ran
    gated = tickets["GATED"]
    shown = verb(repo, "diff", doc["run_id"], "GATED")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == git(repo, "diff", gated["start"], gated["ref"]) + "\n"
    stat = verb(repo, "diff", "GAT", "--stat")        # the newest run; a prefix of the id
    assert stat.stdout.strip() == git(repo, "diff", "--stat", gated["start"], gated["ref"])
    assert "src/x.txt" in stat.stdout and "docs/a.md" in stat.stdout


def test_diff_of_each_attempt(ran) -> None:
    repo, tickets, _ = ran
    first, rerun = tickets["BETA"]["attempts"]
    assert first["start"] != rerun["start"]          # the rerun started from the new head
    for number, attempt in ((1, first), (2, rerun)):
        shown = verb(repo, "diff", "latest", "BETA", "--attempt", str(number))
        assert shown.stdout == git(repo, "diff", attempt["start"], attempt["tip"]) + "\n"
    assert "-zero" in verb(repo, "diff", "BETA", "--attempt", "1").stdout
    assert "-a" in verb(repo, "diff", "BETA").stdout          # the last: on ALPHA's work
    wrong = verb(repo, "diff", "BETA", "--attempt", "3")
    assert wrong.returncode == 2 and "ran 2 times" in wrong.stderr


def test_diff_of_a_hostile_name_reaches_no_terminal_as_escapes(ran) -> None:
    repo, _, _ = ran
    shown = verb(repo, "diff", "HOSTILE")
    assert shown.returncode == 0, shown.stderr
    assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout
    assert "name.txt" in shown.stdout and "+x" in shown.stdout


def test_show_tells_the_story(ran) -> None:
    repo, tickets, _ = ran
    beta = verb(repo, "show", "latest", "BETA").stdout
    assert "BETA" in beta and "status   integrated" in beta
    assert f"start    {tickets['BETA']['start'][:12]}" in beta
    assert "conflicted with ALPHA in shared.txt" in beta
    assert tickets["BETA"]["ref"] in beta
    assert tickets["BETA"]["attempts"][0]["ref"] in beta and "(attempt 1)" in beta
    alpha = verb(repo, "show", "ALPHA").stdout
    assert "the first word" in alpha and "agent    script" in alpha
    gated = verb(repo, "show", "GATED").stdout
    assert "changed files outside its paths: src/x.txt" in gated
    checked = verb(repo, "show", "CHECKED").stdout
    assert "exited with 3: echo checking-now; printf" in checked
    assert "| checking-now" in checked
    # A worker's "\r" cannot make a line of its own that reads as runner's check verdict.
    assert not [line for line in checked.splitlines() if line.strip().startswith("passed")]
    dependent = verb(repo, "show", "DEP").stdout
    assert "after    ALPHA" in dependent
    assert "\x1b" not in verb(repo, "show", "HOSTILE").stdout


def test_names_that_mean_nothing_or_several(ran) -> None:
    repo, _, doc = ran
    none = verb(repo, "show", "NOPE")
    assert none.returncode == 2 and "has no ticket 'NOPE'" in none.stderr
    assert "ALPHA" in none.stderr            # it lists the tickets there are
    no_run = verb(repo, "show", "20990101-000000-0000", "ALPHA")
    assert no_run.returncode == 2 and doc["run_id"] in no_run.stderr
    too_many = verb(repo, "show", "a", "b", "c")
    assert too_many.returncode == 2 and "[RUN_ID] TICKET" in too_many.stderr
    for proc in (none, no_run, too_many):
        assert "Traceback" not in proc.stderr


def test_apply_onto_a_fresh_branch_gives_the_tickets_tree(ran, tmp_path: Path) -> None:
    repo, tickets, doc = ran
    tip = git(repo, "rev-parse", tickets["GATED"]["ref"])
    applied = verb(repo, "apply", "GATED", "--onto", "try-gated")
    assert applied.returncode == 0, applied.stderr
    assert "applied GATED's 1 commit onto try-gated" in applied.stdout
    assert git(repo, "rev-parse", "try-gated^{tree}") == git(repo, "rev-parse",
                                                              f"{tip}^{{tree}}")
    assert git(repo, "symbolic-ref", "--short", "HEAD") == "try-gated"
    assert f"cherry picked from commit {tip}" in git(repo, "log", "-1", "--format=%B")
    git(repo, "switch", "-q", "main")


def test_apply_refuses_a_dirty_tree_and_leaves_a_conflict_to_git(ran) -> None:
    repo, _, _ = ran
    head = git(repo, "rev-parse", "HEAD")
    (repo / "shared.txt").write_text("mine\n")
    dirty = verb(repo, "apply", "ALPHA")
    assert dirty.returncode == 2 and "uncommitted changes" in dirty.stderr
    assert git(repo, "rev-parse", "HEAD") == head
    git(repo, "switch", "-q", "-c", "mine")
    git(repo, "commit", "-q", "-am", "mine")
    conflicted = verb(repo, "apply", "ALPHA")
    assert conflicted.returncode == 1
    assert "conflict with mine in shared.txt" in conflicted.stderr
    assert "git cherry-pick --continue" in conflicted.stderr
    assert (repo / ".git" / "CHERRY_PICK_HEAD").is_file()
    git(repo, "cherry-pick", "--abort")
    git(repo, "switch", "-q", "main")


def test_logs_follow_a_running_worker(tmp_path: Path, worker_image: str) -> None:
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {"name": "follow", "tickets": [
        {"id": "FOLLOWED", "agent": "script",
         "run": "echo first-line\nsleep 6\necho last-line"}]})
    run = subprocess.Popen([sys.executable, "-m", "runner", "run", str(phase), "--repo",
                            str(repo), "--json"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, env={**os.environ, **IDENTITY})
    try:
        state = repo / ".git" / "runner"
        deadline = time.monotonic() + 60
        while not any(state.glob("*/run.json")) and time.monotonic() < deadline:
            time.sleep(0.1)
        follower = subprocess.Popen([sys.executable, "-m", "runner", "logs", "FOLLOWED",
                                     "-f", "--repo", str(repo)], stdout=subprocess.PIPE,
                                    text=True)
        lines: list[tuple[str, bool]] = []     # each line, and whether the log had ended

        def read() -> None:
            assert follower.stdout is not None
            for line in follower.stdout:
                log = next(state.glob("*/logs/FOLLOWED.log"), None)
                lines.append((line, log is not None and "| last-line" in log.read_text()))

        reader = threading.Thread(target=read)
        reader.start()
        assert follower.wait(timeout=120) == 0
        reader.join()
    finally:
        run.wait(timeout=120)
    said = [line for line, _ in lines]
    first = next(i for i, line in enumerate(said) if "first-line" in line)
    assert not lines[first][1], "first-line came only once the worker had ended"
    assert any("| last-line" in line for line in said[first:])


def test_shell_in_a_new_container_over_the_workspace(ran, engine) -> None:
    repo, _, doc = ran
    code, said = in_a_terminal(
        [sys.executable, "-m", "runner", "shell", "ALPHA", "--repo", str(repo)],
        b"echo sum=$((6*7)); cat alpha.txt; id -u; ls /runner/objects >/dev/null && "
        b"touch /probe; exit 5\n")
    assert code == 5, said
    assert "sum=42" in said and "one" in said
    assert str(os.getuid()) in said
    assert "Read-only file system" in said          # the same isolation: / is read-only
    left = engine.containers.list(all=True, filters={"label": f"runner.run={doc['run_id']}"})
    assert left == []


def test_shell_in_the_container_a_run_kept(tmp_path: Path, engine, worker_image: str) -> None:
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {"name": "kept", "tickets": [
        {"id": "KEPT", "agent": "script", "run": "echo kept > kept.txt"}]})
    proc, doc = run_json("run", str(phase), "--repo", str(repo), "--keep")
    assert proc.returncode == 0, proc.stderr
    label = {"label": f"runner.run={doc['run_id']}"}
    try:
        [kept] = engine.containers.list(all=True, filters=label)
        code, said = in_a_terminal(
            [sys.executable, "-m", "runner", "shell", "KEPT", "--repo", str(repo)],
            b"touch /tmp/left-by-the-shell; cat kept.txt; exit\n")
        assert code == 0, said
        assert f"a shell in {kept.name}" in said and "kept" in said
        [still] = engine.containers.list(all=True, filters=label)     # left as it was
        assert still.id == kept.id
        assert still.exec_run(["test", "-e", "/tmp/left-by-the-shell"]).exit_code == 0
    finally:
        for container in engine.containers.list(all=True, filters=label):
            container.remove(force=True)


def test_logs_keep_a_workers_carriage_return_inside_its_line(ran) -> None:
    repo, _, _ = ran
    lines = verb(repo, "logs", "CHECKED").stdout.splitlines()
    assert "| forged[check] passed: fake" in lines
    assert not [line for line in lines if line.startswith("[check] passed")]
