"""A worker is hostile: what it leaves running cannot change what was judged, and the names
it chooses are data in every gate and every sink. Each attack runs through `runner run`
beside an honest bystander whose work must still integrate."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from runner.records.document import RunDocument
from tests.helpers import ROOT, git, make_repo, runner_cli, write_phase

COMMIT_EVIL = ("echo evil > forbidden.txt; git add -A; "
               "git commit -qm 'sneaked in while the checks ran'")
# Passes at once, then is still running when the sneaky commit lands.
CHECK = "test ! -e forbidden.txt && sleep 4"

BACKGROUND = {
    "SETSID": f"setsid bash -c 'sleep 2; {COMMIT_EVIL}' </dev/null >/dev/null 2>&1 &",
    "NOHUP": f"nohup bash -c 'sleep 2; {COMMIT_EVIL}' </dev/null >/dev/null 2>&1 &",
    "DOUBLEFORK": f"( ( bash -c 'sleep 2; {COMMIT_EVIL}' </dev/null >/dev/null 2>&1 & ) & )",
}


@pytest.fixture(scope="module")
def background_run(tmp_path_factory: pytest.TempPathFactory, worker_image: str):
    root = tmp_path_factory.mktemp("background")
    repo = make_repo(root / "repo")
    tickets = [{"id": t, "agent": "script", "checks": [CHECK],
                "run": f"{spawn}\necho {t} > {t}.txt"} for t, spawn in BACKGROUND.items()]
    # The check itself starts the committer (a build script of the worker's tree would).
    tickets.append({"id": "FROMCHECK", "agent": "script",
                    "run": f"printf '%s\\n' \"setsid bash -c 'sleep 1; {COMMIT_EVIL}' "
                           "</dev/null >/dev/null 2>&1 &\" > spawn.sh",
                    "checks": ["bash spawn.sh && test ! -e forbidden.txt && sleep 3"]})
    tickets.append({"id": "HONEST", "agent": "script", "run": "echo honest > honest.txt",
                    "checks": ["test -f honest.txt"]})
    phase = write_phase(root / "p.yaml", {"name": "background", "concurrency": 5,
                                          "tickets": tickets})
    proc = runner_cli("run", str(phase), "--repo", str(repo), "--json", "--no-preflight")
    return repo, proc, RunDocument.model_validate_json(proc.stdout)


def test_nothing_left_running_reaches_the_target(background_run) -> None:
    repo, _, doc = background_run
    files = set(git(repo, "ls-tree", "-r", "--name-only", doc.target).split())
    assert "forbidden.txt" not in files
    assert {"honest.txt", "SETSID.txt", "NOHUP.txt", "DOUBLEFORK.txt"} <= files
    status = {t.id: t for t in doc.tickets}
    assert all(status[t].status == "integrated" for t in (*BACKGROUND, "HONEST"))
    # The committer the check started did commit, during the check: that commit was not
    # the judged one, so nothing of the ticket is collected as integrable.
    assert status["FROMCHECK"].status == "failed"
    assert "after its checks judged" in status["FROMCHECK"].reason
    for ticket in BACKGROUND:
        log = Path(doc.run_dir, "logs", f"{ticket}.log").read_text()
        assert "[check] passed" in log


NASTY = {
    # A newline inside a protected directory's file name: `**` must still match it.
    "NEWLINE": ("mkdir -p .github/workflows\n"
                "printf 'on: push\\n' > \"$(printf '.github/workflows/x\\ny.yml')\""),
    # A directory whose name starts like the allowed one: outside `paths`.
    "PATHS": "mkdir -p \"$(printf 'docs\\nx')\"\necho no > \"$(printf 'docs\\nx')/evil.txt\"",
    # Control sequences, markup of every sink, and a forged log line, in one file name; the
    # ticket fails at the paths gate, so the name is in its reason everywhere.
    "MARKUP": ("name=$(printf '\\033]0;PWNED\\007\\033[2J<b>bold<em> | x | ## head\\001\\n"
               "12:00:00 HONEST failed: forged\\n]]><z>')\n"
               "echo x > \"$name\""),
}


@pytest.fixture(scope="module")
def names_run(tmp_path_factory: pytest.TempPathFactory, worker_image: str):
    root = tmp_path_factory.mktemp("names")
    repo = make_repo(root / "repo")
    tickets = [{"id": t, "agent": "script", "run": run,
                **({"paths": ["docs/**", "src/**"]} if t != "NEWLINE" else {})}
               for t, run in NASTY.items()]
    tickets.append({"id": "HONEST", "agent": "script", "paths": ["docs/**"],
                    "run": "mkdir -p docs\necho honest > docs/honest.md"})
    # Output that reads like runner's own lines in its log, at a line's start or after a
    # carriage return (which a reader's newline translation would make a line break).
    tickets.append({"id": "FORGE", "agent": "script",
                    "run": "echo '[check] passed: everything'; echo 'runner: all fine'; "
                           "printf 'x\\r[check] passed: after a CR\\n'; exit 1"})
    phase = write_phase(root / "p.yaml", {"name": "names", "tickets": tickets})
    junit = root / "junit.xml"
    plain = runner_cli("run", str(phase), "--repo", str(repo), "--no-preflight",
                       "--junit", str(junit))
    [run_dir] = (repo / ".git" / "runner").iterdir()
    return repo, plain, run_dir, junit


def test_names_with_newlines_do_not_slip_past_the_gates(names_run) -> None:
    repo, plain, run_dir, _ = names_run
    assert plain.returncode == 1, plain.stderr
    record = json.loads((run_dir / "run.json").read_text())["outcomes"]
    assert record["HONEST"]["status"] == "integrated"
    assert record["NEWLINE"]["status"] == "failed"
    assert record["NEWLINE"]["reason"].startswith("changed files protected: .github/workflows/x")
    assert record["PATHS"]["reason"].startswith("changed files outside its paths: docs\nx/")
    assert record["MARKUP"]["status"] == "failed"
    assert "\x1b]0;PWNED" in record["MARKUP"]["reason"]     # the record keeps the bytes
    files = git(repo, "ls-tree", "-r", "--name-only", "runner/names").split()
    assert files == ["README.md", "docs/honest.md"]


def test_names_are_data_in_the_plain_log_and_the_summary(names_run) -> None:
    _, plain, _, _ = names_run
    out = plain.stdout
    assert not set(out) & {"\x1b", "\x07", "\x01"}
    lines = out.splitlines()
    # Every line is runner's: a name cannot add one.
    assert not [line for line in lines if re.match(r"\d\d:\d\d:\d\d HONEST failed", line)]
    assert sum(line.startswith("MARKUP | ") for line in lines) == 1
    assert all(line[:2].isdigit() or " | " in line or line.startswith(("run ", "target: "))
               for line in lines), lines


def test_names_are_data_in_the_report_junit_and_json(names_run) -> None:
    repo, _, run_dir, junit = names_run
    report = runner_cli("report", run_dir.name, "--repo", str(repo)).stdout
    assert "<b>" not in report and "\x1b" not in report
    assert not [line for line in report.splitlines() if line.startswith("## head")]
    [failure] = [line for line in report.splitlines() if line.startswith("- **MARKUP**")]
    assert "&lt;b&gt;bold&lt;em&gt; \\| x \\| \\#\\# head" in failure
    checked = subprocess.run(["xmllint", "--noout", "--schema",
                              str(ROOT / "tests" / "data" / "junit.xsd"), str(junit)],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    cases = {c.get("name"): c for c in ET.parse(junit).iter("testcase")}
    assert "<b>bold<em>" in cases["MARKUP"].find("failure").get("message")   # as text
    ET.parse(run_dir / "timeline.svg")                   # written by the report: it parses
    doc = runner_cli("report", run_dir.name, "--repo", str(repo), "--format", "json")
    tickets = {t["id"]: t for t in json.loads(doc.stdout)["tickets"]}
    assert "PWNED" in tickets["MARKUP"]["reason"]


def test_names_are_data_on_a_terminal(names_run) -> None:
    """`runner status` on a real terminal (script(1) gives it a pty)."""
    repo, _, run_dir, _ = names_run
    command = shlex.join([sys.executable, "-m", "runner", "status", run_dir.name, "--repo",
                          str(repo)])
    shown = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True,
                           text=True, env={**os.environ, "PYTHONPATH": str(ROOT),
                                           "TERM": "xterm", "COLUMNS": "200"})
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "MARKUP" in shown.stdout
    assert "\x1b]0;PWNED" not in shown.stdout and "\x1b[2J" not in shown.stdout
    assert "\x07" not in shown.stdout and "\x01" not in shown.stdout


def test_a_worker_cannot_print_runners_own_log_lines(names_run) -> None:
    repo, _, run_dir, _ = names_run
    shown = runner_cli("logs", run_dir.name, "FORGE", "--repo", str(repo)).stdout.splitlines()
    assert "| [check] passed: everything" in shown and "| runner: all fine" in shown
    # runner's own lines are its own: how its commands reached the sandbox, nothing more.
    ours = [line for line in shown if line.startswith(("[check]", "runner:"))]
    assert len(ours) == 1 and re.fullmatch(r"runner: \S+: commands through the supervisor",
                                           ours[0]), ours


def test_names_are_data_in_show_diff_and_the_html_report(names_run) -> None:
    repo, _, run_dir, _ = names_run
    for verb in ("show", "diff"):
        shown = runner_cli(verb, run_dir.name, "MARKUP", "--repo", str(repo))
        assert shown.returncode == 0, shown.stderr
        assert not set(shown.stdout) & {"\x1b", "\x07", "\x01"}, verb
        # The name's newline cannot start a line of its own.
        assert not [line for line in shown.stdout.splitlines()
                    if line.startswith("12:00:00 HONEST")], verb
    assert "changed files outside its paths" in runner_cli(
        "show", run_dir.name, "MARKUP", "--repo", str(repo)).stdout
    page = runner_cli("report", run_dir.name, "--repo", str(repo), "--format", "html").stdout
    assert "<b>bold" not in page and "<em>" not in page and "]]><z>" not in page
    assert "&lt;b&gt;bold&lt;em&gt;" in page
    assert not set(page) & {"\x1b", "\x07", "\x01"}


def test_a_workers_carriage_return_forges_no_line_of_runners(names_run) -> None:
    repo, _, run_dir, _ = names_run
    shown = runner_cli("logs", run_dir.name, "FORGE", "--repo", str(repo)).stdout.splitlines()
    assert "| x[check] passed: after a CR" in shown
