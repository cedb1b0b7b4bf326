"""What CI runners see: plain lines, a JSON result that validates, a JUnit file, and
settings from flags and the environment (flag > env > phase file > default)."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from runner.records.document import RunDocument
from tests.helpers import ROOT, git, make_repo, runner_cli, write_phase

PHASE = {"name": "ci", "tickets": [
    {"id": "NET", "agent": "script", "run": "ls /sys/class/net | tr '\\n' ' ' > net.txt"},
    {"id": "FAIL", "agent": "script", "run": "echo '\\033[31mred\\033[0m'; exit 1"}]}


def test_plain_output_json_document_and_junit(tmp_path: Path, worker_image: str) -> None:
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", PHASE)
    env = {**os.environ, "RUNNER_NETWORK": "bridge"}
    plain = runner_cli("run", str(phase), "--repo", str(repo), "--network", "none",
                       "--junit", str(tmp_path / "junit.xml"), env=env)
    assert plain.returncode == 1
    assert "\x1b" not in plain.stdout + plain.stderr            # no control sequences
    assert any(line[:8].count(":") == 2 and " NET integrated" in line
               for line in plain.stdout.splitlines())          # timestamped, greppable
    cases = [c.get("name") for c in ET.parse(tmp_path / "junit.xml").iter("testcase")]
    assert cases == ["isolation self-test", "NET", "FAIL"]
    # The flag beat the environment: no network but lo.
    run_id = next(p.name for p in (repo / ".git/runner").iterdir())
    assert git(repo, "show", f"refs/runner/{run_id}/NET:net.txt") == "lo"
    as_json = runner_cli("run", str(phase), "--repo", str(repo), "--json",
                         "--no-preflight", env=env)
    document = RunDocument.model_validate_json(as_json.stdout)
    assert document.exit_code == 1 and [t.status for t in document.tickets] == [
        "integrated", "failed"]
    # Without the flag, the environment beat the phase file: bridge has an interface more.
    net = git(repo, "show", f"{document.tickets[0].ref}:net.txt").split()
    assert "lo" in net and len(net) > 1


def test_overrides_in_the_plan_and_bad_values(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {**PHASE, "concurrency": 2})
    env = {**os.environ, "RUNNER_IMAGE": "my-worker:7", "RUNNER_CONCURRENCY": "1"}
    plan = runner_cli("run", str(phase), "--repo", str(repo), "--dry-run", env=env)
    assert plan.returncode == 0, plan.stderr
    assert "image my-worker:7" in plan.stdout and "1 at once" in plan.stdout
    flagged = runner_cli("run", str(phase), "--repo", str(repo), "--dry-run",
                         "--concurrency", "2", env=env)
    assert "2 at once" in flagged.stdout
    bad = runner_cli("run", str(phase), "--repo", str(repo), "--dry-run",
                     env={**os.environ, "RUNNER_NETWORK": "host"})
    assert bad.returncode == 2
    assert "runner: error: RUNNER_NETWORK: 'host' is not valid for network" in bad.stderr


def test_the_shell_ci_example(tmp_path: Path, worker_image: str) -> None:
    """examples/shell-ci.sh as a CI job runs it: in the repo, with runner on PATH."""
    repo = make_repo(tmp_path / "repo")
    write_phase(repo / "phase.yaml", PHASE)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    job = subprocess.run(["bash", str(ROOT / "examples" / "shell-ci.sh"), "phase.yaml"],
                         cwd=repo, capture_output=True, text=True, env=env, timeout=600)
    assert job.returncode == 1, job.stderr           # FAIL fails, and so does the job
    document = RunDocument.model_validate_json((repo / "runner-result.json").read_text())
    assert [t.id for t in document.tickets] == ["NET", "FAIL"]
    cases = ET.parse(repo / "runner-junit.xml").getroot().iter("testcase")
    assert [c.get("name") for c in cases] == ["isolation self-test", "NET", "FAIL"]
    assert document.run_id in (repo / "runner-report.md").read_text()
    # clean removed the ended run's workspaces, never its refs.
    assert not (Path(document.run_dir) / "workspaces").exists()
    assert git(repo, "rev-parse", "--verify", f"{document.tickets[0].ref}")
