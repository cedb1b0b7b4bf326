"""Sizes a worker chooses must not break the lead: each attack runs through `runner run`
beside an honest bystander whose work must still integrate, with real Docker and real git.

- 60,000 changed files: no path reaches a command line; the ticket integrates (nothing
  about it is wrong but its size), the run prints its --json document.
- A runner killed mid-run over workspaces holding 60,000 files and trees thousands of
  levels deep (workspace and Gradle home): `runner resume` finishes the run, `runner clean`
  removes every workspace.
- 300 MB without a newline: the runner's memory stays bounded (VmHWM from /proc), its log
  and its plain-line output stay capped, and the ticket ends well within its timeout.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.host.trees import remove_tree
from runner.records.logcap import HEAD, TAIL
from tests.helpers import git, make_repo, run_json, runner_cli, write_phase

FILES = 60_000
DEPTH = 3_000
# Names long enough that all of them together are past ARG_MAX (2 MiB): they once were argv.
GENERATED = "gen/generated-sources"
MANYFILES = (f"mkdir -p {GENERATED} && cd {GENERATED} && "
             f"seq -f 'generated-file-%05g.txt' 1 {FILES} | xargs touch")
# A tree DEPTH levels deep, made one level at a time (its path is far past PATH_MAX); perl,
# as a shell's `cd` gets slower with every level.
DEEP = f"""
deep() {{ perl -e 'chdir $ARGV[0] or die; for (1..{DEPTH}) {{ mkdir "d" or die; chdir "d" or die }}
                   open(my $f, ">", "f") or die' "$1"; }}
deep "$PWD" && deep "$GRADLE_USER_HOME"
echo ok > deep.txt
"""
NOISY_MB = 300
NOISY = (f"head -c {NOISY_MB * 1_000_000} /dev/zero | tr '\\0' x\necho\n"
         "echo done > noisy.txt")
BYSTANDER = {"id": "bystander", "agent": "script", "run": "echo honest > bystander.txt"}
RSS_BOUND_MB = 200    # generous: the runner idles near 50 MB; it grew past 300 MB before


def _ticket(ticket_id: str, run: str, timeout: int = 600) -> dict[str, object]:
    return {"id": ticket_id, "agent": "script", "run": run, "timeout": timeout}


def _tickets(doc: dict) -> dict[str, dict]:
    return {t["id"]: t for t in doc["tickets"]}


def _start(phase: Path, repo: Path, *flags: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "runner", "run", str(phase), "--repo",
                             str(repo), "--no-preflight", *flags], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(condition: Callable[[], object], what: str, proc: subprocess.Popen[str],
              seconds: float = 300) -> object:
    """Poll ``condition`` while the runner lives (a runner that ended early fails here)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if found := condition():
            return found
        assert proc.poll() is None, f"the runner ended before {what}: {proc.communicate()}"
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _run_dir(repo: Path) -> Path | None:
    runs = repo / ".git" / "runner"
    found = [p for p in runs.iterdir() if (p / "run.json").is_file()] if runs.is_dir() else []
    return found[0] if found else None


def test_sixty_thousand_files_integrate_beside_the_bystander(tmp_path: Path,
                                                             worker_image: str) -> None:
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {"name": "manyfiles", "concurrency": 2,
                                              "tickets": [_ticket("many", MANYFILES),
                                                          BYSTANDER]})
    proc, doc = run_json("run", str(phase), "--repo", str(repo))
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    tickets = _tickets(doc)
    assert tickets["bystander"]["status"] == "integrated", tickets["bystander"]
    assert tickets["many"]["status"] == "integrated", tickets["many"]
    assert proc.returncode == 0
    target = doc["target"]
    assert git(repo, "show", f"{target}:bystander.txt") == "honest"
    names = subprocess.run(["git", "ls-tree", "-r", "--name-only", f"{target}:{GENERATED}"],
                           cwd=repo, capture_output=True, text=True, check=True).stdout.split()
    assert len(names) == FILES and names[0] == "generated-file-00001.txt"
    assert sum(len(f"{GENERATED}/{name}") + 1 for name in names) > 2 * 2**20
    remove_tree(repo / ".git" / "runner")


def test_killed_over_huge_and_deep_workspaces_then_resume_and_clean(
        tmp_path: Path, worker_image: str) -> None:
    repo = make_repo(tmp_path / "repo")
    # Each holds its workspace until the runner is killed (then resume runs it again).
    hold = 'touch READY\nsleep 15\n'
    phase = write_phase(tmp_path / "p.yaml", {"name": "killed", "concurrency": 3, "tickets": [
        _ticket("many", f"({MANYFILES})\n{hold}"), _ticket("deep", f"{DEEP}\n{hold}"),
        BYSTANDER]})
    proc = _start(phase, repo)
    try:
        run_dir = _wait_for(lambda: _run_dir(repo), "the run to start", proc)
        _wait_for(lambda: all((run_dir / "workspaces" / t / "READY").exists()
                              for t in ("many", "deep")), "both workspaces full", proc)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    gradle = run_dir / "gradle" / "deep"
    assert (gradle / "d" / "d" / "d").is_dir()          # the deep trees are there
    resumed, doc = run_json("resume", run_dir.name, "--repo", str(repo))
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert "Traceback" not in resumed.stderr and "RecursionError" not in resumed.stderr
    tickets = _tickets(doc)
    assert {t: o["status"] for t, o in tickets.items()} == {
        "many": "integrated", "deep": "integrated", "bystander": "integrated"}
    target = doc["target"]
    assert git(repo, "show", f"{target}:bystander.txt") == "honest"
    assert git(repo, "show", f"{target}:deep.txt") == "ok"
    # The finished run's workspaces hold the deep trees again (the resumed attempt's).
    assert (run_dir / "workspaces" / "deep" / "d" / "d").is_dir()
    cleaned = runner_cli("clean", run_dir.name, "--repo", str(repo))
    assert cleaned.returncode == 0, cleaned.stderr
    assert "could not remove" not in cleaned.stderr + cleaned.stdout
    for scratch in ("workspaces", "gradle", "reruns"):
        assert not (run_dir / scratch).exists(), scratch
    assert (run_dir / "run.json").is_file()
    again = runner_cli("resume", run_dir.name, "--repo", str(repo))
    assert again.returncode == 0 and "already finished" in again.stdout + again.stderr
    remove_tree(repo / ".git" / "runner")


def _vm_kb(pid: int, key: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return next((int(line.split()[1]) for line in text.splitlines()
                 if line.startswith(f"{key}:")), 0)


def test_300_mb_without_a_newline(tmp_path: Path, worker_image: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {"name": "noisy", "concurrency": 2, "tickets": [
        _ticket("noisy", NOISY, timeout=240), BYSTANDER]})
    proc = _start(phase, repo, "--json")
    peak = {"VmHWM": 0, "VmRSS": 0}

    def sample() -> None:
        while proc.poll() is None:
            for key in peak:
                peak[key] = max(peak[key], _vm_kb(proc.pid, key))
            threading.Event().wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate(timeout=600)
    sampler.join()
    with capsys.disabled():
        print(f"\nrunner over {NOISY_MB} MB without a newline: VmHWM {peak['VmHWM'] // 1024} "
              f"MB, peak VmRSS {peak['VmRSS'] // 1024} MB, plain log {len(err):,} bytes")
    assert 0 < peak["VmHWM"] < RSS_BOUND_MB * 1024, peak
    doc = json.loads(out)
    tickets = _tickets(doc)
    assert tickets["bystander"]["status"] == "integrated", tickets["bystander"]
    assert tickets["noisy"]["status"] == "integrated", tickets["noisy"]
    assert git(repo, "show", f"{doc['target']}:noisy.txt") == "done"
    log = Path(doc["run_dir"]) / "logs" / "noisy.log"
    assert log.stat().st_size < HEAD + 2 * TAIL
    text = log.read_text()
    assert "more characters of this line cut]" in text
    cut = int(text.split("[… ")[1].split(" more")[0].replace(",", ""))
    assert cut > (NOISY_MB - 1) * 1_000_000       # said how much went
    assert len(err) < 1_000_000                   # the plain lines: one cut line, not 300 MB
    remove_tree(repo / ".git" / "runner")
